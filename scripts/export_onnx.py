"""Export a trained seqhf folder to ONNX for ONNX Runtime (classifier: dynamic batch and length; LM: one step).

    python scripts/export_onnx.py DIR OUT [--int8] [--imdb PATH [--limit N]]

A classifier becomes OUT/model.onnx (and OUT/model_int8.onnx with --int8, onnxruntime's dynamic
quantization); a causal LM becomes one decoding step with its recurrent state or KV cache in and out.
The outputs are checked against PyTorch (within 1e-4) before anything is kept. With --imdb the
classifier's IMDb test accuracy is measured in PyTorch, ONNX Runtime fp32 and (with --int8) int8,
and written into OUT/onnx_export.json.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", help="a folder written by train_sentiment.py / train_charlm.py")
    parser.add_argument("out", help="where to write model.onnx, the config, the tokenizer and onnx_export.json")
    parser.add_argument("--int8", action="store_true", help="also write model_int8.onnx (classifiers)")
    parser.add_argument("--imdb", metavar="PATH", help="measure accuracy on this IMDb copy's test split")
    parser.add_argument("--limit", type=int, help="with --imdb: only the first N test reviews (shuffled, seed 0)")
    args = parser.parse_args(argv)
    if not (Path(args.dir) / "config.json").is_file():
        parser.error(f"{args.dir} has no config.json: give the output folder of a training run")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")

    from seqhf.export.onnx_export import MANIFEST_FILE, export_folder

    try:
        manifest = export_folder(args.dir, args.out, int8=args.int8)
    except (ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/model.onnx ({manifest['task']}); largest difference from PyTorch {manifest['max_abs_diff']:.2e}")
    if args.int8:
        print(f"wrote {args.out}/{manifest['int8']} (dynamic int8)")
    if args.imdb:
        if manifest["task"] != "text-classification":
            parser.error("--imdb measures a classifier; this folder holds a language model")
        from seqhf.export.onnx_export import imdb_accuracy

        accuracy = imdb_accuracy(args.dir, args.out, args.imdb, limit=args.limit, log=print)
        manifest["imdb_accuracy"] = accuracy
        Path(args.out, MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        print(json.dumps(accuracy, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
