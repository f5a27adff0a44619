"""Word vectors for the sentiment models' embeddings, learnt with gensim's word2vec from unlabelled reviews.

IMDb ships 50,000 unlabelled reviews beside its 25,000 labelled training reviews. Skip-gram vectors
learnt from all of them start the classifier's embedding with what the words mean, which labels alone
(22,500 reviews) teach poorly for rare words.
"""

import hashlib
import json
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.classification import ClassificationData
from ..data.sources import text_batches
from ..data.tokenization import tokenizer_threads
from ..utils.runtime import cpu_cores


class EpochProgress:
    """Prints a line after each word2vec epoch, so a long run is not mistaken for a hung one."""

    def __init__(self, epochs: int):
        self.epochs, self.epoch, self.start = epochs, 0, time.time()

    # gensim calls these hooks by name (the CallbackAny2Vec interface, without importing gensim here).
    def on_train_begin(self, model):
        self.start = time.time()

    def on_epoch_begin(self, model):
        pass

    def on_epoch_end(self, model):
        self.epoch += 1
        elapsed = time.time() - self.start
        left = elapsed / self.epoch * (self.epochs - self.epoch)
        print(f"word2vec: epoch {self.epoch}/{self.epochs} done, {elapsed:.0f} s, about {left:.0f} s left", flush=True)

    def on_train_end(self, model):
        pass


class TextCorpus:
    """Texts to learn word vectors from, read a batch at a time each time they are iterated: `parts` are
    `datasets.Dataset`s (their `text` column, memory-mapped) or lists, each `(texts, skip_empty)`. It holds
    no list of all texts, so word2vec's memory does not grow with the data (issue #25: 51 KB a text)."""

    def __init__(self, parts):
        self.parts, self._len = list(parts), None

    def batches(self):
        for texts, skip_empty in self.parts:
            for batch in text_batches(texts):
                yield [t for t in batch if t] if skip_empty else batch

    def __iter__(self):
        for batch in self.batches():
            yield from batch

    def __len__(self):
        if self._len is None:
            self._len = sum(len(batch) for batch in self.batches())
        return self._len


def write_id_sentences(tokenizer, texts, path) -> int:
    """The ids of `texts` as the tokenizer splits them, one non-empty text a line, a batch at a time;
    returns how many lines were written."""
    lines = 0
    with open(path, "w", encoding="ascii") as f:
        for batch in text_batches(texts):
            for row in tokenizer(batch, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]:
                if row:
                    f.write(" ".join(map(str, row)) + "\n")
                    lines += 1
    return lines


def train_word_vectors(tokenizer, texts, dim: int, *, sg: int = 1, window: int = 5, negative: int = 5,
                       epochs: int = 5, seed: int = 42, workers: int = 1, workdir=None) -> tuple[torch.Tensor, torch.Tensor]:
    """word2vec vectors for every id of `tokenizer`, learnt from `texts` as the tokenizer splits them.

    Returns `(vectors, found)`: a (vocab, dim) float tensor and a bool mask of the ids seen in `texts`.
    gensim is only reproducible (same seed, same vectors) with one worker thread; `workers` > 1 learns
    faster (2 workers on 2 cores: about 1.6x) but gives slightly different vectors on each run.
    The texts (any iterable, e.g. a `TextCorpus`) are tokenized once, a batch at a time and on every core,
    into a file of ids in `workdir` (a temporary folder by default) that word2vec reads once for its vocabulary
    and once an epoch. gensim reads that file in compiled code (`corpus_file`), each worker its own stretch:
    on IMDb's 72,500 texts 4 epochs take 53 s instead of 64 s through a Python iterator.
    """
    from gensim.models import Word2Vec

    with tempfile.TemporaryDirectory(dir=workdir, prefix="word2vec-") as folder:
        path = Path(folder) / "sentences.txt"
        with tokenizer_threads():
            if not write_id_sentences(tokenizer, texts, path):
                raise ValueError("No text to learn word vectors from.")
        w2v = Word2Vec(corpus_file=str(path), vector_size=dim, window=window, min_count=1, sg=sg,
                       negative=negative, epochs=epochs, workers=workers, seed=seed, callbacks=[EpochProgress(epochs)])
    vectors, found = torch.zeros(len(tokenizer), dim), torch.zeros(len(tokenizer), dtype=torch.bool)
    for key, index in w2v.wv.key_to_index.items():
        vectors[int(key)] = torch.from_numpy(w2v.wv.vectors[index].copy())
        found[int(key)] = True
    return vectors, found


