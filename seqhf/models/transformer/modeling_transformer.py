"""Small Transformers (self-attention as in "Attention Is All You Need") as transformers models.

This file imports only torch, transformers and its sibling configuration file, so a saved
folder loads with `trust_remote_code=True` where seqhf is not installed.
"""

import copy
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.generation import MaxLengthCriteria, StopStringCriteria
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.utils import logging

from .configuration_transformer import SeqTransformerConfig

logger = logging.get_logger(__name__)

# transformers 5.24 calls the KV cache `cache` (in outputs and in generate's model kwargs); earlier 5.x
# releases call it `past_key_values`. The forwards accept both; outputs use the installed name.
CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"
# transformers 5.24's models take the old names with a FutureWarning: `past_key_values` where the new name is
# `cache` (before 5.24 generate() itself passes it), and Mamba's `cache_params`.
OLD_CACHE_NAMES = ("past_key_values", "cache_params")


def cache_from_old_names(cache, kwargs, owner):
    """`cache`, or the cache passed under an old keyword (popped from `kwargs`): taken with the FutureWarning
    transformers' own models give for these names, never dropped; two different caches are refused."""
    for name in OLD_CACHE_NAMES:
        old = kwargs.pop(name, None)
        if old is None:
            continue
        if cache is not None and old is not cache:
            raise ValueError(f"Two caches were passed to {owner}: `cache` and `{name}`. Pass one, as `cache`.")
        if (name != "past_key_values" or CACHE_FIELD == "cache") and not torch.compiler.is_compiling():
            warnings.warn(
                f"`{name}` is deprecated for {owner}: pass the cache as `cache` (transformers' name since 5.24).",
                FutureWarning,
                stacklevel=3,
            )
        cache = old
    return cache


def sinusoids(num_positions, dim):
    """The paper's table: PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(pos / 10000^(2i/d))."""
    position = torch.arange(num_positions, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim + dim % 2)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table[:, :dim]


class SinusoidalPositionEmbedding(nn.Module):
    """Fixed sinusoidal position table, stored as a non-persistent buffer named like nn.Embedding's weight."""

    def __init__(self, num_positions, dim):
        super().__init__()
        self.register_buffer("weight", sinusoids(num_positions, dim), persistent=False)


def eager_attention_forward(
    module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=False, **kwargs
):
    """softmax(QKᵀ/√d + mask)·V written out, so the attention weights can be returned.

    Same contract as transformers' attention functions: (batch, heads, seq, head_dim) inputs, a boolean mask
    (True = may attend), output (batch, seq, heads, head_dim) plus the weights (batch, heads, seq, kv_seq).
    """
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if is_causal and attention_mask is None:
        q_len, kv_len = scores.shape[-2:]
        attention_mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=scores.device).tril(kv_len - q_len)
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    output = torch.matmul(F.dropout(weights, p=dropout, training=module.training), value)
    return output.transpose(1, 2).contiguous(), weights


class SeqTransformerAttention(nn.Module):
    """Multi-head self-attention with one fused projection for queries, keys and values."""

    def __init__(self, config: SeqTransformerConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.qkv_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states, attention_mask=None, is_causal=False, cache=None, output_attentions=False):
        batch_size, seq_len, width = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(batch_size, seq_len, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        # SDPA (the default) does not return the weights, so a call that asks for them runs eagerly.
        attention_interface = (
            eager_attention_forward
            if output_attentions
            else ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        )
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=is_causal,
        )
        return self.out_proj(output.reshape(batch_size, seq_len, width)), weights


class SeqTransformerMLP(nn.Module):
    """Position-wise feed-forward network: Linear → activation → Linear."""

    def __init__(self, config: SeqTransformerConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states):
        return self.fc_out(self.act(self.fc_in(hidden_states)))


class SeqTransformerLayer(GradientCheckpointingLayer):
    """Self-attention and feed-forward sub-layers, each with a residual connection and LayerNorm."""

    def __init__(self, config: SeqTransformerConfig, layer_idx: int):
        super().__init__()
        self.pre_norm = config.pre_norm
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = SeqTransformerAttention(config, layer_idx)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = SeqTransformerMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, hidden_states, attention_mask=None, is_causal=False, cache=None, output_attentions=False):
        attend = dict(
            attention_mask=attention_mask, is_causal=is_causal, cache=cache, output_attentions=output_attentions
        )
        if self.pre_norm:
            attention_output, weights = self.attention(self.attention_norm(hidden_states), **attend)
            hidden_states = hidden_states + self.dropout(attention_output)
            hidden_states = hidden_states + self.dropout(self.mlp(self.mlp_norm(hidden_states)))
        else:
            attention_output, weights = self.attention(hidden_states, **attend)
            hidden_states = self.attention_norm(hidden_states + self.dropout(attention_output))
            hidden_states = self.mlp_norm(hidden_states + self.dropout(self.mlp(hidden_states)))
        return hidden_states, weights


