"""Word attributions (seqhf.inference.explain): the decisive word of a review gets the largest weight."""

import random

import pytest
import torch

from seqhf import SeqLSTMConfig, SeqLSTMForSequenceClassification, SeqTransformerConfig
from seqhf import SeqTransformerForSequenceClassification
from seqhf.inference.explain import explain, integrated_gradients
from seqhf.data.tokenization import build_word_tokenizer

FILLER = "the film plot actor scene story music camera script ending cast and it was a with".split()
LABELS = {0: "negative", 1: "positive"}


def planted_reviews(n, seed):
    """Filler words with one decisive word planted at a random place: 'great' (positive) or 'awful'."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.randrange(2)
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
        words.insert(rng.randrange(len(words) + 1), "great" if label else "awful")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def make_model(kind, vocab_size, pad_token_id):
    common = dict(vocab_size=vocab_size, num_labels=2, pad_token_id=pad_token_id, id2label=LABELS,
                  label2id={v: k for k, v in LABELS.items()})  # fmt: skip
    if kind == "lstm":
        config = SeqLSTMConfig(embedding_size=16, hidden_size=16, bidirectional=True, pooling="concat", **common)
        return SeqLSTMForSequenceClassification(config)
    config = SeqTransformerConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=32, pooling="mean", **common)  # fmt: skip
    return SeqTransformerForSequenceClassification(config)


@pytest.fixture(scope="module", params=["lstm", "transformer"])
def trained(request):
    """A tiny classifier trained (about a second) until the planted word decides every review."""
    torch.manual_seed(0)
    texts, labels = planted_reviews(512, seed=0)
    tok = build_word_tokenizer(texts, vocab_size=64, min_frequency=1, model_max_length=32)
    model = make_model(request.param, len(tok), tok.pad_token_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(120):
        batch = slice((step * 32) % 512, (step * 32) % 512 + 32)
        enc = tok(texts[batch], padding=True, return_tensors="pt")
        loss = model(**enc, labels=torch.tensor(labels[batch])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    test_texts, test_labels = planted_reviews(64, seed=1)
    with torch.no_grad():
        predictions = model(**tok(test_texts, padding=True, return_tensors="pt")).logits.argmax(-1)
    assert (predictions == torch.tensor(test_labels)).float().mean() == 1.0, "the fixture model did not learn the rule"
    return model, tok


@pytest.mark.parametrize("word, label", [("great", "positive"), ("awful", "negative")])
def test_the_planted_word_gets_the_largest_weight(trained, word, label):
    model, tok = trained
    text = f"the story and the camera , {word} music with the cast and the ending"
    explanation = explain(model, tok, text)
    assert explanation.label == label
    assert explanation.probabilities[label] > 0.9
    weights = {piece: w for piece, _, _, w in explanation.tokens}
    top = max(explanation.tokens, key=lambda t: abs(t[3]))
    assert top[0] == word, explanation.tokens
    assert weights[word] == pytest.approx(1.0)  # scaled so the largest is 1, and it pushes towards the label
    others = [abs(w) for piece, _, _, w in explanation.tokens if piece != word]
    assert max(others) < 0.5


def test_attributions_add_up_to_the_change_in_log_probability(trained):
    """Completeness: the sum over tokens is log p(x) - log p(baseline), within the quadrature error."""
    model, tok = trained
    ids = tok("the film was great and the cast", return_tensors="pt")["input_ids"]
    attributions = integrated_gradients(model, ids, target=1, steps=256)
    with torch.no_grad():
        at_text = torch.log_softmax(model(input_ids=ids).logits, -1)[0, 1]
        zeros = torch.zeros_like(model.get_input_embeddings()(ids))
        at_zero = torch.log_softmax(model(inputs_embeds=zeros).logits, -1)[0, 1]
    assert float(attributions.sum()) == pytest.approx(float(at_text - at_zero), abs=0.02)


def test_spans_rebuild_the_text_and_shade_only_words(trained):
    model, tok = trained
    text = "  The  film was GREAT!\nReally."
    explanation = explain(model, tok, text)
    spans = explanation.spans(text)
    assert "".join(piece for piece, _ in spans) == text
    shaded = [piece for piece, weight in spans if weight is not None]
    assert shaded == ["The", "film", "was", "GREAT", "!", "Really", "."]
    assert all(piece.strip() == "" for piece, weight in spans if weight is None)


def test_bad_input_is_refused(trained):
    model, tok = trained
    with pytest.raises(ValueError, match="non-empty"):
        explain(model, tok, "   ")
    with pytest.raises(ValueError, match="steps"):
        explain(model, tok, "great", steps=0)
