#!/usr/bin/env python
"""Train a text classifier on any dataset through transformers.Trainer (runs unchanged under `accelerate launch`).

    python scripts/train_classifier.py --dataset ../shared/data/ag_news_8k --text-column content \\
        --label-names ../shared/data/ag_news_8k/classes.txt --model lstm --output-dir runs/ag-news-lstm

--dataset takes a Hub id (with --dataset-config), a folder saved by `datasets` or holding data files
(datasets reads the splits from the file names: train.csv, test.csv, ...), or one .csv/.tsv/.json/.jsonl/
.parquet file; .txt lists (one text a line, the file name is the label) also work. Labels may be ints,
strings, a ClassLabel, or lists of labels (a multi-label model). Validation: the dataset's own split
(validation/valid/dev), else 10 % carved from train; final figures on its test split, else on validation.
"""

import argparse
import os
import sys


def add_data_arguments(p: argparse.ArgumentParser, **defaults) -> None:
    """The options that say where the data is and how to read it (shared with scripts/baseline_tfidf.py)."""
    p.add_argument("--dataset", required="dataset" not in defaults, help="Hub id, dataset folder or data file")
    p.add_argument("--dataset-config", default=None, help="the Hub dataset's configuration name")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--label-names", default=None,
                   help="comma list, or a file with one name a line, in the order of the sorted label values")
    p.add_argument("--merge-label-variants", action="store_true",
                   help="labels that differ only in case or surrounding spaces (pos / Pos / POS) become one class, "
                        "spelt as most of its rows spell it (refused otherwise)")
    p.add_argument("--train-split", default=None, help="default: train")
    p.add_argument("--validation-split", default=None, help="default: validation/valid/dev, else carved from train")
    p.add_argument("--test-split", default=None, help="default: test, else the final figures are on validation")
    p.add_argument("--unlabelled-split", default=None,
                   help="texts without labels for the word vectors (default: unsupervised/unlabelled when present)")


def data_options(a) -> dict:
    """`load_classification_data` arguments from the parsed options."""
    return dict(source=a.dataset, config=a.dataset_config, text_column=a.text_column, label_column=a.label_column,
                label_names=a.label_names, train_split=a.train_split, validation_split=a.validation_split,
                test_split=a.test_split, unlabelled_split=a.unlabelled_split,
                merge_label_variants=a.merge_label_variants)


def unlabelled_options(a) -> dict | None:
    """`train_classifier(unlabelled_data=...)` from the parsed options."""
    if not a.unlabelled_data:
        return None
    return dict(sources=a.unlabelled_data, text_column=a.unlabelled_text_column, split=a.unlabelled_data_split)


def build_parser(**defaults) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                epilog=__doc__.split("\n\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["lstm", "transformer", "book", "ulmfit", "ulmfit-cpu", "ulmfit-cpu-word2vec", "ulmfit-cpu-all"],
                   default="lstm", help="preset (default: lstm; ulmfit* go with --init-from)")
    add_data_arguments(p, **defaults)
    p.add_argument("--unlabelled-data", nargs="+", default=None, metavar="SOURCE",
                   help="extra unlabelled text for the word vectors only (never labels, validation or test): dataset "
                        "folders, data files, Hub ids, .txt files or folders of them (read as paragraphs)")
    p.add_argument("--unlabelled-text-column", default="text", help="the text column of --unlabelled-data datasets")
    p.add_argument("--unlabelled-data-split", default=None,
                   help="the split of --unlabelled-data datasets to read (default: every split)")
    p.add_argument("--word-vector-train-repeats", type=int, default=1, metavar="K",
                   help="word2vec reads the training texts K times (keeps their weight beside much --unlabelled-data)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--quick", action="store_true",
                   help="small preset for a smoke test: at most 4,000-6,000 training texts and 2,000 test texts")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--cpu-budget-s", type=float, default=None,
                   help="stop training once this process has spent this many CPU seconds, data and word vectors "
                        "included (equal-budget comparisons on a shared machine; run with OMP_NUM_THREADS=1)")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient clipping threshold; 0 disables it")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    p.add_argument("--init-from", default=None, metavar="LM_DIR",
                   help="fine-tune from this word LM folder (scripts/train_lm.py), ULMFiT's way: its tokenizer and "
                        "backbone, discriminative rates, gradual unfreezing, slanted triangular schedule")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the TF-IDF + logistic-regression baseline reported beside the model (on IMDb: ~45 s)")
    p.set_defaults(**defaults)
    return p


def main(argv=None, **defaults):
    a = build_parser(**defaults).parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from seqhf.utils.runtime import configure_run, is_main_process

    configure_run()
    from seqhf.training.classifier import train_classifier
    from seqhf.training.common import SetupError

    try:
        results = train_classifier(data_options(a), a.model, a.output_dir, quick=a.quick, epochs=a.epochs,
                                   max_grad_norm=a.max_grad_norm, seed=a.seed, resume=a.resume,
                                   baseline=a.baseline, init_from=a.init_from, cpu_budget_s=a.cpu_budget_s,
                                   unlabelled_data=unlabelled_options(a),
                                   word_vector_train_repeats=a.word_vector_train_repeats)
    except SetupError as err:
        sys.exit(f"error: {err}")
    if is_main_process():
        split = results["evaluated_on"]
        print(f"{split} accuracy {results[f'{split}_accuracy']:.4f}  F1 {results[f'{split}_f1']:.4f}  "
              f"macro-F1 {results[f'{split}_macro_f1']:.4f}  ({results[f'{split}_examples']} texts, "
              f"{results['wall_time_s']:.0f} s) -> {a.output_dir}")
        if (results.get("baseline") or {}).get("failed"):
            print(f"baseline ({results['baseline']['method']}) failed: {results['baseline']['failed']}")
        elif results.get("baseline"):
            print(f"baseline on the same splits, {results['baseline']['method']}: accuracy "
                  f"{results['baseline']['accuracy']:.4f}, macro-F1 {results['baseline']['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