class SeqTransformerPreTrainedModel(PreTrainedModel):
    config_class = SeqTransformerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["SeqTransformerLayer"]
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SinusoidalPositionEmbedding):
            # A non-persistent buffer is not in the checkpoint: rebuild it when loading on the meta device.
            init.copy_(module.weight, sinusoids(*module.weight.shape))


class SeqTransformerModel(SeqTransformerPreTrainedModel):
    """Token + position embeddings followed by stacked Transformer layers.

    Attention is causal when `causal=True` (the causal LM) or, by default, when `config.is_decoder`;
    otherwise bidirectional. Padded positions (attention_mask 0) are never attended to and take
    no position, so left and right padding give the same outputs at the real tokens.
    """

    _can_compile_fullgraph = True  # value checks stay out of compiled graphs; a static cache's count stays a tensor

    def __init__(self, config: SeqTransformerConfig, causal: bool | None = None):
        super().__init__(config)
        self.is_causal = bool(config.is_decoder) if causal is None else causal
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        if config.position_embedding_type == "learned":
            self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        else:
            self.position_embeddings = SinusoidalPositionEmbedding(config.max_position_embeddings, config.hidden_size)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.layers = nn.ModuleList(SeqTransformerLayer(config, i) for i in range(config.num_hidden_layers))
        # Pre-norm leaves the residual stream unnormalised, so it ends with a LayerNorm; post-norm already did.
        self.final_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.pre_norm else nn.Identity()
        )
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings

    def set_input_embeddings(self, value):
        self.embeddings = value

    def _check_inputs(self, input_ids, attention_mask, inputs_embeds, position_ids, past_length, kv_len=None):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        if input_ids is not None and input_ids.dim() != 2:
            raise ValueError(f"`input_ids` must be (batch, seq), got shape {tuple(input_ids.shape)}.")
        batch_size, seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if seq_len == 0:
            raise ValueError("The input sequence is empty (length 0).")
        if torch.compiler.is_compiling():
            # The checks below read tensor values (the ids, a static cache's count): in a compiled graph they
            # would break it (fullgraph=True fails). Eager calls, the prompt's included, still make them.
            return
        past_length = int(past_length)
        if input_ids is not None:
            # On an accelerator the range check costs a host sync, which a training step should not pay.
            if (input_ids.device.type == "cpu" or not self.training) and input_ids.numel():
                low, high = int(input_ids.min()), int(input_ids.max())
                if low < 0 or high >= self.config.vocab_size:
                    raise ValueError(
                        f"`input_ids` holds ids outside [0, {self.config.vocab_size}): min {low}, max {high}. "
                        "Is the tokenizer the model's own?"
                    )
        max_positions = self.config.max_position_embeddings
        if past_length + seq_len > max_positions:
            if past_length:
                what = f" ({seq_len} new + {past_length} cached tokens)"
                fix = f"Read at most the last {max_positions} tokens (generate() slides its window by itself)."
            else:
                what, fix = "", f"Truncate it: tokenizer(..., truncation=True, max_length={max_positions})."
            raise ValueError(
                f"Input length {past_length + seq_len}{what} exceeds max_position_embeddings={max_positions}. {fix}"
            )
        if attention_mask is not None and attention_mask.dim() == 4:
            check_4d_mask(attention_mask, batch_size, self.config.num_attention_heads, seq_len, past_length, kv_len)
        elif attention_mask is not None:
            # Also accepted with a static cache: a mask over all its slots (what generate() hands a compiled step).
            shape = tuple(attention_mask.shape)
            widths = (past_length + seq_len,) if kv_len is None else (past_length + seq_len, kv_len)
            if len(shape) != 2 or shape[0] != batch_size or not any(shape[1] == w for w in widths):
                raise ValueError(
                    f"`attention_mask` shape {shape} != {(batch_size, past_length + seq_len)} "
                    "(batch, cached + new tokens)."
                )
            if not bool(attention_mask.any(dim=1).all()):
                raise ValueError("Some rows of `attention_mask` are all zeros: every sequence needs a real token.")
        if position_ids is not None and position_ids.numel() and bool(
            (position_ids.min() < 0) | (position_ids.max() >= max_positions)
        ):
            raise ValueError(
                f"`position_ids` must be in [0, {max_positions}) (max_position_embeddings), "
                f"got min {int(position_ids.min())}, max {int(position_ids.max())}."
            )

    def _attention_mask(self, attention_mask, seq_len, past_length, device, kv_len=None):
        """The (mask, is_causal) pair for SDPA; mask is boolean, True = may attend, or None. `kv_len` is how
        many keys the cache returns: more than past + new tokens for a static cache, whose unfilled slots
        must stay hidden. `attention_mask` covers the cached and new tokens, or all `kv_len` slots."""
        filled = past_length + seq_len
        kv_len = filled if kv_len is None else kv_len
        if attention_mask is not None and attention_mask.dim() == 4:  # the caller's own (batch, heads, query, key) mask
            allowed = allowed_by_4d_mask(attention_mask)
            return F.pad(allowed, (0, kv_len - allowed.shape[-1])), False  # unfilled static slots: hidden
        if torch.is_tensor(past_length):
            # A static cache counts its tokens in a tensor, so that a compiled decoding step is one graph for every
            # position: the mask is computed from it, without branching on its value.
            queries = past_length + torch.arange(seq_len, device=device)
            mask = torch.arange(kv_len, device=device) <= queries[:, None]  # causal; unfilled slots come later
            if attention_mask is None:
                return mask, False
            mask = mask & F.pad(attention_mask.bool(), (0, kv_len - attention_mask.shape[1]))[:, None, None, :]
            return mask | ~mask.any(dim=-1, keepdim=True), False  # a left-padding query: see below
        if attention_mask is None:
            if not self.is_causal or (seq_len == 1 and kv_len == filled):
                return None, False
            if past_length == 0 and kv_len == filled:
                return None, True  # SDPA's own causal kernel, no mask materialised
            return torch.ones(seq_len, kv_len, dtype=torch.bool, device=device).tril(past_length), False
        mask = F.pad(attention_mask.bool(), (0, kv_len - attention_mask.shape[1]))  # unfilled static slots: hidden
        mask = mask[:, None, None, :]  # (batch, 1, 1, kv_len): padded keys are hidden
        if not self.is_causal or seq_len == 1:
            return mask, False  # broadcast over queries; every row has a real token to attend to
        mask = mask & torch.ones(seq_len, kv_len, dtype=torch.bool, device=device).tril(past_length)
        # A left-padding query may attend to nothing, which gives NaN (and NaN * 0 leaks through later
        # layers); let it attend to everything instead. Its output is never used.
        return mask | ~mask.any(dim=-1, keepdim=True), False

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        cache=None,
        **kwargs,
    ):
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        cache = cache_from_old_names(cache, kwargs, f"{type(self).__name__}.forward")
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if use_cache is None:
            use_cache = self.config.use_cache and self.is_causal and not self.training
        if (use_cache or cache is not None) and not self.is_causal:
            raise ValueError("A KV cache needs causal attention; this model attends in both directions.")
        if cache is not None and not isinstance(cache, Cache):
            raise ValueError(f"The KV cache must be a transformers `Cache` (e.g. DynamicCache), got {type(cache)}.")
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled() and use_cache:
            logger.warning_once("Gradient checkpointing recomputes layers, so it cannot fill a KV cache: no cache.")
            use_cache, cache = False, None
        if use_cache and cache is None:
            cache = DynamicCache()
        past_length = cache.get_seq_length() if cache is not None else 0
        given, kv_len = input_ids if input_ids is not None else inputs_embeds, None
        if cache is not None and given is not None and given.dim() >= 2:
            kv_len = cache.get_mask_sizes(given.shape[1], 0)[0]  # a StaticCache hands back all its slots
            if not torch.is_tensor(past_length):
                kv_len = max(kv_len, past_length + given.shape[1])
        self._check_inputs(input_ids, attention_mask, inputs_embeds, position_ids, past_length, kv_len)

        if inputs_embeds is None:
            inputs_embeds = self.embeddings(input_ids)
        seq_len = inputs_embeds.shape[1]
        custom_mask = attention_mask is not None and attention_mask.dim() == 4  # its positions are the caller's to give
        if attention_mask is not None and not custom_mask and not torch.compiler.is_compiling() and bool(attention_mask.all()):
            attention_mask = None  # no padding: take the fast path
        if position_ids is None and attention_mask is not None and not custom_mask:
            # Positions count real tokens only, so a left-padded row gets the positions it has alone.
            steps = past_length + torch.arange(seq_len, device=attention_mask.device)
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0).index_select(1, steps)
        table = self.position_embeddings.weight
        if position_ids is None and not torch.is_tensor(past_length):
            hidden_states = inputs_embeds + table[past_length : past_length + seq_len]
        elif position_ids is None:  # a static cache's count
            positions = past_length + torch.arange(seq_len, device=table.device)
            hidden_states = inputs_embeds + table.index_select(0, positions)
        else:
            hidden_states = inputs_embeds + F.embedding(position_ids, table)
        hidden_states = self.embedding_dropout(hidden_states)

        mask, is_causal = self._attention_mask(attention_mask, seq_len, past_length, hidden_states.device, kv_len)
        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, weights = layer(
                hidden_states,
                attention_mask=mask,
                is_causal=is_causal,
                cache=cache,
                output_attentions=output_attentions,
            )
            if output_attentions:
                all_attentions += (weights,)
        hidden_states = self.final_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        output = BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            **{CACHE_FIELD: cache if use_cache else None},
        )
        return output if return_dict else output.to_tuple()


