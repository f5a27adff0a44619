"""Configuration of the seqhf recurrent models (SimpleRNN, LSTM, GRU)."""

import math

from transformers import PretrainedConfig
from transformers.activations import ACT2FN

RNN_TYPES = ("lstm", "gru", "rnn")
POOLINGS = ("last", "max", "mean", "concat")
MAX_NGRAM_BUCKETS = 2**31  # the hash stays well inside int64: bucket * multiplier < 2**52

# Every seqhf folder loads through any of the four Auto classes, as a BERT folder does.
LSTM_AUTO_MAP = {
    "AutoConfig": "configuration_lstm.SeqLSTMConfig",
    "AutoModel": "modeling_lstm.SeqLSTMModel",
    "AutoModelForSequenceClassification": "modeling_lstm.SeqLSTMForSequenceClassification",
    "AutoModelForCausalLM": "modeling_lstm.SeqLSTMForCausalLM",
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


class SeqLSTMConfig(PretrainedConfig):
    r"""
    Configuration of a recurrent sequence model: embedding → stacked (bi)RNN → head.

    Args:
        vocab_size: number of token ids.
        embedding_size: width of the token embeddings.
        hidden_size: hidden units per direction of each recurrent layer.
        num_hidden_layers: number of stacked recurrent layers.
        bidirectional: read the sequence both ways (classification only).
        rnn_type: "lstm", "gru" or "rnn" (Elman SimpleRNN with tanh).
        embedding_dropout: dropout on the embeddings.
        hidden_dropout: dropout between stacked recurrent layers.
        word_dropout: probability of dropping a word type from the vocabulary for a whole batch: every
            occurrence of it in the batch gets a zero embedding (AWD-LSTM's embedding dropout).
        weight_dropout: DropConnect on the hidden-to-hidden matrices of every recurrent layer: one mask per
            forward pass, shared by all time steps (AWD-LSTM's weight drop). torch's fused kernel still runs.
        output_dropout: dropout on the last recurrent layer's outputs, before the LM head or the pooling.
        locked_dropout: make `embedding_dropout`, `hidden_dropout` and `output_dropout` locked (variational):
            one mask per sequence, the same at every time step.
        classifier_dropout: dropout before the classifier (and before the LM head).
        pooling: how the classifier summarises the sequence: "last" (final state of each
            direction), "max", "mean" or "concat" = [last; max; mean].
        classifier_hidden_size: width of an optional hidden layer in the classifier
            (the book uses Dense(64, relu)); `None` means a single linear layer.
        classifier_activation: activation of that hidden layer.
        initializer_range: std of the normal init of embeddings and linear layers.
        lm_head_bias: whether the causal LM's output layer has a bias; `None` (default): one unless the head
            is tied to the embeddings. A tied word LM needs one: without an output bias to hold the unigram
            frequencies, its first steps push them into the top layer's state, which saturates and stops
            learning (see `seqhf.training.wordlm`, which sets True and starts the bias at the log unigram frequencies).
        ngram_buckets: size of the classifier's "wide" path (0, the default: none). When positive, the classifier
            also hashes the n-grams (of `ngram_orders`) of its input ids into this many buckets, each holding one
            weight per label (a linear model over hashed n-grams, as fastText and NBSVM read a text), and adds
            their sum, divided by the square root of the number of n-grams, to the recurrent head's logits.
            N-grams that touch padding never count, so left and right padding give the same logits. The path
            needs `input_ids`: with `inputs_embeds` alone only the recurrent head answers.
        ngram_orders: the n-gram lengths the wide path reads (default unigrams, bigrams and trigrams).
        ngram_dropout: in training, the probability of leaving each n-gram of a text out of the wide path.
        calibration_smoothing: the classifier's scores are (1 - calibration_smoothing) * softmax(logits) +
            calibration_smoothing / num_labels, returned as their logarithms in `logits` (so `pipeline`'s softmax
            gives them back). 0 (the default): the plain softmax. Fitted with the temperature on the validation
            split at the end of a seqhf run (`seqhf.training.calibration`); single-label classifiers only.
        calibration_entropy_slope: before the smoothing, each text's logits are divided by exp(slope * H), H the
            entropy of their softmax over log(num_labels) (0 for a sure text, 1 for a uniform one): a negative
            slope sharpens unsure texts and softens sure ones, and no text's argmax changes. 0 (the default):
            none. Fitted with the temperature (`seqhf.evaluation.calibration.fit_calibration`); single-label only.
    """

    model_type = "seqhf-lstm"
    # Trainer's predictions are the logits: the state carried from call to call is left out, as XLNet's `mems`.
    keys_to_ignore_at_inference = ["final_state", "cache"]

    def __init__(
        self,
        vocab_size=30000,
        embedding_size=128,
        hidden_size=256,
        num_hidden_layers=1,
        bidirectional=False,
        rnn_type="lstm",
        embedding_dropout=0.0,
        hidden_dropout=0.0,
        classifier_dropout=0.0,
        pooling="last",
        word_dropout=0.0,
        weight_dropout=0.0,
        output_dropout=0.0,
        locked_dropout=False,
        classifier_hidden_size=None,
        classifier_activation="relu",
        initializer_range=0.02,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
        tie_word_embeddings=False,
        use_cache=True,
        lm_head_bias=None,
        ngram_buckets=0,
        ngram_orders=(1, 2, 3),
        ngram_dropout=0.0,
        calibration_smoothing=0.0,
        calibration_entropy_slope=0.0,
        **kwargs,
    ):
        for name, value in (
            ("vocab_size", vocab_size),
            ("embedding_size", embedding_size),
            ("hidden_size", hidden_size),
            ("num_hidden_layers", num_hidden_layers),
        ):
            _check_positive(name, value)
        if classifier_hidden_size is not None:
            _check_positive("classifier_hidden_size", classifier_hidden_size)
        if classifier_activation not in ACT2FN:
            raise ValueError(
                f"`classifier_activation` {classifier_activation!r} is not a known activation (see transformers' ACT2FN)."
            )
        if not float(initializer_range) >= 0:
            raise ValueError(f"`initializer_range` must be at least 0, got {initializer_range!r}.")
        if rnn_type not in RNN_TYPES:
            raise ValueError(f"`rnn_type` must be one of {RNN_TYPES}, got {rnn_type!r}.")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}, got {pooling!r}.")
        for name, value in (
            ("embedding_dropout", embedding_dropout),
            ("hidden_dropout", hidden_dropout),
            ("classifier_dropout", classifier_dropout),
            ("word_dropout", word_dropout),
            ("weight_dropout", weight_dropout),
            ("output_dropout", output_dropout),
            ("ngram_dropout", ngram_dropout),
            ("calibration_smoothing", calibration_smoothing),
        ):
            _check_dropout(name, value)
        if not isinstance(ngram_buckets, int) or isinstance(ngram_buckets, bool) or not 0 <= ngram_buckets <= MAX_NGRAM_BUCKETS:
            raise ValueError(f"`ngram_buckets` must be an integer in [0, {MAX_NGRAM_BUCKETS}], got {ngram_buckets!r}.")
        ngram_orders = list(ngram_orders)
        if not ngram_orders or any(not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 5 for n in ngram_orders):
            raise ValueError(f"`ngram_orders` must be integers from 1 to 5, got {ngram_orders!r}.")
        for name, value in (("pad_token_id", pad_token_id), ("bos_token_id", bos_token_id)):
            _check_token_id(name, value, vocab_size)
        for eos in eos_token_id if isinstance(eos_token_id, list) else [eos_token_id]:
            _check_token_id("eos_token_id", eos, vocab_size)
        if tie_word_embeddings and embedding_size != hidden_size:
            raise ValueError(
                f"`tie_word_embeddings` needs `embedding_size` ({embedding_size}) == `hidden_size` ({hidden_size})."
            )
        if kwargs.get("is_decoder") and bidirectional:
            raise ValueError("`bidirectional=True` cannot be used for a causal LM (`is_decoder=True`).")

        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.bidirectional = bidirectional
        self.rnn_type = rnn_type
        self.embedding_dropout = embedding_dropout
        self.hidden_dropout = hidden_dropout
        self.classifier_dropout = classifier_dropout
        self.pooling = pooling
        self.word_dropout = word_dropout
        self.weight_dropout = weight_dropout
        self.output_dropout = output_dropout
        self.locked_dropout = bool(locked_dropout)
        self.classifier_hidden_size = classifier_hidden_size
        self.classifier_activation = classifier_activation
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        self.lm_head_bias = lm_head_bias
        self.ngram_buckets = ngram_buckets
        self.ngram_orders = sorted(set(ngram_orders))
        self.ngram_dropout = ngram_dropout
        if not math.isfinite(float(calibration_entropy_slope)):
            raise ValueError(f"`calibration_entropy_slope` must be a finite number, got {calibration_entropy_slope!r}.")
        self.calibration_smoothing = float(calibration_smoothing)
        self.calibration_entropy_slope = float(calibration_entropy_slope)
        kwargs.setdefault("auto_map", dict(LSTM_AUTO_MAP))
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    # How transformers' caches (DynamicCache, StaticCache) hold the state of the causal LM: each
    # "linear_attention" layer is a `LinearAttentionLayer`, whose fixed-size recurrent-state slots
    # are updated in place (static shapes and addresses, so compiled decoding and CUDA graphs work).
    @property
    def layer_types(self):
        return ["linear_attention"] * self.num_hidden_layers

    @property
    def number_of_conv_states(self):
        """State slots per layer (transformers' name for them): h and c for an LSTM, h for GRU/RNN, and one
        more, used in the first layer only, that counts the tokens the state has read."""
        return (2 if self.rnn_type == "lstm" else 1) + 1


__all__ = ["SeqLSTMConfig"]
