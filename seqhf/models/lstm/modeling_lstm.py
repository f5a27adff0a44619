"""Recurrent sequence models (SimpleRNN, LSTM, GRU) as transformers models.

This file imports only torch, transformers and its sibling configuration file, so a saved
folder loads with `trust_remote_code=True` where seqhf is not installed.
"""

import copy
import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, LinearAttentionCacheLayerMixin, LinearAttentionLayer
from transformers.generation import StopStringCriteria
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import CausalLMOutputWithPast, SequenceClassifierOutput
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.utils import ModelOutput

from .configuration_lstm import SeqLSTMConfig

RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

# transformers 5.24 calls the cache `cache`; its models still take `past_key_values` (the name before 5.24) with a
# FutureWarning, and Mamba's `cache_params` likewise. Before 5.24 generate() itself passes `past_key_values`, so
# that name warns only where it is the old one.
OLD_CACHE_NAMES = ("past_key_values", "cache_params")
PAST_KEY_VALUES_IS_OLD = "cache" in CausalLMOutputWithPast.__dataclass_fields__


def cache_from_old_names(cache, kwargs, owner):
    """`cache`, or the cache passed under an old keyword (popped from `kwargs`): taken with the FutureWarning
    transformers' own models give for these names, never dropped; two different caches are refused."""
    for name in OLD_CACHE_NAMES:
        old = kwargs.pop(name, None)
        if old is None:
            continue
        if cache is not None and old is not cache:
            raise ValueError(f"Two caches were passed to {owner}: `cache` and `{name}`. Pass one, as `cache`.")
        if (name != "past_key_values" or PAST_KEY_VALUES_IS_OLD) and not torch.compiler.is_compiling():
            warnings.warn(
                f"`{name}` is deprecated for {owner}: pass the cache as `cache` (transformers' name since 5.24).",
                FutureWarning,
                stacklevel=3,
            )
        cache = old
    return cache


@dataclass
class SeqLSTMState(ModelOutput):
    """A recurrent state: `h` and, for an LSTM, `c`, each (batch, num_layers * num_directions, hidden_size), the
    batch first as in every transformers output (torch's own RNNs put it second). It reads as the tuple `(h, c)` or
    `(h,)` (unpacking, indexing and iterating give the tensors); a ModelOutput, so that transformers' pipelines
    split a batch's states by rows."""

    h: torch.FloatTensor | None = None
    c: torch.FloatTensor | None = None

    def __iter__(self):
        return iter(self.to_tuple())


