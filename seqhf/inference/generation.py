"""Text generation from a saved char LM folder (used by `seqhf generate`)."""

import numbers
import warnings

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer, set_seed

from .saved_folder import check_saved_folder


def check_device(device):
    """`device` as a torch.device that works here (None stays None: the CPU), or a ValueError in one line."""
    if device is None:
        return None
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:  # e.g. "Torch not compiled with CUDA enabled"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"device {str(device)!r} cannot be used here: {reason}") from None
    return device


def load_generator(model_dir, device=None):
    """The causal LM and its tokenizer from a folder written by the training scripts, on `device` (e.g. "cuda";
    default the CPU; one that cannot be used here is a ValueError that says why). A classifier folder
    is refused with a ValueError that says so (the models refuse a config saved without an LM head), and so is
    a folder whose save did not finish (`IncompleteFolderError`, naming its missing or empty files)."""
    device = check_device(device)
    check_saved_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


def encode_prompt(tokenizer, prompt: str) -> torch.Tensor:
    """The prompt's ids, (1, length). Characters the vocabulary lacks become `[UNK]`, with one warning
    naming them all. An empty prompt gives a (1, 0) tensor: generation then starts from BOS. A prompt is text:
    a literal "[UNK]" in it is read as its characters (or words), never as the special token."""
    if not isinstance(prompt, str):
        raise TypeError(f"The prompt must be a string, got {type(prompt).__name__}.")
    ids = tokenizer(prompt, add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]  # longer than the positions: windows
    unk = tokenizer.unk_token_id
    if unk is not None and unk in ids:
        unknown = sorted(_unknown_pieces(tokenizer, prompt))
        warnings.warn(
            f"The prompt has {ids.count(unk)} character(s) outside the model's vocabulary, fed as "
            f"{tokenizer.unk_token}: {unknown}.",
            stacklevel=2,
        )
    return torch.tensor([ids], dtype=torch.long)


def _unknown_pieces(tokenizer, text):
    vocab = tokenizer.get_vocab()
    pieces = tokenizer.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    return {piece for piece, _ in pieces if piece not in vocab}


def generate_text(
    model,
    tokenizer,
    prompt: str,
    max_new_tokens: int = 500,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    streamer=None,
) -> str:
    """The continuation of `prompt` (new text only), sampled with `model.generate()`.

    `temperature` divides the logits, so the book's scale factor alpha is `1 / temperature`;
    `temperature=0` decodes greedily. Without `top_k`/`top_p` the whole distribution is sampled, as in
    the book. The same `seed` gives the same text. A model with an end-of-text token (a word LM's `[EOS]`)
    stops there, before `max_new_tokens`; an `[UNK]` it generates stays in the text as `[UNK]`.

    A backward LM (`config.reads_backward`, `seqhf train lm --backward`) writes what comes before `prompt`: the
    prompt is the end of a text, the new text (returned left to right) goes in front of it (`with_prompt`), and an
    empty prompt writes the end of a text. Its words come last first, so it cannot fill a `streamer` (a ValueError).
    """
    return generate_continuation(model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p, seed,
                                 streamer)[0]


def generate_continuation(model, tokenizer, prompt: str, max_new_tokens: int = 500, temperature: float = 1.0,
                          top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                          streamer=None) -> tuple[str, int, bool]:
    """`generate_text`'s text, how many tokens were generated, and whether generation stopped at the model's
    end-of-text token (for `seqhf generate` to say why the text is shorter than asked)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"`seed` must be an integer (the same seed, the same text) or None (not seeded), got {seed!r} "
                        f"({type(seed).__name__}).")
    if max_new_tokens is None or max_new_tokens <= 0:
        raise ValueError(f"`max_new_tokens` must be a positive integer, got {max_new_tokens!r}.")
    if temperature is None or temperature < 0:
        raise ValueError(f"`temperature` must be >= 0 (0 means greedy, 1 samples as trained), got {temperature}.")
    if top_k is not None and top_k < 1:
        raise ValueError(f"`top_k` must be at least 1 (1 is greedy), got {top_k}; None samples from every token.")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"`top_p` must be in (0, 1], got {top_p}.")
    backward = reads_backward(model)
    if backward and streamer is not None:
        raise ValueError("A backward LM (config.reads_backward) writes a text from its end, last word first: streamed, "
                         "its words would come right to left. Generate without a streamer; the text comes at once.")
    input_ids = encode_prompt(tokenizer, prompt).to(model.device)
    if backward:
        input_ids = input_ids.flip(1)  # the prompt ends the text, which the model reads from its last word
    if seed is not None:
        set_seed(seed)
    options = dict(do_sample=False)
    if temperature > 0:
        options = dict(do_sample=True, temperature=temperature, top_k=top_k or 0)
        if top_p is not None:
            options["top_p"] = top_p
    output = model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        streamer=streamer,
        tokenizer=tokenizer,  # for `stop_strings` in the folder's generation_config.json
        **options,
    )
    prompt_length = input_ids.shape[1] or 1  # an empty prompt became BOS
    new = output[0, prompt_length:]
    ended = tokenizer.eos_token_id is not None and len(new) > 0 and int(new[-1]) == tokenizer.eos_token_id
    if backward:
        return text_before(tokenizer, new.flip(0), output[0, :prompt_length].flip(0)), len(new), ended
    # Decoded with the prompt, so that a word LM's first new word gets the space its decoder puts between words
    # (decoded alone it would stick to the prompt's last word); a char LM's text is the same either way.
    whole, prompt_text = visible_text(tokenizer, output[0]), visible_text(tokenizer, output[0, :prompt_length])
    text = whole[len(prompt_text):] if whole.startswith(prompt_text) else visible_text(tokenizer, new)
    return text, len(new), ended


def reads_backward(model) -> bool:
    """Whether `model` reads its texts from their last token to their first (`seqhf train lm --backward`)."""
    return bool(getattr(model.config, "reads_backward", False))


def text_before(tokenizer, new_ids, prompt_ids) -> str:
    """The text of `new_ids`, which come before `prompt_ids` (both left to right), with the space a word LM's
    decoder puts between them: decoded together and the prompt's part cut off, as for a forward continuation."""
    whole, prompt_text = visible_text(tokenizer, torch.cat([new_ids, prompt_ids])), visible_text(tokenizer, prompt_ids)
    return whole[:len(whole) - len(prompt_text)] if whole.endswith(prompt_text) else visible_text(tokenizer, new_ids)


def with_prompt(model, prompt: str, text: str) -> str:
    """The prompt and `generate_text`'s text as they read: the text after the prompt, or before it for a backward
    LM, which writes what comes before its prompt."""
    return text + prompt if reads_backward(model) else prompt + text


def visible_text(tokenizer, ids) -> str:
    """The text of `ids` without special tokens ([BOS], [EOS], [PAD]) but `[UNK]`, which stays visible: a word
    the model does not know is still a word of its text (dropped, words would join and go missing unsaid)."""
    hidden = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
    return tokenizer.decode([i for i in ids.tolist() if i not in hidden])


class VisibleTextStreamer(TextIteratorStreamer):
    """A `TextIteratorStreamer` that yields the text `visible_text` gives: special tokens left out but `[UNK]`."""

    def __init__(self, tokenizer, **kwargs):
        super().__init__(tokenizer, skip_special_tokens=False, **kwargs)
        self.hidden = torch.tensor(sorted(set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}), dtype=torch.long)

    def put(self, value):
        value = value[0].cpu() if value.dim() > 1 and value.shape[0] == 1 else value.cpu()
        super().put(value[~torch.isin(value, self.hidden)] if value.dim() == 1 else value)  # a batch: refused there
