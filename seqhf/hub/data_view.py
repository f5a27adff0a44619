"""What a card says about a run's data: its name (IMDb, a Hub id, local files) and, for a word LM, the text it
read (IMDb's reviews or any other text), also as a fine-tuned classifier's card quotes its LM."""

from pathlib import Path

from ..data.sources import IMDB_HUB_ID, is_hub_id


def is_imdb(source) -> bool:
    """The chapter's dataset: the Hub's stanfordnlp/imdb or a local copy in a folder named imdb."""
    return str(source).lower() == IMDB_HUB_ID or Path(str(source)).name.lower() == "imdb"


def data_name(source: str) -> str:
    """How a card names a run's data: IMDb, a Hub id, or a local file's or folder's name."""
    if is_imdb(source):
        return "IMDb (Large Movie Review Dataset)"
    return f"`{source}`" if on_the_hub(source) else f"`{Path(source).name}` (local files)"


def on_the_hub(source: str) -> bool:
    """Whether a run's data was a Hub dataset id (not a local path that happens to look like one)."""
    return is_hub_id(source) and not Path(source).exists()


def wordlm_view(results: dict) -> dict:
    """What a word LM's card says of its text: IMDb's reviews, other data in the stanfordnlp/imdb layout (its
    reviews), or other text (its texts), and where its held-out texts came from (`heldout_split`, the card's
    model-index). Runs recorded before other text could be read (no `data`) read IMDb."""
    data = results.get("data") or dict(source=IMDB_HUB_ID, layout="imdb")
    source, reviews = str(data.get("source")), data.get("layout") == "imdb"
    hub_id = on_the_hub(source)
    texts = "reviews" if reviews else "texts"
    heldout = ("the texts of a classifier's validation split" if data.get("read_as") == "classifier splits" else
               f"held-out {texts} carved from {'train' if reviews else 'the text'}")
    return dict(imdb=reviews and is_imdb(source), reviews=reviews, texts=texts,
                heldout_split=f"{heldout} (never trained on)", data_name=data_name(source),
                dataset_id=source if hub_id else Path(source).name or "local", hub_id=hub_id,
                described=describe_lm_reviews(results) if reviews else describe_lm_texts(results))


def describe_lm_texts(results: dict) -> str:
    """The text a word LM trained on when it was not in the IMDb layout: where it was read, how many texts were
    held out, and how many of the rest the model trained on."""
    d = results["data"]
    tokens = f" ({results['train_tokens']:,} tokens)" if results.get("train_tokens") else ""
    if d.get("read_as") == "classifier splits":
        unlabelled = d.get("unlabelled_texts") or 0
        return (f"the texts of a classifier's training split, without their labels"
                f"{f', and {unlabelled:,} unlabelled texts' if unlabelled else ''}: {d['train_texts']:,} texts{tokens}. "
                f"The {d['heldout_texts']:,} texts of its validation split were held out and never trained on: half "
                "validate each epoch, the other half give the figures below")
    if d.get("read_as") == "paragraphs":
        where = ("its paragraphs (blank-line separated, or lines where a file has no blank line; a Project Gutenberg "
                 "header and licence, where there is one, stripped)")
    else:
        splits = d.get("splits") or []
        where = f"the `{d['text_column']}` column of its split{'s' if len(splits) > 1 else ''} " + ", ".join(f"`{s}`" for s in splits)
    fraction, cap = d.get("heldout_fraction") or 0, d.get("heldout_cap")
    share = f"{fraction:g}" if fraction >= 1 else f"{100 * fraction:g} %"
    used, left = d["train_texts"], d["train_texts_available"]
    sample = "all" if used == left else "a sample with seed 42"
    return (f"{where}: {d['texts']:,} texts. {d['heldout_texts']:,} of them were held out, at random with seed "
            f"{results.get('seed')} ({share}, at least 2{f', at most {cap:,}' if cap is not None else ''}), and never "
            f"trained on: half validate each epoch, the other half give the figures below. The model trained on "
            f"{results['train_reviews']:,} texts{tokens} of the {left:,} left ({sample})")


def describe_lm_reviews(results: dict) -> str:
    """The IMDb reviews a word LM trained on: how many of its labelled training and of its unlabelled reviews."""
    total = f"{results['train_reviews']:,} reviews" if results.get("train_reviews") else "reviews"
    if results.get("train_tokens"):
        total += f" ({results['train_tokens']:,} tokens)"
    split = "(the training split less a validation part carved out with a fixed seed)"
    if results.get("labelled_train_reviews") is None:  # recorded before the parts were
        return (f"{total} from its labelled training reviews {split} or its unlabelled reviews (this run did not "
                "record how many came from each)")

    def part(used, available, what):
        if not available:
            return f"no {what} (the dataset has none)"
        if not used:
            return f"none of its {available:,} {what}"
        return f"all {used:,} of its {what}" if used == available else f"{used:,} of its {available:,} {what}"

    labelled = part(results["labelled_train_reviews"], results.get("labelled_train_available"), "labelled training reviews")
    unlabelled = part(results["unlabelled_reviews"], results.get("unlabelled_available"), "unlabelled reviews")
    return f"{total}: {labelled} {split} and {unlabelled}"


def init_lm_view(init_from: dict | None) -> dict:
    """What a fine-tuned classifier's card says of its LM's text: `lm_texts`, the noun for its held-out text, and
    `lm_trained_on`, what follows its training token count (LMs recorded before other text could be read: IMDb)."""
    init_from = init_from or {}
    data = init_from.get("data") or dict(layout="imdb")
    count = f"{init_from['train_reviews']:,}" if init_from.get("train_reviews") is not None else "?"
    if data.get("layout") == "imdb":
        return dict(lm_texts="reviews", lm_trained_on=f"{count} reviews, never validation or test ones")
    if data.get("read_as") == "classifier splits":
        unlabelled = data.get("unlabelled_texts") or 0
        labelled = f"{init_from['train_reviews'] - unlabelled:,}" if init_from.get("train_reviews") is not None else "?"
        return dict(lm_texts="texts (half of this classifier's validation texts)",
                    lm_trained_on=f"this classifier's {labelled} training texts, without their labels"
                                  + (f", and {unlabelled:,} unlabelled texts" if unlabelled else ""))
    splits = data.get("splits") or []
    where = f", its split{'s' if len(splits) > 1 else ''} " + ", ".join(f"`{s}`" for s in splits) if splits else ""
    return dict(lm_texts="texts", lm_trained_on=f"{count} texts of {data_name(str(data.get('source')))}{where}")


def wordlm_card_fields(task: str, results: dict) -> dict:
    """The word-LM template's own variables (none for the other tasks)."""
    if task != "wordlm":
        return {}
    view = wordlm_view(results)
    made = "fine-tuned from a pretrained word LM" if results.get("init_from") else "trained from scratch"
    return dict(imdb=view["imdb"], reviews=view["reviews"], texts=view["texts"], data_name=view["data_name"],
                lm_reviews=view["described"], made=made,
                init_lm_trained_on=init_lm_view(results.get("init_from"))["lm_trained_on"])