# Copied from seqhf.models.lstm.modeling_lstm.read_empty_texts_as_pad; change both together.
def check_4d_mask(mask, batch_size, num_heads, seq_len, past_length, kv_len):
    """A custom (batch, 1 or heads, query, key) mask, as transformers' decoders take it (packed sequences, shared
    prefixes): boolean (True attends) or additive float (0 attends, -inf or the dtype's minimum does not). Every
    query must attend to some key, or its attention would be NaN."""
    keys = (past_length + seq_len,) if kv_len is None else (past_length + seq_len, kv_len)
    shape = tuple(mask.shape)
    if shape[0] != batch_size or shape[1] not in (1, num_heads) or shape[2] != seq_len or shape[3] not in keys:
        raise ValueError(f"A 4D `attention_mask` must be (batch, 1 or heads, query, key) = ({batch_size}, 1 or "
                         f"{num_heads}, {seq_len}, {past_length + seq_len}), got {shape}.")
    if mask.dtype != torch.bool:
        if not mask.is_floating_point():
            raise ValueError("A 4D `attention_mask` is boolean (True attends) or an additive float mask (0 attends, "
                             f"-inf or the dtype's minimum does not), got {mask.dtype}.")
        if not bool(((mask == 0) | (mask <= torch.finfo(mask.dtype).min)).all()):
            raise ValueError("A float 4D `attention_mask` may hold only 0 (attend) and -inf or the dtype's minimum "
                             "(do not attend): other biases are not supported.")
    if not bool(allowed_by_4d_mask(mask).any(dim=-1).all()):
        raise ValueError("A 4D `attention_mask` has a query that attends to no key: every query needs one.")


