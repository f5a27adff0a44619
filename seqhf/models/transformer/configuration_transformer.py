"""Configuration of the seqhf Transformer models (self-attention as in "Attention Is All You Need")."""

import math

from transformers import PretrainedConfig
from transformers.activations import ACT2FN

POSITION_EMBEDDING_TYPES = ("sinusoidal", "learned")
POOLINGS = ("mean", "cls")

# Every seqhf folder loads through any of the four Auto classes, as a BERT folder does.
TRANSFORMER_AUTO_MAP = {
    "AutoConfig": "configuration_transformer.SeqTransformerConfig",
    "AutoModel": "modeling_transformer.SeqTransformerModel",
    "AutoModelForSequenceClassification": "modeling_transformer.SeqTransformerForSequenceClassification",
    "AutoModelForCausalLM": "modeling_transformer.SeqTransformerForCausalLM",
}


def _check_positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def _check_dropout(name, value):
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")


def _check_token_id(name, value, vocab_size):
    if value is not None and not 0 <= value < vocab_size:
        raise ValueError(f"`{name}`={value} is outside the vocabulary [0, {vocab_size}).")


class SeqTransformerConfig(PretrainedConfig):
    r"""
    Configuration of a small Transformer: token + position embeddings → stacked self-attention
    layers → head.

    Args:
        vocab_size: number of token ids.
        hidden_size: width of the model (d_model); a multiple of `num_attention_heads`.
        num_hidden_layers: number of Transformer layers.
        num_attention_heads: heads per self-attention layer.
        intermediate_size: width of the position-wise feed-forward layer (d_ff).
        hidden_act: activation of the feed-forward layer (a key of `transformers.activations.ACT2FN`).
        max_position_embeddings: longest input (prompt plus cached tokens) the model accepts.
        position_embedding_type: "sinusoidal" (fixed, as in the paper) or "learned".
        embedding_dropout: dropout on the sum of token and position embeddings.
        hidden_dropout: dropout on the output of each attention and feed-forward sub-layer.
        attention_dropout: dropout on the attention weights.
        classifier_dropout: dropout before the classifier.
        pre_norm: LayerNorm before each sub-layer plus a final LayerNorm (GPT-2 style, trains
            stably without warm-up); `False` is the paper's post-norm `LayerNorm(x + sublayer(x))`.
        layer_norm_eps: epsilon of the LayerNorms.
        pooling: how the classifier summarises the sequence: "mean" over real tokens, or "cls",
            the first real token of each row (put a [CLS]/[BOS] token there).
        is_decoder: causal attention in `SeqTransformerModel` (the causal LM is always causal and
            the classifier always bidirectional).
        initializer_range: std of the normal init of embeddings and linear layers.
        tie_word_embeddings: share the token embedding matrix with the LM head.
        calibration_smoothing: the classifier's scores are (1 - calibration_smoothing) * softmax(logits) +
            calibration_smoothing / num_labels, returned as their logarithms in `logits` (so `pipeline`'s softmax
            gives them back). 0 (the default): the plain softmax. Fitted with the temperature on the validation
            split at the end of a seqhf run (`seqhf.training.calibration`); single-label classifiers only.
        calibration_entropy_slope: before the smoothing, each text's logits are divided by exp(slope * H), H the
            entropy of their softmax over log(num_labels) (0 for a sure text, 1 for a uniform one): a negative
            slope sharpens unsure texts and softens sure ones, and no text's argmax changes. 0 (the default):
            none. Fitted with the temperature (`seqhf.evaluation.calibration.fit_calibration`); single-label only.
    """

    model_type = "seqhf-transformer"

    def __init__(
        self,
        vocab_size=30000,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        hidden_act="gelu",
        max_position_embeddings=512,
        position_embedding_type="sinusoidal",
        embedding_dropout=0.1,
        hidden_dropout=0.1,
        attention_dropout=0.1,
        classifier_dropout=0.1,
        pre_norm=True,
        layer_norm_eps=1e-5,
        pooling="mean",
        is_decoder=False,
        initializer_range=0.02,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
        tie_word_embeddings=True,
        use_cache=True,
        calibration_smoothing=0.0,
        calibration_entropy_slope=0.0,
        **kwargs,
    ):
        for name, value in (
            ("vocab_size", vocab_size),
            ("hidden_size", hidden_size),
            ("num_hidden_layers", num_hidden_layers),
            ("num_attention_heads", num_attention_heads),
            ("intermediate_size", intermediate_size),
            ("max_position_embeddings", max_position_embeddings),
        ):
            _check_positive(name, value)
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"`hidden_size` ({hidden_size}) must be divisible by `num_attention_heads` ({num_attention_heads})."
            )
        if position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"`position_embedding_type` must be one of {POSITION_EMBEDDING_TYPES}, got {position_embedding_type!r}."
            )
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}, got {pooling!r}.")
        if hidden_act not in ACT2FN:
            raise ValueError(f"`hidden_act` {hidden_act!r} is not a known activation (see transformers' ACT2FN).")
        for name, value in (
            ("embedding_dropout", embedding_dropout),
            ("hidden_dropout", hidden_dropout),
            ("attention_dropout", attention_dropout),
            ("classifier_dropout", classifier_dropout),
            ("calibration_smoothing", calibration_smoothing),
        ):
            _check_dropout(name, value)
        if not float(initializer_range) >= 0:
            raise ValueError(f"`initializer_range` must be at least 0, got {initializer_range!r}.")
        if not float(layer_norm_eps) > 0:
            raise ValueError(f"`layer_norm_eps` must be positive, got {layer_norm_eps!r}.")
        for name, value in (("pad_token_id", pad_token_id), ("bos_token_id", bos_token_id)):
            _check_token_id(name, value, vocab_size)
        for eos in eos_token_id if isinstance(eos_token_id, list) else [eos_token_id]:
            _check_token_id("eos_token_id", eos, vocab_size)

        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.position_embedding_type = position_embedding_type
        self.embedding_dropout = embedding_dropout
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        self.classifier_dropout = classifier_dropout
        self.pre_norm = pre_norm
        self.layer_norm_eps = layer_norm_eps
        self.pooling = pooling
        self.is_decoder = is_decoder
        self.initializer_range = initializer_range
        self.tie_word_embeddings = tie_word_embeddings
        self.use_cache = use_cache
        if not math.isfinite(float(calibration_entropy_slope)):
            raise ValueError(f"`calibration_entropy_slope` must be a finite number, got {calibration_entropy_slope!r}.")
        self.calibration_smoothing = float(calibration_smoothing)
        self.calibration_entropy_slope = float(calibration_entropy_slope)
        kwargs.setdefault("auto_map", dict(TRANSFORMER_AUTO_MAP))
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )


__all__ = ["SeqTransformerConfig"]
