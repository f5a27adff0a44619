"""Word-level (reviews) and character-level (char LM) tokenizers built with the `tokenizers` library.

Both are returned as `PreTrainedTokenizerFast`, so `save_pretrained` writes `tokenizer.json` and
`tokenizer_config.json`, and `AutoTokenizer.from_pretrained(folder)` loads them without seqhf.
"""

import os
from collections.abc import Iterable
from contextlib import contextmanager

from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"


@contextmanager
def tokenizer_threads():
    """Let the Rust tokenizer encode on every core inside the block. The `seqhf` command turns that off
    (TOKENIZERS_PARALLELISM=false: a process forked after the tokenizer's threads ran would deadlock in them);
    the setting is put back on the way out, before anything forks. IMDb's 50,000 reviews on 2 cores: 17 s
    instead of 28 s."""
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # read by the Rust side at each call
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM")
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def review_normalizer():
    """The chapter's cleaning: HTML line breaks become spaces, everything is lowercased."""
    return normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(r"<br\s*/?>"), " "), normalizers.Lowercase()]
    )


def build_word_tokenizer(
    texts: Iterable[str], vocab_size: int = 30000, min_frequency: int = 2, model_max_length: int = 512
) -> PreTrainedTokenizerFast:
    """Word-level tokenizer for reviews: words and single punctuation marks, vocabulary from `texts`.

    The vocabulary keeps at most `vocab_size` entries (the two specials included), each seen at least
    `min_frequency` times. Unknown words become `[UNK]`. `model_max_length` is where truncation cuts.
    """
    if vocab_size < 3:
        raise ValueError(f"`vocab_size` must be at least 3 ([PAD], [UNK] and one word), got {vocab_size}.")
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = review_normalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(behavior="isolated")]
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies punctuation
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK])
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if tokenizer.get_vocab_size() <= 2:
        raise ValueError("No word reached `min_frequency`: the training texts are empty or too few.")
    return _word_tokenizer(tokenizer, model_max_length)


def with_extra_words(tokenizer: PreTrainedTokenizerFast, words: Iterable[str]) -> PreTrainedTokenizerFast:
    """A copy of the word tokenizer `tokenizer` whose vocabulary also holds `words` (those it lacks, in order,
    ids after its own), e.g. the words of pretrained vectors that no training text holds."""
    vocab = dict(tokenizer.get_vocab())
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = tokenizer.backend_tokenizer
    extended = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    extended.normalizer, extended.pre_tokenizer, extended.decoder = backend.normalizer, backend.pre_tokenizer, backend.decoder
    return _word_tokenizer(extended, tokenizer.model_max_length)


def _word_tokenizer(tokenizer: Tokenizer, model_max_length: int) -> PreTrainedTokenizerFast:
    """The transformers tokenizer of a word-level `tokenizers.Tokenizer`."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=model_max_length,
        padding_side="right",
        truncation_side="right",
        model_input_names=["input_ids", "attention_mask"],
    )


def build_char_tokenizer(text: str, model_max_length: int = 1_000_000) -> PreTrainedTokenizerFast:
    """Character-level tokenizer: ids 0..n-1 are the sorted characters of `text`, as in the book.

    `[PAD]`, `[UNK]` and `[BOS]` come after the characters, so the book's ids stay as they are.
    A character not in `text` becomes `[UNK]`. Decoding the ids of in-vocabulary text restores it exactly.
    A literal "[UNK]" in a text is five characters, as training reads it (`split_special_tokens`, saved with
    the tokenizer, so `pipeline` and remote code read prompts the same way).
    """
    chars = sorted(set(text))
    if not chars:
        raise ValueError("Cannot build a character vocabulary from an empty text.")
    vocab = {ch: i for i, ch in enumerate(chars)}
    for special in (PAD, UNK, BOS):
        vocab[special] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every single character is its own piece, spaces and newlines included.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # concatenate characters, no spaces added
    tokenizer.add_special_tokens([PAD, UNK, BOS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        model_max_length=model_max_length,
        padding_side="left",  # generation pads on the left
        clean_up_tokenization_spaces=False,
        split_special_tokens=True,
        model_input_names=["input_ids", "attention_mask"],
    )


def truncate_ids(ids: list, max_length: int, mode: str = "head") -> list:
    """Keep the first `max_length` ids ("head"), or the first quarter and the last three quarters ("head_tail")."""
    if len(ids) <= max_length:
        return ids
    if mode == "head":
        return ids[:max_length]
    head = max_length // 4
    return ids[:head] + ids[len(ids) - (max_length - head) :]
