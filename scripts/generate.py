r"""Generate text with a trained char LM.

    python scripts/generate.py --model runs/charlm --prompt "The island" --max-new-tokens 500 \
        --temperature 1.0 --seed 1

Prints the prompt followed by its continuation. The same --seed gives the same text. The book's
sampling scale factor alpha is 1 / --temperature; --temperature 0 decodes greedily.
"""

import argparse
import sys
from pathlib import Path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="folder written by scripts/train_charlm.py")
    parser.add_argument("--prompt", default="", help="text to continue (empty: start from BOS)")
    parser.add_argument("--max-new-tokens", type=int, default=500)
    parser.add_argument("--temperature", type=float, default=1.0, help="1/alpha of the book; 0 = greedy")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens (k >= 1)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling, in (0, 1]")
    parser.add_argument("--device", default=None, help="e.g. cuda; default cpu")
    parser.add_argument("--adapt-on", default=None, metavar="FILE",
                        help="dynamic evaluation: first adapt a copy of the model to this text (the saved weights stay)")
    parser.add_argument("--adapt-lr", type=float, default=None,
                        help="its learning rate; default: the one tuned in the model's eval_results.json, else 0.01")
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        parser.error(f"--model {args.model!r} is not a folder.")
    if args.max_new_tokens <= 0:
        parser.error(f"--max-new-tokens must be positive, got {args.max_new_tokens}.")
    if args.temperature < 0:
        parser.error(f"--temperature must be >= 0, got {args.temperature}.")
    if args.top_k is not None and args.top_k < 1:
        parser.error(f"--top-k must be at least 1 (1 = greedy), got {args.top_k}; leave it out to sample all tokens.")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        parser.error(f"--top-p must be in (0, 1], got {args.top_p}; 1 keeps every token.")
    return args


def main(argv=None):
    args = parse_args(argv)
    # The heavy imports come after the arguments are checked, so --help and mistakes answer at once.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
    from seqhf.inference.generation import check_device, generate_text, load_generator

    try:
        device = check_device(args.device)
        model, tokenizer = load_generator(args.model, device=device)
    except ValueError as err:  # no such device here, or the folder holds no language model
        sys.exit(f"error: {err}")
    if args.adapt_on:
        model = adapted_model(model, tokenizer, args)
    text = generate_text(
        model,
        tokenizer,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    print(args.prompt + text)


def adapted_model(model, tokenizer, args):
    import json

    from seqhf.evaluation.dynamic_eval import adapt_to_text

    lr = args.adapt_lr
    results = Path(args.model) / "eval_results.json"
    if lr is None and results.is_file():
        lr = (json.loads(results.read_text()).get("dynamic_eval") or {}).get("lr")
    text = Path(args.adapt_on).read_text(encoding="utf-8")
    return adapt_to_text(model, tokenizer, text, lr=lr if lr is not None else 0.01).eval()


if __name__ == "__main__":
    main()