def allowed_by_4d_mask(mask):
    """Which keys each query of a 4D mask may attend to (True): a boolean mask as it is, a float one where it is 0."""
    return mask if mask.dtype == torch.bool else mask == 0


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


# Copied from seqhf.models.lstm.modeling_lstm.infer_problem_type; change both together.
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


# Copied from seqhf.models.lstm.modeling_lstm.calibrated_logits: a modeling file imports no sibling model, so
# that a saved folder's remote code stands alone; change both together.
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


class SeqTransformerForSequenceClassification(SeqTransformerPreTrainedModel):
    """Bidirectional Transformer encoder, mean or [CLS] pooling, and a linear classifier."""

    # The loss is a mean over the batch (transformers' classification loss ignores `num_items_in_batch`), so the
    # Trainer must divide it by the gradient-accumulation steps itself, as for a model whose forward takes no
    # loss kwargs; otherwise accumulating k batches would sum k means (k times the loss and the gradients).
    accepts_loss_kwargs = False

    def __init__(self, config: SeqTransformerConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = SeqTransformerModel(config, causal=False)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def pool(self, hidden_states, attention_mask):
        """Summarise each row as `config.pooling` says; padded positions never count."""
        if attention_mask is None:
            return hidden_states[:, 0] if self.config.pooling == "cls" else hidden_states.mean(dim=1)
        if self.config.pooling == "cls":
            first = attention_mask.long().argmax(dim=1)  # first real token, wherever the padding is
            return hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), first]
        mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ):
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if attention_mask is not None and attention_mask.dim() != 2:
            raise ValueError(f"The classifier pools each text over a (batch, seq) `attention_mask`, got shape "
                             f"{tuple(attention_mask.shape)}: a 4D mask is for the base model and the LM.")
        if labels is not None:
            infer_problem_type(self.config, labels)
        input_ids, attention_mask = read_empty_texts_as_pad(input_ids, attention_mask, self.config.pad_token_id)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(self.pool(outputs.last_hidden_state, attention_mask)))
        logits = calibrated_logits(logits, self.config)
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return output if return_dict else output.to_tuple()