def cached_word_vectors(cache_dir, tokenizer, texts, dim: int, **settings) -> tuple[torch.Tensor, torch.Tensor]:
    """`train_word_vectors`, stored in `cache_dir` under a key of the vocabulary, texts and settings,
    so a resumed run, or a second process of the same run, reads them instead of learning them again.
    `texts` is read as it comes (a `TextCorpus` reads its datasets a batch at a time), never kept in a list."""
    if iter(texts) is texts:  # a one-pass iterator: it is read twice (the key, then word2vec)
        texts = list(texts)
    digest = hashlib.sha256(json.dumps([sorted(tokenizer.get_vocab().items()), dim, settings]).encode())
    for text in texts:
        digest.update(text.encode() + b"\0")
    count = len(texts)
    key = digest.hexdigest()[:16]
    path = Path(cache_dir) / f"word_vectors-{key}.safetensors"
    if path.is_file():
        stored = load_file(path)
        return stored["vectors"], stored["found"]
    start = time.time()
    workers = settings.get("workers", 1)
    print(f"word2vec: learning {dim}-d vectors from {count:,} texts ({workers} worker thread(s); cached in "
          f"{path.parent})", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors, found = train_word_vectors(tokenizer, texts, dim, workdir=path.parent, **settings)
    print(f"word2vec: {int(found.sum()):,} of {len(found):,} ids from {count:,} texts in {time.time() - start:.0f} s")
    partial = path.with_suffix(".partial")
    save_file({"vectors": vectors, "found": found}, partial)
    partial.rename(path)  # never leave a half-written cache behind
    return vectors, found


def load_embeddings(model, vectors: torch.Tensor, found: torch.Tensor) -> int:
    """Copy the vectors of the ids in `found` into the model's input embeddings (the padding row stays);
    returns how many rows were set."""
    embedding = model.get_input_embeddings()
    if tuple(vectors.shape) != tuple(embedding.weight.shape):
        raise ValueError(f"Word vectors of shape {tuple(vectors.shape)} do not fit the embedding "
                         f"{tuple(embedding.weight.shape)}.")
    rows = found.clone()
    if embedding.padding_idx is not None:
        rows[embedding.padding_idx] = False
    with torch.no_grad():
        embedding.weight[rows] = vectors[rows].to(embedding.weight.dtype)
    return int(rows.sum())


def word_vector_texts(data: ClassificationData, preset: dict, extra_texts=(), train_repeats: int = 1):
    """The texts word2vec learns from: the training texts, any unlabelled ones and `extra_texts` (text from
    other sources, `--unlabelled-data`: datasets with a `text` column, or lists), never validation or test. `train_repeats` > 1 adds the training
    texts that many times in all, so the labelled set's own domain is not drowned by much general text
    (ag_news_8k with IMDb's 50,000 reviews: validation 90.00 % once, 90.50 % ten times). A `TextCorpus` over
    the datasets, read a batch at a time ([] when the preset learns no word vectors)."""
    if not preset.get("word_vectors"):
        return []
    train = data.splits["train"]
    parts = [(train, False)] + [(texts, False) for texts in extra_texts]
    unlabelled = data.unlabelled
    if unlabelled is not None and preset.get("unlabelled_size") is not None:  # the same sample a word LM reads
        unlabelled = unlabelled.shuffle(seed=42).select(range(min(preset["unlabelled_size"], len(unlabelled))))
    if unlabelled is not None and len(unlabelled) > 0:
        parts.append((unlabelled, True))
    elif not extra_texts:
        print("No unlabelled split: word vectors learn from the training texts alone.")
    return TextCorpus(parts + [(train, False)] * (train_repeats - 1))


def word_vector_settings(preset: dict, texts: list) -> dict:
    """The preset's word2vec settings, adapted to a corpus smaller than `min_words` words: skip-gram (it learns
    rare words better than CBOW, and is cheap at that size) and enough epochs to read about `min_words`
    words (IMDb's 72,500 reviews are large enough as they are; 7,200 news snippets get 50 epochs).
    Measured on ag_news_8k: CBOW, 50 epochs 86.25 %; skip-gram, 50 epochs 87.51 %."""
    settings = dict(preset["word_vectors"])
    min_words = settings.pop("min_words", 0)
    words = sum(len(text.split()) for text in texts)
    if min_words and 0 < words < min_words:
        settings["sg"] = 1
        settings["epochs"] = max(settings.get("epochs", 5), min(50, -(-min_words // words)))
    return settings


def word_vector_workers(world_size: int) -> int:
    """word2vec's threads: the cores the run holds. The other training processes wait while the main one
    learns the vectors, so each lends its core (IMDb on 2 cores: word vectors 131 s with one worker). More
    than one worker makes the vectors, and so the figures, differ slightly from run to run; one process
    with OMP_NUM_THREADS=1 keeps a run reproducible."""
    if torch.cuda.is_available():
        return cpu_cores()
    return max(1, min(cpu_cores(), world_size * torch.get_num_threads()))