@dataclass
class SeqLSTMModelOutput(ModelOutput):
    """
    last_hidden_state: (batch, seq, hidden_size * num_directions) outputs of the last layer;
        zero at padded positions.
    final_state: the recurrent state after each row's last real token, a `SeqLSTMState`: `(h, c)` for an LSTM,
        `(h,)` for GRU/RNN, each (batch, num_layers * num_directions, hidden_size); feed it back as
        `initial_state` to continue.
    hidden_states: embeddings plus each layer's outputs, when `output_hidden_states=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_state: SeqLSTMState | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class SeqLSTMCausalLMOutput(ModelOutput):
    """
    loss: mean next-token cross-entropy (nats per token) when `labels` is given.
    logits: (batch, seq, vocab_size), or only the last `logits_to_keep` positions.
    final_state: recurrent state after the last token, as in `SeqLSTMModelOutput` (in generate()'s one-token steps the
        tuple of the same tensors); feed it back as `initial_state` to continue.
    cache: the same state in a transformers `Cache`, when `use_cache` (default: `config.use_cache`) or a
        cache was passed in; this is what `generate()` carries from step to step.
    hidden_states: as in `SeqLSTMModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    final_state: tuple[torch.FloatTensor, ...] | None = None
    cache: Cache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


# The recurrent state lives in transformers' own caches (see `SeqLSTMConfig.layer_types`): layer i of a
# `DynamicCache(config=...)` or `StaticCache` is a `LinearAttentionLayer` whose recurrent-state slots hold
# h (slot 0) and, for an LSTM, c (slot 1), each (batch, hidden_size). Such a layer keeps no sequence length
# (transformers' `Cache.get_seq_length()` refuses an all-recurrent cache), so one more slot of the first layer
# counts the positions read, padding included: a (batch,) int64 tensor updated in place like the states.


def state_slots(config):
    return 2 if config.rnn_type == "lstm" else 1


def prepare_recurrent_cache(cache, config):
    """Check that `cache` can hold this model's state; give an empty `DynamicCache()` (made without a config)
    the recurrent layers that `DynamicCache(config=model.config)` would have."""
    if not isinstance(cache, Cache):
        raise ValueError(
            f"`cache` must be a transformers `Cache` (e.g. DynamicCache(config=model.config)), got {type(cache)}."
        )
    if len(cache.layers) == 0 and getattr(cache, "layer_class_to_replicate", None) is not None:
        slots = config.number_of_conv_states
        cache.layers.extend(LinearAttentionLayer(number_of_states=slots) for _ in range(config.num_hidden_layers))
    if len(cache.layers) != config.num_hidden_layers or not all(
        isinstance(layer, LinearAttentionCacheLayerMixin) and layer.number_of_states > state_slots(config)
        for layer in cache.layers
    ):
        raise ValueError(
            f"This cache ({cache!r}) cannot hold the recurrent state of a {config.num_hidden_layers}-layer "
            f"{config.rnn_type.upper()}: build it from the model's config, DynamicCache(config=model.config)."
        )
    for layer in cache.layers:
        # transformers' linear-attention layers rewind by their conv states, which this state has none of: saying so
        # makes assisted decoding refuse the cache with its own message instead of failing inside `crop`.
        layer.is_croppable = False
    return cache


def cache_is_filled(cache):
    initialized = cache.layers[0].is_recurrent_states_initialized
    return initialized[0] and initialized[len(initialized) - 1]


def tokens_read(cache) -> int:
    """How many positions (padding included) the recurrent state in `cache` has read; 0 for a fresh cache."""
    if len(cache.layers) == 0 or not cache_is_filled(cache):
        return 0
    layer = cache.layers[0]
    return int(layer.recurrent_states[layer.number_of_states - 1][0])


def cached_state(cache, config):
    """The state in `cache`, stacked over layers as `SeqLSTMModel` takes it: `(h, c)` or `(h,)`, each
    (batch, num_layers, hidden_size)."""
    slots = range(state_slots(config))
    return tuple(torch.stack([layer.recurrent_states[s] for layer in cache.layers], dim=1) for s in slots)


def store_state(cache, final_state, new_tokens):
    """Copy a state as `SeqLSTMModel` returns it into the cache (in place), and count the tokens read."""
    for slot, stacked in enumerate(final_state):
        for layer_idx, layer_state in enumerate(stacked.unbind(1)):
            cache.update_recurrent_state(layer_state, layer_idx, slot)
    count_slot = cache.layers[0].number_of_states - 1
    batch_size = final_state[0].shape[0]
    if cache.layers[0].is_recurrent_states_initialized[count_slot]:
        count = cache.layers[0].recurrent_states[count_slot] + new_tokens
    else:
        count = torch.full((batch_size,), new_tokens, dtype=torch.long, device=final_state[0].device)
    cache.update_recurrent_state(count, 0, count_slot)


# One time step of each recurrent layer type, with the layer's own weights. For a single token at
# batch 1 these fused cells are several times faster on CPU than calling nn.LSTM on a length-1 sequence.
RNN_CELLS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


def lstm_from_input_gates(input_gates, state, weight_hh, bias_hh):
    """`torch.lstm_cell` given its input's gates (x W_ihᵀ + b_ih) already computed; PyTorch's gate order i, f, g, o."""
    h, c = state
    i, f, g, o = (input_gates + F.linear(h, weight_hh, bias_hh)).chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_from_input_gates(input_gates, h, weight_hh, bias_hh):
    """`torch.gru_cell` given its input's gates already computed; PyTorch's gate order r, z, n."""
    x_r, x_z, x_n = input_gates.chunk(3, 1)
    h_r, h_z, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, 1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return n + z * (h - n)


def rnn_from_input_gates(input_gates, h, weight_hh, bias_hh):
    """`torch.rnn_tanh_cell` given x W_ihᵀ + b_ih already computed."""
    return torch.tanh(input_gates + F.linear(h, weight_hh, bias_hh))


CELLS_FROM_INPUT_GATES = {"lstm": lstm_from_input_gates, "gru": gru_from_input_gates, "rnn": rnn_from_input_gates}


def fold_input_projection(embedding_weight, layer_weights):
    """The first layer's input gates for every token, embedding × W_ihᵀ + b_ih (vocab, gates): a decoding step
    then reads one row of it instead of all of W_ih."""
    w_ih, b_ih = layer_weights[0], layer_weights[2] if len(layer_weights) > 2 else None
    return F.linear(embedding_weight, w_ih, b_ih)


def recurrent_decode_step(cell, input_ids, embedding_weight, layer_weights, states, count, head_weight, head_bias,
                          input_table=None, cell_from_input_gates=None):
    """One new token per row through every layer: embedding, `cell` per layer (its state tensors in `states`
    updated in place), the token count in `count` advanced, and the LM head. With `input_table` (from
    `fold_input_projection`), the first layer reads its input gates from that table and runs
    `cell_from_input_gates`. A function of tensors only, so that `torch.compile` guards on tensors alone. Returns
    the logits (batch, 1, vocab) and the new state stacked over layers as `SeqLSTMModel` returns it."""
    folded = input_table is not None
    hidden = F.embedding(input_ids[:, 0], input_table if folded else embedding_weight)
    for layer, (weights, state) in enumerate(zip(layer_weights, states)):
        current = state if len(state) > 1 else state[0]
        if layer == 0 and folded:
            new_state = cell_from_input_gates(hidden, current, weights[1], weights[3] if len(weights) > 3 else None)
        else:
            new_state = cell(hidden, current, *weights)
        new_state = new_state if isinstance(new_state, tuple) else (new_state,)
        for slot, value in zip(state, new_state):
            slot.copy_(value)
        hidden = new_state[0]
    count.add_(1)
    final_state = tuple(torch.stack([state[slot] for state in states], dim=1) for slot in range(len(states[0])))
    return F.linear(hidden, head_weight, head_bias).unsqueeze(1), final_state


def decode_step_compile_arguments(compile_config):
    """`torch.compile`'s arguments for `recurrent_decode_step` from a transformers `CompileConfig`: its own, except
    that inductor does not check each input's size and stride again inside the graph, which dynamo's guards have
    checked before the graph runs (at batch 1 on the CPU those checks cost about a third of the compiled call's own
    overhead). torch.compile takes a mode or options, not both, so the mode becomes its options."""
    arguments = compile_config.to_dict()
    if arguments.get("backend", "inductor") != "inductor":
        return arguments
    from torch._inductor import config, list_mode_options

    if not hasattr(config, "size_asserts"):  # a torch without the option compiles as asked
        return arguments
    mode = arguments.pop("mode", None)
    mode_options = list_mode_options(mode, arguments.get("dynamic")) if mode and mode != "default" else {}
    arguments["options"] = {**mode_options, "size_asserts": False, **(arguments.get("options") or {})}
    return arguments


def flat_step_inputs(input_ids, embedding_weight, layer_weights, states, count, head_weight, head_bias, input_table):
    """`recurrent_decode_step`'s tensor arguments as one flat list (None where absent), as `InductorDecodeStep`
    keys, traces and calls them; `split_flat_step_inputs` is its inverse."""
    return [input_ids, embedding_weight, *[w for ws in layer_weights for w in ws],
            *[t for state in states for t in state], count, head_weight, head_bias, input_table]


def split_flat_step_inputs(flat, layer_sizes, state_sizes):
    """`recurrent_decode_step`'s tensor arguments from the flat list `InductorDecodeStep` makes of them: (input_ids,
    embedding_weight, layer_weights, states, count, head_weight, head_bias, input_table)."""
    values = iter(flat)
    input_ids, embedding_weight = next(values), next(values)
    layer_weights = [[next(values) for _ in range(n)] for n in layer_sizes]
    states = [tuple(next(values) for _ in range(n)) for n in state_sizes]
    count, head_weight, head_bias, input_table = values
    return input_ids, embedding_weight, layer_weights, states, count, head_weight, head_bias, input_table


class InductorDecodeStep:
    """`recurrent_decode_step` compiled by inductor and called without dynamo, for the CPU. Dynamo's per-call work
    (its frame, guards and argument handling) costs about 60-100 us at the book's char LSTM: as much as the fused
    gate arithmetic saves, which is why a `torch.compile`d step was no faster than eager on the CPU. So the step is
    traced once per structure and shape with `make_fx` (all its arguments are tensors, plus the two cell functions),
    compiled with `torch._inductor.compile`, and called directly; the key below plays the part of dynamo's guards.
    With grad mode on, or past `MAX_GRAPHS` shapes (dynamo's recompile limit), it runs eagerly."""

    MAX_GRAPHS = 8

    def __init__(self, options):
        self.options = options
        self.graphs = {}  # key -> (compiled function, positions of the tensors it reads)

    def __call__(self, cell, input_ids, embedding_weight, layer_weights, states, count, head_weight, head_bias,
                 input_table=None, cell_from_input_gates=None):
        args = (cell, input_ids, embedding_weight, layer_weights, states, count, head_weight, head_bias, input_table,
                cell_from_input_gates)
        if torch.is_grad_enabled():  # the graphs are inference graphs
            return recurrent_decode_step(*args)
        layer_sizes, state_sizes = tuple(map(len, layer_weights)), tuple(map(len, states))
        flat = flat_step_inputs(input_ids, embedding_weight, layer_weights, states, count, head_weight, head_bias,
                                input_table)
        key = (cell, cell_from_input_gates, layer_sizes, state_sizes,
               *[None if t is None else (t.dtype, t.device, t.shape, t.stride()) for t in flat])
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= self.MAX_GRAPHS:
                return recurrent_decode_step(*args)
            entry = self.graphs[key] = self._compile(cell, cell_from_input_gates, layer_sizes, state_sizes, flat)
        compiled, reads = entry
        logits, *final_state = compiled(*[flat[i] for i in reads])
        return logits, tuple(final_state)

    def _compile(self, cell, cell_from_input_gates, layer_sizes, state_sizes, flat):
        import torch._inductor
        from torch.fx.experimental.proxy_tensor import make_fx

        present = [i for i, t in enumerate(flat) if t is not None]

        def step(*tensors):  # the same step, `flat`'s tensors replaced by the traced ones
            values = dict(zip(present, tensors))
            ids, embedding, weights, states, count, head_weight, head_bias, table = split_flat_step_inputs(
                [values.get(i) for i in range(len(flat))], layer_sizes, state_sizes
            )
            logits, final_state = recurrent_decode_step(cell, ids, embedding, weights, states, count, head_weight,
                                                        head_bias, table, cell_from_input_gates)
            return (logits, *final_state)

        graph = make_fx(step, tracing_mode="fake")(*[flat[i] for i in present])  # real tracing would run the step
        # Inputs the step never reads (W_ih of a folded first layer, the embedding) are dropped from the graph.
        placeholders = list(graph.graph.find_nodes(op="placeholder"))
        reads = [i for i, node in zip(present, placeholders) if node.users]
        for node in placeholders:
            if not node.users:
                graph.graph.erase_node(node)
        graph.recompile()
        return torch._inductor.compile(graph, [flat[i] for i in reads], self.options), reads


def state_as_parts(state):
    """A torch RNN layer's state as a tuple of tensors: (h, c) for an LSTM, (h,) for GRU/RNN, () for none."""
    return () if state is None else state if isinstance(state, tuple) else (state,)


def layer_state_from_parts(parts):
    """The inverse of `state_as_parts`: what a torch RNN layer takes and returns as its state."""
    return None if not parts else parts[0] if len(parts) == 1 else tuple(parts)


def is_exporting():
    """Whether torch.export is tracing the model (`torch.compiler.is_exporting`, which older torch releases lack)."""
    exporting = getattr(torch.compiler, "is_exporting", None)
    return exporting is not None and exporting()


def valid_tokens_first(attention_mask):
    """Per row, the time order that puts real tokens first (left or right padding alike)."""
    # Unique keys (padding after every real token, then by position) make a plain argsort stable,
    # which ONNX export can translate (its TopK has no stable sort).
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return torch.argsort((attention_mask == 0).long() * attention_mask.shape[1] + positions, dim=1)


def gather_time_steps(x, order):
    """`x[b, order[b, t]]` for every row b and step t of a (batch, time, ...) tensor, as one gather of rows of
    the flattened (batch * time) axis: ONNX Runtime runs that as a copy of whole rows, many times faster
    than a GatherElements/ScatterElements over every element (as fast as them in PyTorch)."""
    offsets = torch.arange(order.shape[0], device=order.device).unsqueeze(1) * order.shape[1]
    rows = x.reshape(-1, *x.shape[2:]).index_select(0, (order + offsets).reshape(-1))
    return rows.reshape_as(x)


NGRAM_HASH_MULTIPLIER = 1_000_003  # a prime; with buckets <= 2**31 every step of the hash stays below 2**52


class HashedNgramLogits(nn.Module):
    """The classifier's "wide" path: a linear model over hashed n-grams of the input ids (fastText's and
    NBSVM's view of a text). Each n-gram of `config.ngram_orders` is hashed, in int64 torch arithmetic that ONNX
    exports, into one of `config.ngram_buckets` rows of `weight`, which hold one weight per label; a text's
    logits are the sum of its n-grams' rows divided by the square root of their number (as an L2-normalised
    bag of words scales them). N-grams that touch padding never count, so the answer is padding-invariant."""

    def __init__(self, config):
        super().__init__()
        self.buckets, self.orders, self.dropout = config.ngram_buckets, list(config.ngram_orders), config.ngram_dropout
        self.weight = nn.Parameter(torch.zeros(config.ngram_buckets, config.num_labels))

    def hashed(self, input_ids, valid, n):
        """The bucket of every n-gram that starts at each position (batch, time - n + 1), and whether it is
        made of real tokens only."""
        bucket, real = None, None
        for i in range(n):
            # Negative ends, not computed lengths: the traced graph slices the same way at every length.
            step = slice(i, i - (n - 1) if i < n - 1 else None)
            ids, ok = input_ids[:, step], valid[:, step]
            start = ids.new_full((), n) if bucket is None else bucket
            bucket = (start * NGRAM_HASH_MULTIPLIER + ids + 1) % self.buckets
            real = ok if real is None else real & ok
        return bucket, real

    def forward(self, input_ids, attention_mask=None):
        input_ids = input_ids.long()
        valid = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        # Every order's n-grams in one lookup: one dense gradient of the table a step instead of one an order
        # (IMDb's 2**21 rows, batch 32, one thread: 10 against 30 ms forward and backward).
        hashed = [self.hashed(input_ids, valid, n) for n in self.orders]
        bucket, real = torch.cat([b for b, _ in hashed], dim=1), torch.cat([r for _, r in hashed], dim=1)
        if self.training and self.dropout > 0:
            real = real & (torch.rand(real.shape, device=real.device) >= self.dropout)
        real = real.unsqueeze(-1).to(self.weight.dtype)
        total = (F.embedding(bucket, self.weight) * real).sum(dim=1)
        return total / real.sum(dim=1).clamp(min=1.0).sqrt()


class RecurrentLayerCheckpoint(GradientCheckpointingLayer):
    """transformers' checkpointing unit for one recurrent layer: `activation_checkpointing_enable()` switches it on,
    `every_n_layers` counts it, and the model runs its layer through it while it is on. It holds no weights, and is
    handed the layer's run with each call, because the layer must stay a plain `nn.LSTM`/`GRU`/`RNN`: a subclass would
    keep its state-dict keys but `torch.ao.quantization.quantize_dynamic` swaps only those exact classes, and the
    checkpoint would get the layer's own arguments, a PackedSequence (a padded batch) and an (h, c) tuple, through
    which torch's reentrant checkpoint (`use_reentrant=True`) tracks no gradient. Here they go as plain tensors."""

    def forward(self, data, *state_parts, run_layer, packed_like=None):
        hidden = data if packed_like is None else packed_like._replace(data=data)
        out, state = run_layer(hidden, layer_state_from_parts(state_parts))
        return (out if packed_like is None else out.data, *state_as_parts(state))


class SeqLSTMPreTrainedModel(PreTrainedModel):
    config_class = SeqLSTMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = []
    supports_gradient_checkpointing = True  # each recurrent layer is recomputed (RecurrentLayerCheckpoint)

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, HashedNgramLogits):
            module.weight.data.zero_()  # the wide path starts silent: the first logits are the recurrent head's
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(0.0, std)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.Linear):
            module.weight.data.normal_(0.0, std)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
            bound = module.hidden_size**-0.5  # torch's own default
            for name, param in module.named_parameters():
                param.data.uniform_(-bound, bound)
                if isinstance(module, nn.LSTM) and name.startswith("bias_ih"):
                    # Forget-gate bias 1 (Jozefowicz et al. 2015): remember by default early in training.
                    param.data[module.hidden_size : 2 * module.hidden_size] = 1.0


class SeqLSTMModel(SeqLSTMPreTrainedModel):
    """Embedding followed by stacked (bi)directional recurrent layers."""

    def __init__(self, config: SeqLSTMConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.hidden_dropout = nn.Dropout(config.hidden_dropout)
        self.output_dropout = nn.Dropout(config.output_dropout)
        rnn_class = RNN_CLASSES[config.rnn_type]
        num_directions = 2 if config.bidirectional else 1
        # One module per layer so each layer's outputs can be returned as hidden states.
        self.layers = nn.ModuleList(
            rnn_class(
                config.embedding_size if i == 0 else config.hidden_size * num_directions,
                config.hidden_size,
                batch_first=True,
                bidirectional=config.bidirectional,
            )
            for i in range(config.num_hidden_layers)
        )
        self.layer_checkpoints = nn.ModuleList(RecurrentLayerCheckpoint() for _ in range(config.num_hidden_layers))
        self.gradient_checkpointing = False  # kept, as transformers' base models keep it; the units above decide
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def _check_inputs(self, input_ids, attention_mask, inputs_embeds):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        if input_ids is not None:
            if input_ids.dim() != 2:
                raise ValueError(f"`input_ids` must be (batch, seq), got shape {tuple(input_ids.shape)}.")
            # On an accelerator the range check costs a host sync, which a training step should not pay. In a compiled
            # graph or an export, reading the values would break the graph (torch.export fails on it).
            checked = (input_ids.device.type == "cpu" or not self.training) and not torch.compiler.is_compiling()
            if checked and input_ids.numel():
                low, high = int(input_ids.min()), int(input_ids.max())
                if low < 0 or high >= self.config.vocab_size:
                    raise ValueError(
                        f"`input_ids` holds ids outside [0, {self.config.vocab_size}): min {low}, max {high}. "
                        "Is the tokenizer the model's own?"
                    )
        shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if shape[1] == 0:
            raise ValueError("The input sequence is empty (length 0).")
        if attention_mask is not None:
            if tuple(attention_mask.shape) != tuple(shape):
                raise ValueError(f"`attention_mask` shape {tuple(attention_mask.shape)} != input shape {tuple(shape)}.")
            if is_exporting():
                raise ValueError(
                    "torch.export cannot trace how the recurrent layers read a padded batch (a PackedSequence, whose "
                    "lengths are data): export the model without `attention_mask`, for batches without padding, or "
                    "export it to ONNX (`seqhf export`), whose graph takes the mask."
                )
            if not torch.compiler.is_compiling() and not bool(attention_mask.any(dim=1).all()):
                raise ValueError("Some rows of `attention_mask` are all zeros: every sequence needs a real token.")

    def _split_state(self, initial_state):
        """Cut a stacked (B, num_layers * dirs, H) state into one state per layer, in torch's (dirs, B, H) layout."""
        if initial_state is None:
            return [None] * len(self.layers)
        dirs = 2 if self.config.bidirectional else 1
        per_layer = [tuple(t[:, i * dirs : (i + 1) * dirs].transpose(0, 1).contiguous() for t in initial_state)
                     for i in range(len(self.layers))]
        return [s if self.config.rnn_type == "lstm" else s[0] for s in per_layer]

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        inputs_embeds=None,
        initial_state=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        if any(kwargs.get(name) is not None for name in ("cache",) + OLD_CACHE_NAMES):
            raise ValueError(
                "SeqLSTMModel keeps no cache: pass the `final_state` of an earlier call as `initial_state`, or use "
                "SeqLSTMForCausalLM, which carries its state in a transformers cache."
            )
        self._check_inputs(input_ids, attention_mask, inputs_embeds)
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if inputs_embeds is None:
            inputs_embeds = self._embed(input_ids)
        hidden = self._dropout(self.embedding_dropout, inputs_embeds)
        batch_size, seq_len = hidden.shape[:2]

        # Padded positions are skipped with packed sequences, so a padded row gives the same result
        # as the row alone. Real tokens are moved to the front first, which makes left padding work too.
        packed = attention_mask is not None and not bool(attention_mask.all())
        if packed:
            order = valid_tokens_first(attention_mask)
            lengths = attention_mask.sum(dim=1).cpu()
            hidden = gather_time_steps(hidden, order)
            hidden = pack_padded_sequence(hidden, lengths, batch_first=True, enforce_sorted=False)

        def unpack(h):
            if not packed:
                return h
            h, _ = pad_packed_sequence(h, batch_first=True, total_length=seq_len)
            # Back to the input's time order; padded positions read the zeros after each row's real tokens.
            return gather_time_steps(h, torch.argsort(order, dim=1))

        all_hidden_states = (inputs_embeds,) if output_hidden_states else None
        final_states = []
        layers = zip(self.layers, self.layer_checkpoints, self._split_state(initial_state))
        for i, (layer, checkpoint, layer_state) in enumerate(layers):
            if i > 0:
                hidden = self._dropout(self.hidden_dropout, hidden)
            if checkpoint.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden, state = self._run_layer_checkpointed(checkpoint, layer, hidden, layer_state)
            else:
                hidden, state = self._run_layer(layer, hidden, layer_state)
            final_states.append(state_as_parts(state))
            if output_hidden_states:
                all_hidden_states += (unpack(hidden),)

        output = self._dropout(self.output_dropout, hidden)
        last_hidden_state = all_hidden_states[-1] if output_hidden_states and output is hidden else unpack(output)
        final_state = SeqLSTMState(*(torch.cat(parts, dim=0).transpose(0, 1) for parts in zip(*final_states)))
        if not return_dict:
            return tuple(v for v in (last_hidden_state, final_state, all_hidden_states) if v is not None)
        return SeqLSTMModelOutput(
            last_hidden_state=last_hidden_state, final_state=final_state, hidden_states=all_hidden_states
        )

    def _embed(self, input_ids):
        """Token embeddings; in training, `word_dropout` zeroes every occurrence of the dropped word types."""
        embeds = self.embeddings(input_ids)
        p = self.config.word_dropout
        if not self.training or p == 0:
            return embeds
        keep = embeds.new_empty(self.config.vocab_size).bernoulli_(1 - p) / (1 - p)
        return embeds * keep[input_ids].unsqueeze(-1)

    def _dropout(self, dropout, hidden):
        """`dropout` on a (batch, seq, features) tensor or a PackedSequence; returns `hidden` itself when
        inactive. With `locked_dropout`, each sequence keeps one mask for all its time steps."""
        if not self.training or dropout.p == 0:
            return hidden
        packed = isinstance(hidden, PackedSequence)
        values = hidden.data if packed else hidden
        if not self.config.locked_dropout:
            dropped = dropout(values)
        elif not packed:
            dropped = values * self._locked_mask(values.shape[0], values.shape[-1], dropout.p, values)
        else:
            # Packed data holds, at time step t, the first batch_sizes[t] sequences (in sorted order).
            sizes = hidden.batch_sizes
            rows = torch.arange(int(sizes[0]))
            rows = rows.expand(len(sizes), -1)[rows.unsqueeze(0) < sizes.unsqueeze(1)].to(values.device)
            dropped = values * self._locked_mask(int(sizes[0]), values.shape[-1], dropout.p, values)[rows]
        return hidden._replace(data=dropped) if packed else dropped

    @staticmethod
    def _locked_mask(batch_size, features, p, like):
        shape = (batch_size, features) if like.dim() == 2 else (batch_size, 1, features)
        return like.new_empty(shape).bernoulli_(1 - p) / (1 - p)

    def _run_layer_checkpointed(self, checkpoint, layer, hidden, state):
        """`_run_layer` through its `RecurrentLayerCheckpoint`, which recomputes it in the backward pass."""
        packed = isinstance(hidden, PackedSequence)
        out, *new_state = checkpoint(hidden.data if packed else hidden, *state_as_parts(state),
                                     run_layer=lambda *args: self._run_layer(layer, *args),
                                     packed_like=hidden if packed else None)
        return hidden._replace(data=out) if packed else out, layer_state_from_parts(new_state)

    def _run_layer(self, layer, hidden, state):
        """One recurrent layer. With `weight_dropout` in training, its hidden-to-hidden matrices are
        dropped (one mask for the whole sequence) and handed to the layer's own fused kernel."""
        p = self.config.weight_dropout
        if not self.training or p == 0:
            return layer(hidden, state)
        dropped = {
            name: F.dropout(getattr(layer, name), p, training=True)
            for name in layer._flat_weights_names
            if name.startswith("weight_hh")
        }
        # nn.RNNBase keeps its flat weight list in step with its attributes, so the swapped-in tensors
        # are what the kernel (_VF.lstm / cuDNN) receives, with gradients flowing back to the weights.
        return torch.func.functional_call(layer, dropped, (hidden, state))


# Copied to seqhf.models.transformer.modeling_transformer.read_empty_texts_as_pad; change both together.
def read_empty_texts_as_pad(input_ids, attention_mask, pad_token_id):
    """A classifier reads an empty text (a row without a real token) as a single `[PAD]` token, so it gets
    the model's answer to "nothing" and the rest of its batch is classified as usual."""
    if input_ids is None or pad_token_id is None or input_ids.dim() != 2:
        return input_ids, attention_mask  # (a wrong shape is named by the model's input check)
    if input_ids.shape[1] == 0:
        input_ids = input_ids.new_full((input_ids.shape[0], 1), pad_token_id)
        return input_ids, None if attention_mask is None else attention_mask.new_ones(input_ids.shape)
    if attention_mask is not None and attention_mask.shape == input_ids.shape:
        # Without a branch on the values, so that a traced (ONNX) graph reads empty rows the same way.
        first = torch.arange(input_ids.shape[1], device=input_ids.device) == 0
        empty_first = ~attention_mask.bool().any(dim=1, keepdim=True) & first
        attention_mask = attention_mask.masked_fill(empty_first, 1)
        input_ids = input_ids.masked_fill(empty_first, pad_token_id)
    return input_ids, attention_mask


# Copied to seqhf.models.transformer.modeling_transformer.infer_problem_type; change both together.
def infer_problem_type(config, labels):
    """Set `config.problem_type` from the labels as transformers' loss does, but before the calibration
    smoothing reads it; single-label class ids must be in range, and -100 is ignored as in transformers' loss."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "single_label_classification" and labels.dtype in (torch.long, torch.int):
        counted = labels[labels != -100]
        if counted.numel() and (counted.min() < 0 or counted.max() >= config.num_labels):
            raise ValueError(
                f"`labels` must be in [0, {config.num_labels}) or -100 (ignored) (id2label={config.id2label}), "
                f"got min {int(counted.min())}, max {int(counted.max())}."
            )


# Copied to seqhf.models.transformer.modeling_transformer.calibrated_logits; change both together.
def calibrated_logits(logits, config):
    """A calibrated single-label classifier's output (its temperature is already folded into the last layer):
    each text's logits divided by exp(`config.calibration_entropy_slope` * H), H the entropy of their softmax over
    log(num_labels); then, where `config.calibration_smoothing` s > 0, the logarithms of
    (1 - s) * softmax(logits) + s / num_labels, which a softmax gives back, each at least s / num_labels.
    Each text's logits are divided by one positive number and the smoothing is monotone, so the argmax is kept."""
    # Folders saved before these fields existed have neither.
    slope, smoothing = getattr(config, "calibration_entropy_slope", 0.0), getattr(config, "calibration_smoothing", 0.0)
    if config.problem_type in ("multi_label_classification", "regression") or logits.shape[-1] < 2:
        return logits
    if slope:
        log_probs = logits.log_softmax(dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1, keepdim=True) / math.log(logits.shape[-1])
        logits = logits / torch.exp(slope * entropy)
    if smoothing:
        logits = torch.log((1.0 - smoothing) * logits.softmax(dim=-1) + smoothing / logits.shape[-1])
    return logits


class SeqLSTMForSequenceClassification(SeqLSTMPreTrainedModel):
    """Recurrent encoder, a pooling of its outputs, and a (optionally two-layer) classifier."""

    # The loss is a mean over the batch (transformers' classification loss ignores `num_items_in_batch`), so the
    # Trainer must divide it by the gradient-accumulation steps itself, as for a model whose forward takes no
    # loss kwargs; otherwise accumulating k batches would sum k means (k times the loss and the gradients).
    accepts_loss_kwargs = False

    def __init__(self, config: SeqLSTMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = SeqLSTMModel(config)
        width = config.hidden_size * (2 if config.bidirectional else 1)
        pooled_size = 3 * width if config.pooling == "concat" else width
        layers = [nn.Dropout(config.classifier_dropout)]
        if config.classifier_hidden_size is not None:
            layers += [
                nn.Linear(pooled_size, config.classifier_hidden_size),
                ACT2FN[config.classifier_activation],
                nn.Dropout(config.classifier_dropout),
            ]
            pooled_size = config.classifier_hidden_size
        layers.append(nn.Linear(pooled_size, config.num_labels))
        self.classifier = nn.Sequential(*layers)
        # Folders saved before the wide path existed have no `ngram_buckets`: they load without it.
        self.ngrams = HashedNgramLogits(config) if getattr(config, "ngram_buckets", 0) else None
        self.post_init()

    def pool(self, outputs, attention_mask):
        """Summarise the sequence as `config.pooling` says; padded positions never count."""
        hidden = outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        mask = attention_mask.unsqueeze(-1).bool()
        h_n = outputs.final_state[0]
        # The final state of the last layer: forward (and backward) direction.
        last = torch.cat([h_n[:, -2], h_n[:, -1]], dim=-1) if self.config.bidirectional else h_n[:, -1]
        if self.config.pooling == "last":
            return last
        max_pool = hidden.masked_fill(~mask, torch.finfo(hidden.dtype).min).amax(dim=1)
        mean_pool = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        if self.config.pooling == "max":
            return max_pool
        if self.config.pooling == "mean":
            return mean_pool
        return torch.cat([last, max_pool, mean_pool], dim=-1)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        inputs_embeds=None,
        labels=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if labels is not None:
            infer_problem_type(self.config, labels)
        input_ids, attention_mask = read_empty_texts_as_pad(input_ids, attention_mask, self.config.pad_token_id)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.pool(outputs, attention_mask))
        if self.ngrams is not None and input_ids is not None:
            logits = logits + self.ngrams(input_ids, attention_mask)
        logits = calibrated_logits(logits, self.config)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


def refuse_config_without_lm_head(config):
    """A config saved from a model with another head (a text classifier) is refused: its backbone was trained for
    that task and it has no LM head, so a causal LM built from it would generate noise. A backbone folder
    (`SeqLSTMModel`) loads as in transformers: the new LM head is reported as newly initialised."""
    saved_as = config.architectures or []
    other_heads = [name for name in saved_as if "For" in name]
    if other_heads and not any(name.endswith("ForCausalLM") for name in saved_as):
        is_classifier = any("Classification" in name for name in other_heads)
        kind = "a text classifier" if is_classifier else "a model with another head"
        raise ValueError(
            f"This folder holds {', '.join(saved_as)} ({kind}), not a language model: it has no trained "
            "language-model head, so generating from it would print noise. Load it with "
            "AutoModelForSequenceClassification or AutoModel. To build a new, untrained language model from this "
            "config on purpose, set `config.architectures = None` first."
        )


# Copied to seqhf.models.transformer.modeling_transformer.start_empty_prompts_from_bos; change both together.
def start_empty_prompts_from_bos(model, inputs, generation_config, kwargs):
    """generate()'s `inputs` and keyword arguments with an empty prompt (or an all-padding row of a batch) started
    from `bos_token_id` (in the last, padding slot of such rows), or a clear error when the model has none."""
    key = "inputs" if inputs is not None else "input_ids"
    input_ids = inputs if inputs is not None else kwargs.get("input_ids")
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or kwargs.get("inputs_embeds") is not None:
        return inputs, kwargs
    attention_mask = kwargs.get("attention_mask")
    if input_ids.shape[1] == 0:
        empty = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    elif attention_mask is not None and attention_mask.shape == input_ids.shape:
        empty = ~attention_mask.bool().any(dim=1)
    else:
        return inputs, kwargs
    if not bool(empty.any()):
        return inputs, kwargs
    bos = kwargs.get("bos_token_id")
    for config in (generation_config, model.generation_config, model.config):
        bos = bos if bos is not None else getattr(config, "bos_token_id", None)
    if bos is None:
        raise ValueError(
            "The prompt is empty and the model has no `bos_token_id` to start from: "
            "give a non-empty prompt, or set `model.config.bos_token_id` (for an LM whose training texts each end "
            "with `eos_token_id`, such as a word LM saved by an earlier `seqhf train lm`: that id, after which a text "
            "starts)."
        )
    if input_ids.shape[1] == 0:
        input_ids = input_ids.new_full((input_ids.shape[0], 1), bos)
        attention_mask = torch.ones_like(input_ids)
    else:
        input_ids, attention_mask = input_ids.clone(), attention_mask.clone()
        input_ids[empty, -1] = bos
        attention_mask[empty, -1] = 1
    kwargs = {**kwargs, "attention_mask": attention_mask}
    if key == "inputs":
        return input_ids, kwargs
    return inputs, {**kwargs, "input_ids": input_ids}


ASSISTED_DECODING_OPTIONS = ("assistant_model", "prompt_lookup_num_tokens", "assistant_early_exit")


def refuse_generation_options(model, generation_config, kwargs):
    """A clear error for what generate() cannot do with a recurrent state, where transformers would fail deep inside
    (a cache `crop`, or reading the output's `attentions`): assisted decoding, as the model or as its assistant, and
    attentions."""
    config = generation_config if generation_config is not None else model.generation_config

    def asked(name):
        return kwargs[name] if kwargs.get(name) is not None else getattr(config, name, None)

    assisted = [name for name in ASSISTED_DECODING_OPTIONS if asked(name) is not None]
    if assisted or getattr(config, "is_assistant", False):
        raise ValueError(
            f"{type(model).__name__} cannot take part in assisted decoding ({', '.join(assisted) or 'as the assistant'}"
            "): its recurrent state cannot be rewound to drop the draft tokens that are rejected. Generate without an "
            "assistant model or prompt lookup."
        )
    if asked("output_attentions"):
        raise ValueError(
            f"{type(model).__name__} has no attention layers, so generate() has no attentions to return: drop "
            "`output_attentions=True` (hidden states, scores and logits can be returned)."
        )


# Copied to seqhf.models.transformer.modeling_transformer.refuse_padding_only_chunks; change both together.
def refuse_padding_only_chunks(generation_config, attention_mask):
    """A clear error where chunked prefill (`prefill_chunk_size`) would give a row of a left-padded batch a chunk of
    padding only, which the model refuses to read (a row needs a real token), deep inside transformers' prefill."""
    chunk_size = generation_config.prefill_chunk_size
    if chunk_size is None or attention_mask is None or attention_mask.dim() != 2:
        return
    leading_padding = int((attention_mask.cumsum(-1) == 0).sum(-1).max())
    if leading_padding >= chunk_size:
        raise ValueError(
            f"prefill_chunk_size={chunk_size} gives a row of this left-padded batch a chunk of padding only (it has "
            f"{leading_padding} padding tokens), which the model cannot read: pass a prefill_chunk_size above "
            f"{leading_padding}, or generate without it."
        )


# Copied to seqhf.models.transformer.modeling_transformer.stop_string_probe; change both together.
def stop_string_probe(tokenizer, probe="abcdef"):
    """A text after which `StopStringCriteria` reads each token's string: its own `probe` where the tokenizer reads
    it back, else the first alphabetic word of the vocabulary that it does (a word vocabulary reads "abcdef" as
    [UNK], and a small char vocabulary may lack some of its letters)."""

    def reads_back(text):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return tokenizer.unk_token_id not in ids and text in tokenizer.convert_tokens_to_string(
            tokenizer.convert_ids_to_tokens(ids))

    if reads_back(probe):
        return probe
    vocab = tokenizer.get_vocab()
    return next((token for token in sorted(vocab, key=vocab.get) if token.isalpha() and reads_back(token)), probe)


# Copied to seqhf.models.transformer.modeling_transformer.ProbedStopStringCriteria; change both together.
class ProbedStopStringCriteria(StopStringCriteria):
    """transformers' `StopStringCriteria`, which reads each token's string after the text "abcdef" and fails with
    `ValueError: substring not found` when the tokenizer turns that text into [UNK]: here the text is one the
    tokenizer reads back (`stop_string_probe`)."""

    @staticmethod
    def clean_tokenizer_vocab(tokenizer, static_prefix="abcdef", stop_string_matching_mode=None):
        return StopStringCriteria.clean_tokenizer_vocab(
            tokenizer, stop_string_probe(tokenizer, static_prefix), stop_string_matching_mode)


# Copied to seqhf.models.transformer.modeling_transformer.stop_strings_apart; change both together.
def stop_strings_apart(generation_config, tokenizer):
    """`generation_config` without its `stop_strings`, and those strings, for `_get_stopping_criteria` to match them
    with `ProbedStopStringCriteria`; unchanged (and None) without a tokenizer, so that transformers asks for one."""
    if generation_config.stop_strings is None or tokenizer is None:
        return generation_config, None
    without = copy.copy(generation_config)
    without.stop_strings = None
    return without, generation_config.stop_strings


class SeqLSTMForCausalLM(SeqLSTMPreTrainedModel, GenerationMixin):
    """Unidirectional recurrent language model: next-token logits at every position.

    `generate()` carries the recurrent state in transformers' own caches (`DynamicCache`, or `StaticCache`
    with `cache_implementation="static"`; see `SeqLSTMConfig.layer_types`): the prompt is read once, then each
    new token costs one recurrent step, which `torch.compile` can compile (transformers' compile path with a
    static cache). All of transformers' decoding options work (greedy, sampling, `top_k`, `top_p`,
    `repetition_penalty`, `num_return_sequences`, `eos_token_id`, streamers, beam search), and a generation
    continues from a returned cache as with any transformers model: pass the whole sequence so far and the cache.

    Sampling temperature: the book samples from `softmax(alpha * logits)` with a scale factor alpha;
    transformers divides the logits by `temperature`, so the book's alpha equals `1 / temperature`
    (alpha = 2 is `temperature=0.5`, sharper; alpha = 0.5 is `temperature=2.0`, more random).
    """

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}
    # The state cannot be rewound: transformers before 5.25 refuse assisted decoding for `_is_stateful`; later ones
    # for a cache that is not `is_croppable` (see `prepare_recurrent_cache`).
    _is_stateful = True
    # What transformers compiles in generate() (the decode steps, with a static cache) is one graph without breaks
    # or recompilations. Reading a prompt (packing, nn.LSTM) stays eager, as transformers' prefill does.
    _can_compile_fullgraph = True

    def __init__(self, config: SeqLSTMConfig):
        refuse_config_without_lm_head(config)
        if config.bidirectional:
            raise ValueError("`bidirectional=True` is not valid for a causal LM: it would read the future.")
        super().__init__(config)
        self.model = SeqLSTMModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        bias = getattr(config, "lm_head_bias", None)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size,
                                 bias=not config.tie_word_embeddings if bias is None else bool(bias))
        self._cell = RNN_CELLS[config.rnn_type]
        self._cell_from_input_gates = CELLS_FROM_INPUT_GATES[config.rnn_type]
        self._input_table = None  # set by generate() for its decoding steps (see `_fold_for_generation`)
        self.post_init()
        if config.tie_word_embeddings:
            # Stored once, as the embedding; the Trainer then re-ties the head when it reloads a checkpoint
            # instead of warning that `lm_head.weight` is missing.
            self._keys_to_ignore_on_save = ["lm_head.weight"]

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        inputs_embeds=None,
        initial_state=None,
        cache=None,
        use_cache=None,
        labels=None,
        output_hidden_states=None,
        return_dict=None,
        logits_to_keep=0,
        **kwargs,
    ):
        r"""
        cache (`Cache`, *optional*): a transformers cache with the state left by an earlier call; the model continues
            from it and updates it in place. Takes the place of `initial_state`. The old names `past_key_values`
            (transformers before 5.24) and `cache_params` (Mamba) are taken too, with a FutureWarning.
        attention_mask (*optional*): as in transformers, once the cache has read n tokens the mask covers the
            cached and the new tokens (n + seq columns). A mask exactly as long as the input says that the input
            is the whole sequence so far: only its tokens after the first n are read.
        use_cache (`bool`, *optional*): return the state in a cache (a new `DynamicCache` when none is passed).
            Defaults to `config.use_cache`, except in training.
        logits_to_keep (`int`, *optional*): if > 0, compute logits for the last `logits_to_keep` positions
            only (generation needs the last one).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        cache = cache_from_old_names(cache, kwargs, f"{type(self).__name__}.forward")
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if cache is None and use_cache:
            cache = DynamicCache(config=self.config)
        if cache is not None:
            only_new_tokens = attention_mask is None and initial_state is None and labels is None
            if only_new_tokens and not output_hidden_states and self._is_decode_step(input_ids, cache):
                return self._decode_step(input_ids, cache, return_dict)
            prepare_recurrent_cache(cache, self.config)
            read = tokens_read(cache)
            if read:
                if initial_state is not None:
                    raise ValueError("Pass either a filled `cache` or `initial_state`, not both.")
                input_ids, inputs_embeds, attention_mask = self._unread_inputs(
                    read, input_ids, inputs_embeds, attention_mask
                )
                initial_state = cached_state(cache, self.config)

        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            initial_state=initial_state,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        if cache is not None:
            store_state(cache, outputs.final_state, outputs.last_hidden_state.shape[1])
        hidden = outputs.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            hidden = hidden[:, logits_to_keep]
        logits = self.lm_head(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        if not return_dict:
            output = (logits, outputs.final_state) + ((cache,) if cache is not None else ())
            return ((loss,) + output) if loss is not None else output
        return SeqLSTMCausalLMOutput(
            loss=loss,
            logits=logits,
            final_state=outputs.final_state,
            cache=cache,
            hidden_states=outputs.hidden_states,
        )

    @staticmethod
    def _unread_inputs(read, input_ids, inputs_embeds, attention_mask):
        """The part of the input the cache has not read yet: all of it (new tokens), or, when the mask is as
        long as the input (the whole sequence so far), what comes after the `read` tokens."""
        seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        if attention_mask is None or attention_mask.shape[1] == read + seq_len:
            return input_ids, inputs_embeds, None if attention_mask is None else attention_mask[:, read:]
        if attention_mask.shape[1] != seq_len:
            raise ValueError(
                f"`attention_mask` has {attention_mask.shape[1]} columns; with a cache that has read {read} tokens "
                f"it covers the cached and the new tokens ({read} + {seq_len}), or, when the input is the whole "
                f"sequence so far, the input ({seq_len})."
            )
        if seq_len <= read:
            raise ValueError(
                f"The input ({seq_len} tokens, read as the whole sequence so far since the attention mask is as long "
                f"as it) does not extend the {read} tokens the cache has already read. Pass the whole sequence "
                "including the new tokens, or only the new tokens with a mask covering the cached ones too."
            )
        cut = slice(read, None)
        return (
            None if input_ids is None else input_ids[:, cut],
            None if inputs_embeds is None else inputs_embeds[:, cut],
            attention_mask[:, cut],
        )

    def _is_decode_step(self, input_ids, cache):
        """One new token per row from a filled recurrent cache, in eval mode: the step `_decode_step` runs.
        Checked without reading the token count, which would cost a host sync in the decoding loop."""
        return (
            input_ids is not None
            and input_ids.shape[1] == 1
            and not self.training
            and len(cache.layers) > 0
            and isinstance(cache.layers[0], LinearAttentionCacheLayerMixin)
            and cache_is_filled(cache)
            and self._reads_plain_modules()
        )

    def _reads_plain_modules(self):
        """Whether the embedding, the recurrent layers and the LM head are torch's own modules, whose weights the decode
        step (and the folded table) read directly. One wrapped or replaced (a PEFT adapter, a dynamically quantized
        layer) has weights of its own making, and accelerate's hooks (`device_map` with offloading or several devices)
        load or move weights only when a module's forward runs: the step would skip them, find none or read them on
        the meta device, so the model reads each token through its modules instead."""
        rnn_class = RNN_CLASSES[self.config.rnn_type]
        modules = (self, self.model, self.model.embeddings, self.lm_head, *self.model.layers)
        return (
            type(self.model.embeddings) is nn.Embedding
            and type(self.lm_head) is nn.Linear
            and all(type(layer) is rnn_class for layer in self.model.layers)  # a parametrized layer has its own class
            and not any(hasattr(module, "_hf_hook") for module in modules)
        )

    def _decode_step(self, input_ids, cache, return_dict, step=None):
        """One token per row from the cached state: the hot loop of generate(). No checks, packing or host
        syncs (the ids come from the model's own sampling); eval mode only, so no dropout. The cache is updated in
        place, keeping its tensors' addresses. `step` is `recurrent_decode_step` or its compiled form."""
        slots = range(state_slots(self.config))
        states = [tuple(layer.recurrent_states[s] for s in slots) for layer in cache.layers]
        first = cache.layers[0]
        logits, final_state = (step or recurrent_decode_step)(
            self._cell,
            input_ids,
            self.model.embeddings.weight,
            # _flat_weights is (w_ih, w_hh, b_ih, b_hh), the list nn.LSTM/GRU/RNN itself hands to its kernel.
            [layer._flat_weights for layer in self.model.layers],
            states,
            first.recurrent_states[first.number_of_states - 1],
            self.lm_head.weight,
            self.lm_head.bias,
            self._input_table,
            self._cell_from_input_gates,
        )
        if not return_dict:
            return (logits, final_state, cache)
        # Filled directly: the dataclass __init__ re-validates every field as it is set (~15 us, a
        # sixth of a book-sized cell step), once per generated token.
        output = SeqLSTMCausalLMOutput.__new__(SeqLSTMCausalLMOutput)
        for name, value in (("logits", logits), ("final_state", final_state), ("cache", cache)):
            OrderedDict.__setitem__(output, name, value)
            object.__setattr__(output, name, value)
        return output

    # ---- generation hooks -------------------------------------------------------------------------

    def get_compiled_call(self, compile_config):
        """What generate() calls for its decode steps when it compiles (a static cache and a `compile_config`):
        the model, with each one-token step from a filled cache run by a compiled `recurrent_decode_step`.
        Compiling that function of tensors, rather than `self.__call__` as transformers does, keeps the checks
        and the Python objects (model, cache, output) out of the graph. On the CPU, inductor's graph of the step
        is called without dynamo (`InductorDecodeStep`), whose per-call work cost as much as compiling saved.
        Any other call (a prompt, hidden states requested) runs eagerly, as transformers' prefill does."""
        compile_config = compile_config or self._default_compile_config()
        device = self.device.type
        if getattr(self, "_compiled_call", None) is None or self._compiled_for != (compile_config, device):
            self._compiled_for = (compile_config, device)
            arguments = decode_step_compile_arguments(compile_config)
            if device == "cpu" and arguments.get("backend", "inductor") == "inductor":
                self._compiled_call = InductorDecodeStep(arguments.get("options"))
            else:  # CUDA graphs (mode "reduce-overhead") and other backends go through torch.compile
                self._compiled_call = torch.compile(recurrent_decode_step, **arguments)
        compiled_step = self._compiled_call

        def call(input_ids=None, cache=None, return_dict=None, use_cache=None, **kwargs):
            if not kwargs and use_cache is not False and cache is not None and self._is_decode_step(input_ids, cache):
                return_dict = return_dict if return_dict is not None else self.config.return_dict
                return self._decode_step(input_ids, cache, return_dict, step=compiled_step)
            return self(input_ids=input_ids, cache=cache, return_dict=return_dict, use_cache=use_cache, **kwargs)

        return call

    def generate(self, inputs=None, generation_config=None, **kwargs):
        """transformers' `generate()`, except that an empty prompt (or an all-padding row of a batch)
        starts from `bos_token_id` instead of failing, with a clear error when the model has none. Assisted decoding
        and `output_attentions` are refused with a clear error (the state cannot be rewound; there is no attention)."""
        refuse_generation_options(self, generation_config, kwargs)
        inputs, kwargs = start_empty_prompts_from_bos(self, inputs, generation_config, kwargs)
        # Two threads generating with one model (a demo serving two requests) may set or clear the table under each
        # other: a step without it runs the unfolded cells, which compute the same gates, so the text stays right.
        self._input_table = self._fold_for_generation()
        try:
            return super().generate(inputs, generation_config, **kwargs)
        finally:
            self._input_table = None

    def _prefill(self, input_ids, generation_config, model_kwargs, *args, **kwargs):
        cache = model_kwargs.get("cache")
        if generation_config.prefill_chunk_size is not None and cache is not None and tokens_read(cache):
            # A continuation: transformers would count the chunks from the cache's length, which a recurrent cache
            # does not keep (0), and send the tokens already read again; the unread ones are read in one go instead.
            generation_config = copy.copy(generation_config)
            generation_config.prefill_chunk_size = None
        refuse_padding_only_chunks(generation_config, model_kwargs.get("attention_mask"))
        if generation_config.prefill_chunk_size is not None and model_kwargs.get("attention_mask") is None:
            # transformers gives each chunk the mask up to its end; without one, a chunk would be read as the whole
            # sequence so far (see `_unread_inputs`), not as the tokens that follow those the cache has read.
            model_kwargs["attention_mask"] = torch.ones(input_ids.shape[:2], dtype=torch.long, device=input_ids.device)
        return super()._prefill(input_ids, generation_config, model_kwargs, *args, **kwargs)

    def _get_stopping_criteria(self, generation_config, stopping_criteria, tokenizer=None, **kwargs):
        generation_config, stop_strings = stop_strings_apart(generation_config, tokenizer)
        criteria = super()._get_stopping_criteria(generation_config, stopping_criteria, tokenizer, **kwargs)
        if stop_strings is not None:
            criteria.append(ProbedStopStringCriteria(tokenizer=tokenizer, stop_strings=stop_strings))
        return criteria

    @torch.no_grad()
    def _fold_for_generation(self):
        """The first layer's input projection folded into a (vocab, gates) table for one generate() call, or None
        where the table would hold more numbers than the layer's own weights (a word-level vocabulary: vocab above
        embedding + hidden size) or where the modules are not torch's own (`_reads_plain_modules`). Decoding is
        memory-bound: at the book's char LSTM (vocab 80, embedding 256, hidden 512) a step then reads 4 of its 6 MB
        of weights. Built per call, so it never outlives the weights it was built from (training, loading or editing
        them between calls)."""
        if not self._reads_plain_modules():
            return None
        embedding_weight = self.model.embeddings.weight
        if embedding_weight.shape[0] > embedding_weight.shape[1] + self.config.hidden_size:
            return None
        return fold_input_projection(embedding_weight, self.model.layers[0]._flat_weights)

    def prepare_inputs_for_generation(
        self,
        input_ids,
        cache=None,
        past_key_values=None,
        attention_mask=None,
        inputs_embeds=None,
        use_cache=None,
        is_first_iteration=False,
        **kwargs,
    ):
        cache = cache if cache is not None else past_key_values
        if cache is not None and not is_first_iteration:
            # The state summarises every earlier token: the newest token is all the model needs to read. Cloned, as
            # transformers does: a slice of the growing sequence has a new stride at every step, and a compiled
            # decode step (whose guards check strides, even of size-1 dimensions) would recompile at every token.
            model_inputs = {"input_ids": input_ids[:, -1:].clone(memory_format=torch.contiguous_format), "cache": cache}
            if kwargs.get("output_hidden_states"):
                model_inputs["output_hidden_states"] = True
            return model_inputs

        # First step (the whole prompt, padding handled by the attention mask), or no cache at all.
        if inputs_embeds is not None and is_first_iteration:
            model_inputs = {"input_ids": None, "inputs_embeds": inputs_embeds}
        else:
            model_inputs = {"input_ids": input_ids}
        if cache is not None and attention_mask is None:
            # generate() drops a mask of all ones; as for transformers' own models, the input is then the whole
            # sequence so far, and the forward reads only what a returned cache has not read yet.
            first = input_ids if inputs_embeds is None or not is_first_iteration else inputs_embeds
            attention_mask = torch.ones(first.shape[:2], dtype=torch.long, device=first.device)
        model_inputs.update(attention_mask=attention_mask, cache=cache, use_cache=use_cache)
        for key, value in kwargs.items():
            if key not in ("labels", "next_sequence_length", "position_ids", "cache_position", "token_type_ids"):
                model_inputs.setdefault(key, value)
        return model_inputs

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        cache = outputs.get("cache") if isinstance(outputs, dict) else None
        if cache is None:  # use_cache=False: the whole sequence is re-read each step, so the mask must grow
            return super()._update_model_kwargs_for_generation(
                outputs, model_kwargs, is_encoder_decoder=is_encoder_decoder, num_new_tokens=num_new_tokens
            )
        # The state already went through the prompt's padding; later steps read real tokens only,
        # so the attention mask is not needed (nor grown) any more.
        model_kwargs["cache"] = cache
        model_kwargs["attention_mask"] = None
        return model_kwargs


# transformers' Trainer shifts the labels for its label smoother (`label_smoothing_factor`) only for a model whose class
# its table of causal LMs names; unnamed, the smoothed loss would score each position against its own token instead
# of the next one. Named here, not in `seqhf.register_auto_classes`, so that remote code (without seqhf) is named too.
MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault(SeqLSTMConfig.model_type, "SeqLSTMForCausalLM")


__all__ = [
    "SeqLSTMPreTrainedModel",
    "SeqLSTMModel",
    "SeqLSTMForSequenceClassification",
    "SeqLSTMForCausalLM",
    "SeqLSTMModelOutput",
    "SeqLSTMCausalLMOutput",
]