def refuse_config_without_lm_head(config):
    """A config saved from a model with another head (a text classifier) is refused: its backbone was trained for
    that task and it has no LM head, so a causal LM built from it would generate noise. A backbone folder
    (`SeqTransformerModel`) loads as in transformers: the new LM head is reported as newly initialised."""
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


# Copied from seqhf.models.lstm.modeling_lstm.start_empty_prompts_from_bos; change both together.
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


# Copied from seqhf.models.lstm.modeling_lstm.refuse_padding_only_chunks; change both together.
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


# Copied from seqhf.models.lstm.modeling_lstm.stop_string_probe; change both together.
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


# Copied from seqhf.models.lstm.modeling_lstm.ProbedStopStringCriteria; change both together.
class ProbedStopStringCriteria(StopStringCriteria):
    """transformers' `StopStringCriteria`, which reads each token's string after the text "abcdef" and fails with
    `ValueError: substring not found` when the tokenizer turns that text into [UNK]: here the text is one the
    tokenizer reads back (`stop_string_probe`)."""

    @staticmethod
    def clean_tokenizer_vocab(tokenizer, static_prefix="abcdef", stop_string_matching_mode=None):
        return StopStringCriteria.clean_tokenizer_vocab(
            tokenizer, stop_string_probe(tokenizer, static_prefix), stop_string_matching_mode)


# Copied from seqhf.models.lstm.modeling_lstm.stop_strings_apart; change both together.
def stop_strings_apart(generation_config, tokenizer):
    """`generation_config` without its `stop_strings`, and those strings, for `_get_stopping_criteria` to match them
    with `ProbedStopStringCriteria`; unchanged (and None) without a tokenizer, so that transformers asks for one."""
    if generation_config.stop_strings is None or tokenizer is None:
        return generation_config, None
    without = copy.copy(generation_config)
    without.stop_strings = None
    return without, generation_config.stop_strings


