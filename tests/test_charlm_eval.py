"""The char LM's evaluations beyond the static loss: the n-gram baseline, the mixture and dynamic evaluation."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from seqhf import SeqLSTMConfig, SeqLSTMForCausalLM
from seqhf.evaluation.charlm import char_log_probs, mixture_nats, tune_mixture
from seqhf.evaluation.dynamic_eval import adapt, dynamic_eval
from seqhf.evaluation.ngram import CharKneserNey

TEXT = "the cat sat on the mat. the dog sat on the log. " * 20


# ------------------------------------------------------------------ n-gram


@pytest.mark.parametrize("modified", [True, False])
def test_ngram_distribution_sums_to_one(modified):
    model = CharKneserNey(order=4, modified=modified).fit(TEXT)
    alphabet = sorted(model.vocab) + ["\x00"]  # "\x00" was never seen: it takes the [UNK] share
    for history in ["", "t", "the", "xyz", " sa", "og."]:
        assert sum(model.probability(history, c) for c in alphabet) == pytest.approx(1.0, abs=1e-9), history


def test_ngram_learns_context_and_scores_unseen_characters():
    model = CharKneserNey(order=5).fit(TEXT)
    assert model.probability("the ", "c") > 0.2 and model.probability("the ", "c") > model.probability("", "c")
    assert model.nats_per_char(TEXT[:200]) < 0.5  # a text it has seen over and over
    assert 0 < model.probability("the ", "Z") < min(model.probability("the ", c) for c in "cmdl") / 20  # unseen: the [UNK] share, small but not zero
    assert model.char_log_probs("abc").shape == (2,)  # every character but the first, as the neural scores
    with pytest.raises(ValueError, match="shorter than the n-gram order"):
        CharKneserNey(order=7).fit("abc")


def test_higher_order_helps_on_structured_text():
    held = "the dog sat on the mat. the cat sat on the log. "
    assert CharKneserNey(5).fit(TEXT).nats_per_char(held) < CharKneserNey(1).fit(TEXT).nats_per_char(held)


# ------------------------------------------------------------------ mixture


def test_mixture_weight_is_tuned_and_bounded():
    rng = np.random.default_rng(0)
    good, bad = np.log(rng.uniform(0.5, 0.9, 500)), np.log(rng.uniform(0.01, 0.1, 500))
    assert tune_mixture(good, bad) >= 0.9  # the better model gets (nearly) all the weight
    assert tune_mixture(bad, good) <= 0.1
    assert mixture_nats(good, bad, 1.0) == pytest.approx(-good.mean())
    # Models right on different characters: the mixture beats both.
    a = np.log(np.where(np.arange(500) % 2, 0.9, 0.05))
    b = np.log(np.where(np.arange(500) % 2, 0.05, 0.9))
    w = tune_mixture(a, b)
    assert 0.2 < w < 0.8 and mixture_nats(a, b, w) < min(-a.mean(), -b.mean())


# ------------------------------------------------------------------ dynamic evaluation


def _tiny_lm(seed=0):
    torch.manual_seed(seed)
    config = SeqLSTMConfig(vocab_size=30, embedding_size=8, hidden_size=16, is_decoder=True)
    return SeqLSTMForCausalLM(config).eval()


def _ids(n, seed):
    return torch.randint(0, 30, (n,), generator=torch.Generator().manual_seed(seed))


def test_each_character_is_scored_before_the_update():
    model = _tiny_lm()
    a, b = _ids(120, 1), _ids(80, 2)
    scores_a, _ = dynamic_eval(model, a, lr=0.5, segment_len=10)
    scores_ab, _ = dynamic_eval(model, torch.cat([a, b]), lr=0.5, segment_len=10)
    # What follows (and what the model will learn from it) cannot change the score of what came before.
    np.testing.assert_allclose(scores_ab[: len(scores_a)], scores_a, rtol=1e-5, atol=1e-6)
    # The first segment is scored with the trained weights, as static evaluation scores it.
    static = char_log_probs(model, a, window=10)
    np.testing.assert_allclose(scores_a[:10], static[:10], rtol=1e-5, atol=1e-6)
    # Later segments do differ from static scores: the model learnt from the earlier ones.
    assert not np.allclose(scores_a[10:], static[10:], atol=1e-4)


def test_adapting_on_a_text_scores_it_better_and_leaves_saved_weights_untouched(tmp_path):
    model = _tiny_lm()
    model.save_pretrained(tmp_path / "lm")
    saved = load_file(tmp_path / "lm" / "model.safetensors")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    text_a = torch.tensor([1, 2, 3, 4, 5] * 40)  # a repetitive text the random model knows nothing about
    static_a = -char_log_probs(model, text_a, window=50).mean()
    adapted = adapt(model, text_a, lr=1.0, segment_len=20)
    assert -char_log_probs(adapted, text_a, window=50).mean() < static_a - 0.5
    dynamic_a = -dynamic_eval(model, text_a, lr=1.0, segment_len=20)[0].mean()
    assert dynamic_a < static_a
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    reloaded = load_file(tmp_path / "lm" / "model.safetensors")
    assert all(torch.equal(reloaded[k], saved[k]) for k in saved)


def test_zero_learning_rate_is_static_evaluation():
    model = _tiny_lm()
    ids = _ids(200, 3)
    scores, _ = dynamic_eval(model, ids, lr=0.0, segment_len=25)
    np.testing.assert_allclose(scores, char_log_probs(model, ids, window=25), rtol=1e-5, atol=1e-6)
    assert math.isfinite(scores.sum())
    with pytest.raises(ValueError, match="segment_len"):
        dynamic_eval(model, ids, lr=0.1, segment_len=0)


def test_generation_option_adapts_a_copy_to_a_text():
    from seqhf.evaluation.dynamic_eval import adapt_to_text
    from seqhf.data.tokenization import build_char_tokenizer

    text = "the engineer lit the fire. " * 12
    tokenizer = build_char_tokenizer(text + "xyz")
    torch.manual_seed(0)
    model = SeqLSTMForCausalLM(SeqLSTMConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=16,
                                             is_decoder=True)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = adapt_to_text(model, tokenizer, text, lr=1.0, segment_len=20)
    ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert -char_log_probs(adapted, ids, window=50).mean() < -char_log_probs(model, ids, window=50).mean() - 0.2
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="at least two characters"):
        adapt_to_text(model, tokenizer, "t", lr=1.0)
    model.config.reads_backward = True  # `seqhf generate BWD_LM --adapt-on FILE` adapted it to the text read forwards
    backward = adapt_to_text(model, tokenizer, text, lr=1.0, segment_len=20)
    expected = adapt(model, ids.flip(0), lr=1.0, segment_len=20)
    assert all(torch.equal(v, expected.state_dict()[k]) for k, v in backward.state_dict().items())


def test_a_word_lm_is_not_scored_in_nats_per_character(tmp_path):
    """`seqhf evaluate WORD_LM --text FILE` printed a per-word loss as "nats/char", beside a character n-gram."""
    from seqhf.data.classification import DataError
    from seqhf.data.tokenization import build_word_tokenizer
    from seqhf.evaluation.saved import evaluate_char_lm

    words = build_word_tokenizer(["the island was far and the sea was grey"] * 2, vocab_size=64, min_frequency=1)
    config = SeqLSTMConfig(vocab_size=len(words), embedding_size=8, hidden_size=8, pad_token_id=words.pad_token_id,
                           is_decoder=True)
    SeqLSTMForCausalLM(config).save_pretrained(tmp_path)
    words.save_pretrained(tmp_path)
    with pytest.raises(DataError, match="not a character LM"):
        evaluate_char_lm(tmp_path, "the island was far")


def test_a_text_too_short_to_score_is_refused(tmp_path):
    """A one-character text failed in torch.cat ("expected a non-empty list of Tensors")."""
    from seqhf.data.tokenization import build_char_tokenizer
    from seqhf.evaluation.saved import evaluate_char_lm

    chars = build_char_tokenizer(TEXT)
    SeqLSTMForCausalLM(SeqLSTMConfig(vocab_size=len(chars), embedding_size=8, hidden_size=8,
                                     is_decoder=True)).save_pretrained(tmp_path)
    chars.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"^A text of 1 character\(s\) or token\(s\) is too short to score"):
        evaluate_char_lm(tmp_path, "a")
    assert evaluate_char_lm(tmp_path, "at")["chars"] == 2


def test_evaluate_char_lm_reads_a_path_and_refuses_caps_that_cannot_score(tmp_path):
    """`max_chars=-5` scored all but the last 5 characters; a `pathlib.Path` failed with "'PosixPath' object has no
    attribute 'strip'" (and as `ngram_train`, "object of type 'PosixPath' has no len()")."""
    from seqhf.data.tokenization import build_char_tokenizer
    from seqhf.evaluation.saved import evaluate_char_lm

    chars = build_char_tokenizer(TEXT)
    folder = tmp_path / "lm"
    SeqLSTMForCausalLM(SeqLSTMConfig(vocab_size=len(chars), embedding_size=8, hidden_size=8,
                                     is_decoder=True)).save_pretrained(folder)
    chars.save_pretrained(folder)
    (tmp_path / "book.txt").write_text(TEXT)
    from_path = evaluate_char_lm(folder, tmp_path / "book.txt", ngram_train=tmp_path / "book.txt", ngram_order=3)
    from_text = evaluate_char_lm(folder, TEXT, ngram_train=TEXT, ngram_order=3)
    assert from_path == from_text and from_path["chars"] == len(TEXT)
    for max_chars in (-5, 0, 1):
        with pytest.raises(ValueError, match=rf"^`max_chars` must be at least 2, got {max_chars}\."):
            evaluate_char_lm(folder, TEXT, max_chars=max_chars)
    with pytest.raises(ValueError, match=r"^`ngram_order` must be at least 1, got 0\."):
        evaluate_char_lm(folder, TEXT, ngram_train=TEXT, ngram_order=0)
    with pytest.raises(TypeError, match=r"^`text` must be the text \(str\) or a pathlib.Path"):
        evaluate_char_lm(folder, None)
