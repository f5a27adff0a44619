"""Peak memory (RSS) against data size for the classifier's data, vocabulary and word-vector phases and for
the char LM, each run in its own process; prints a markdown table (docs/performance.md, "Memory at scale").

    python benchmarks/memory_scale.py --imdb PATH/TO/imdb --book PATH/TO/1268-0.txt --work /tmp/memory_scale \
        --texts 25000 100000 --mb 10 50 200

Larger data is made by repeating the given data (IMDb's train and unsupervised reviews; the book's text),
written under --work. Training is cut to a few steps (`max_steps`): the data phases, the word vectors (one
epoch; their memory does not grow with epochs) and the final evaluations (at their default caps) run as in a
full run. Run it with OMP_NUM_THREADS=1; each case takes a minute or a few.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

CLASSIFIER = r"""
import json, resource, sys, time
from seqhf.training.classifier import train_classifier
from seqhf.training.presets import get_preset
preset = get_preset("sentiment", "lstm")
preset["word_vectors"] = dict(preset["word_vectors"], epochs=1)
preset["model"] = dict(preset["model"], hidden_size=16)
start = time.time()
r = train_classifier(dict(source=sys.argv[1], label_names="negative,positive"), preset, sys.argv[2],
                     max_steps=2, baseline=False, disable_tqdm=True, save_strategy="no", eval_strategy="no",
                     load_best_model_at_end=False)
print(json.dumps(dict(seconds=time.time() - start, texts=r["train_examples"], vector_texts=r["word_vectors"]["texts"],
                      phases=r.get("phase_wall_time_s"))))
"""

CHARLM = r"""
import json, sys, time
from seqhf.training.charlm import train_charlm
tiny = dict(arch="lstm", model=dict(embedding_size=16, hidden_size=64), seq_len=100, tbptt="stateful",
            train=dict(learning_rate=2e-3, epochs=1, batch_size=32, weight_decay=0.0, warmup=0.0,
                       scheduler="constant", patience=2))
extra = dict(streaming=True) if sys.argv[3] == "streaming" else {}
start = time.time()
r = train_charlm(tiny, [sys.argv[1]], sys.argv[2], max_steps=5, dynamic=False, samples=False, disable_tqdm=True,
                 validation_fraction=0.002, **extra)
print(json.dumps(dict(seconds=time.time() - start, chars=r["train_chars"] + r["validation_chars"] + r["heldout_chars"],
                      scored=r.get("heldout_chars_scored"), ngram_chars=r["ngram"]["train_chars"])))
"""


SAMPLER = r"""
import threading, time as _time
_anon = [0]
def _sample():  # RssAnon: the heap and other private memory, without the file-backed (memory-mapped) pages
    while True:
        with open("/proc/self/status") as f:
            kb = next((int(line.split()[1]) for line in f if line.startswith("RssAnon")), 0)
        _anon[0] = max(_anon[0], kb)
        _time.sleep(0.05)
threading.Thread(target=_sample, daemon=True).start()
"""

REPORT = r"""
import resource
print(json.dumps(dict(peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      children_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, anon_mb=_anon[0] / 1024)))
"""


def measure(script: str, *args) -> dict:
    """Run `script` in a fresh interpreter; its peak RSS (and that of any process it started) in MB, and its
    peak anonymous RSS (sampled every 50 ms: the memory it holds beyond the pages of memory-mapped files)."""
    wrapper = SAMPLER + script + REPORT
    done = subprocess.run([sys.executable, "-c", wrapper, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        return dict(error=done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{\"")]
    return {k: v for line in lines for k, v in line.items()}


def imdb_copy(imdb: str, texts: int, folder: str) -> str:
    """IMDb's layout with `texts` training reviews (and twice that many unlabelled), repeated as needed."""
    import pandas as pd

    out = os.path.join(folder, f"imdb_{texts}")
    if os.path.isdir(out):
        return out
    os.makedirs(os.path.join(out, "plain_text"))
    shutil.copy(os.path.join(imdb, "README.md"), out)  # its configs name the unsupervised split
    for split, n in (("train", texts), ("test", min(texts, 25_000)), ("unsupervised", 2 * texts)):
        frame = pd.read_parquet(os.path.join(imdb, "plain_text", f"{split}-00000-of-00001.parquet"))
        frame = pd.concat([frame] * (n // len(frame) + 1)).iloc[:n].sample(frac=1.0, random_state=0)
        # Row groups of IMDb's own 25,000 rows, as a large dataset's Parquet shards have them: one row group of
        # a million texts is decoded whole when datasets converts it (400,000 texts: 2.38 GB peak, 1.10 with these).
        frame.reset_index(drop=True).to_parquet(os.path.join(out, "plain_text", f"{split}-00000-of-00001.parquet"),
                                                index=False, row_group_size=25_000)
    return out


def book_copy(book: str, mb: int, folder: str) -> str:
    path = os.path.join(folder, f"book_{mb}mb.txt")
    if not os.path.isfile(path):
        from seqhf.data.char_text import read_char_text

        text = read_char_text(book)[0] + "\n\n"  # the body, without the markers that would cut the copy
        with open(path, "w", encoding="utf-8") as f:
            for _ in range(mb * 1_000_000 // len(text) + 1):
                f.write(text)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imdb", help="a folder in the stanfordnlp/imdb parquet layout")
    parser.add_argument("--book", help="a text file (Gutenberg #1268)")
    parser.add_argument("--work", default="/tmp/memory_scale")
    parser.add_argument("--texts", type=int, nargs="*", default=[25_000, 100_000])
    parser.add_argument("--mb", type=int, nargs="*", default=[10, 50, 200])
    parser.add_argument("--streaming-mb", type=int, nargs="*", default=[200])
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows = []
    for texts in args.texts if args.imdb else []:
        data = imdb_copy(args.imdb, texts, args.work)
        run = os.path.join(args.work, f"run_clf_{texts}")
        shutil.rmtree(run, ignore_errors=True)  # a cache of word vectors left by an earlier run would skip word2vec
        r = measure(CLASSIFIER, data, run)
        rows.append((f"classifier, `lstm` preset's word vectors ({texts:,} training + {2 * texts:,} unlabelled texts)", r,
                     # the measure: memory held beyond the memory-mapped data, per training text (the
                     # fixed part, torch and the libraries, included: compare two sizes for the growth)
                     f"{r['anon_mb'] * 1024 / texts:.1f} KB anonymous a training text" if "anon_mb" in r else ""))
        print(rows[-1], flush=True)
    cases = [(mb, "in memory") for mb in args.mb] + [(mb, "streaming") for mb in args.streaming_mb]
    for mb, mode in cases if args.book else []:
        path = book_copy(args.book, mb, args.work)
        r = measure(CHARLM, path, os.path.join(args.work, f"run_char_{mb}_{mode[:2]}"), mode)
        rows.append((f"char LM, {mb} MB of text ({mode})", r,
                     f"{r['peak_mb'] / mb:.1f} bytes a character" if "peak_mb" in r else ""))
        print(rows[-1], flush=True)
    print("\n| data | peak RSS | peak anonymous RSS (not memory-mapped) | per unit | wall time |\n|---|---|---|---|---|")
    for name, r, per in rows:
        peak = f"{max(r['peak_mb'], r['children_mb']) / 1024:.2f} GB" if "peak_mb" in r else r.get("error", "?")
        anon = f"{r['anon_mb'] / 1024:.2f} GB" if "anon_mb" in r else ""
        print(f"| {name} | {peak} | {anon} | {per} | {r.get('seconds', 0):.0f} s |")


if __name__ == "__main__":
    main()