class SeqTransformerForCausalLM(SeqTransformerPreTrainedModel, GenerationMixin):
    """Causal (decoder-only) Transformer language model with a KV cache for generation."""

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}
    # The forward is one graph for torch.compile(fullgraph=True), and a compiled decoding step with a static cache
    # does not recompile as the text grows (the cache's count, the positions and the mask stay tensors).
    _can_compile_fullgraph = True

    def __init__(self, config: SeqTransformerConfig):
        refuse_config_without_lm_head(config)
        if not config.is_decoder:  # saved so, `AutoModel` on this folder builds the same causal backbone
            config = copy.deepcopy(config)  # (the caller's config may build other heads)
            config.is_decoder = True
        super().__init__(config)
        self.model = SeqTransformerModel(config, causal=True)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
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
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        logits_to_keep=0,
        cache=None,
        **kwargs,
    ):
        r"""
        labels: next-token targets aligned with `input_ids` (shifted inside the loss); -100 is ignored.
        logits_to_keep: compute logits only for the last `logits_to_keep` positions (0 = all); `generate` uses 1.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if past_key_values is not None:
            kwargs["past_key_values"] = past_key_values
        cache = cache_from_old_names(cache, kwargs, f"{type(self).__name__}.forward")
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            cache=cache,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        output = CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{CACHE_FIELD: getattr(outputs, CACHE_FIELD)},
        )
        return output if return_dict else output.to_tuple()

    def generate(self, inputs=None, generation_config=None, **kwargs):
        """transformers' `generate()`, except that an empty prompt (or an all-padding row of a batch)
        starts from `bos_token_id` instead of failing, with a clear error when the model has none."""
        inputs, kwargs = start_empty_prompts_from_bos(self, inputs, generation_config, kwargs)
        return super().generate(inputs, generation_config, **kwargs)

    def create_masks_for_generate(self, attention_mask=None, **kwargs):
        """generate() builds a 4D mask for a static cache; this model builds its own from the 2D one, which is
        padded here with zeros to all the cache's slots: the mask of a compiled decoding step then keeps its shape
        as the text grows, instead of recompiling the step at every token."""
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if attention_mask is None or attention_mask.dim() != 2 or cache is None:
            return attention_mask
        slots = cache.get_mask_sizes(kwargs["inputs_embeds"].shape[1], 0)[0] if "inputs_embeds" in kwargs else 0
        return F.pad(attention_mask, (0, max(slots - attention_mask.shape[1], 0)))

    def prepare_inputs_for_generation(self, input_ids, inputs_embeds=None, attention_mask=None, **kwargs):
        """transformers' preparation, until the text outgrows the model's positions. From then on each new
        token sees the last `max_position_embeddings` tokens, read afresh at positions 0.. (the cached keys
        were computed at other positions), as a char model generates past its training window.

        `inputs_embeds` and `attention_mask` are named: generate() takes `inputs_embeds` only from a model whose
        preparation names it."""
        window = self.config.max_position_embeddings
        embeds_first = inputs_embeds is not None and kwargs.get("is_first_iteration")
        if input_ids.shape[1] <= window or embeds_first:
            return super().prepare_inputs_for_generation(
                input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs
            )
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is not None:
            cache.reset()
            if cache.get_seq_length() or not isinstance(cache, DynamicCache):  # older reset(), or static slots
                cache = DynamicCache(config=self.config)
        model_inputs = {
            "input_ids": input_ids[:, -window:].contiguous(),
            "attention_mask": None if attention_mask is None else attention_mask[:, -window:],
            "cache": cache,
            "use_cache": kwargs.get("use_cache"),
        }
        for key in ("output_attentions", "output_hidden_states", "logits_to_keep"):
            if key in kwargs:
                model_inputs[key] = kwargs[key]
        return model_inputs

    def _assisted_decoding(self, input_ids, logits_processor, stopping_criteria, generation_config, *args, **kwargs):
        window = self.config.max_position_embeddings
        if generation_config.max_length > window:
            # Past the positions each token is predicted from the last `window` tokens read afresh; a pass that
            # checks several draft tokens would read them in one window, each seeing fewer tokens than that.
            raise ValueError(
                f"Assisted decoding (an assistant model or prompt lookup) checks several draft tokens in one pass, "
                f"which past max_position_embeddings={window} would see a shorter context than generate() gives each "
                f"token without it, and write another text: generate at most {window} tokens in all, prompt included "
                f"(here {generation_config.max_length}), or without an assistant."
            )
        return super()._assisted_decoding(input_ids, logits_processor, stopping_criteria, generation_config, *args,
                                          **kwargs)

    def _prefill(self, input_ids, generation_config, model_kwargs, *args, **kwargs):
        if generation_config.prefill_chunk_size is not None and input_ids.shape[1] > self.config.max_position_embeddings:
            # Only the last window is read (`prepare_inputs_for_generation`): at most max_position_embeddings tokens.
            # Read in chunks, the prompt would outgrow the positions at a chunk, which the window does not slide for.
            generation_config = copy.copy(generation_config)
            generation_config.prefill_chunk_size = None
        refuse_padding_only_chunks(generation_config, model_kwargs.get("attention_mask"))
        return super()._prefill(input_ids, generation_config, model_kwargs, *args, **kwargs)

    def _get_stopping_criteria(self, generation_config, stopping_criteria, tokenizer=None, **kwargs):
        generation_config, stop_strings = stop_strings_apart(generation_config, tokenizer)
        criteria = super()._get_stopping_criteria(generation_config, stopping_criteria, tokenizer, **kwargs)
        for criterion in criteria:
            if isinstance(criterion, MaxLengthCriteria):
                # It warns that generating past max_position_embeddings may fail; here the window slides.
                criterion.max_position_embeddings = None
        if stop_strings is not None:
            criteria.append(ProbedStopStringCriteria(tokenizer=tokenizer, stop_strings=stop_strings))
        return criteria


# transformers' Trainer shifts the labels for its label smoother (`label_smoothing_factor`) only for a model whose class
# its table of causal LMs names; unnamed, the smoothed loss would score each position against its own token instead
# of the next one. Named here, not in `seqhf.register_auto_classes`, so that remote code (without seqhf) is named too.
MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault(SeqTransformerConfig.model_type, "SeqTransformerForCausalLM")


__all__ = [
    "SeqTransformerPreTrainedModel",
    "SeqTransformerModel",
    "SeqTransformerForSequenceClassification",
    "SeqTransformerForCausalLM",
]
