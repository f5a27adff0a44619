"""Recurrent sequence models (SimpleRNN, LSTM, GRU) as transformers models.

This file imports only torch, transformers and its sibling configuration file, so a saved
folder loads with `trust_remote_code=True` where seqhf is not installed.
"""

import inspect
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput

from .configuration_lstm import SeqLSTMConfig

RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class SeqLSTMModelOutput(ModelOutput):
    """
    last_hidden_state: (batch, seq, hidden_size * num_directions) outputs of the last layer;
        zero at padded positions.
    final_state: the recurrent state after each row's last real token, as torch returns it:
        `(h, c)` for an LSTM, `(h,)` for GRU/RNN, each (num_layers * num_directions, batch, hidden_size).
    hidden_states: embeddings plus each layer's outputs, when `output_hidden_states=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_state: tuple[torch.FloatTensor, ...] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class SeqLSTMCausalLMOutput(ModelOutput):
    """
    loss: mean next-token cross-entropy (nats per token) when `labels` is given.
    logits: (batch, seq, vocab_size), or only the last `logits_to_keep` positions.
    final_state: recurrent state after the last token; feed it back as `initial_state` to continue.
    cache: the same state in a `SeqLSTMCache`, when `use_cache=True` or a cache was passed in
        (this is what `generate()` carries from step to step).
    hidden_states: as in `SeqLSTMModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    final_state: tuple[torch.FloatTensor, ...] | None = None
    cache: "SeqLSTMCache | None" = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


class SeqLSTMCache:
    """The recurrent state carried between generation steps: the role a KV cache plays for a Transformer.

    An RNN summarises everything it has read in its state, so the cache holds one state per layer
    (`(h, c)` for an LSTM, `h` for GRU/RNN, each (batch, hidden_size)) instead of one entry per token:
    each new token costs one recurrent step, however long the text already is.
    The model updates the cache in place, as transformers' caches are.
    """

    is_compileable = False
    is_croppable = False  # a recurrent state cannot be rolled back (no assisted decoding)
    is_linear = (True,)  # constant size, like Mamba's layers: generate() never slices the prompt for it

    def __init__(self, final_state=None):
        self.layer_states = None
        self.seen_tokens = 0
        if final_state is not None:
            self.set_final_state(final_state)

    def get_seq_length(self, layer_idx=0):
        return self.seen_tokens

    def set_final_state(self, final_state):
        """Store a state as `SeqLSTMModel` returns it: `(h, c)` or `(h,)`, each (num_layers, batch, hidden)."""
        per_layer = list(zip(*(t.unbind(0) for t in final_state)))
        self.layer_states = [s if len(s) == 2 else s[0] for s in per_layer]

    @property
    def final_state(self):
        """The state stacked over layers, as `SeqLSTMModel` returns it: `(h, c)` or `(h,)`."""
        if self.layer_states is None:
            return None
        parts = [s if isinstance(s, tuple) else (s,) for s in self.layer_states]
        if len(parts) == 1:
            return tuple(t.unsqueeze(0) for t in parts[0])
        return tuple(torch.stack(p, dim=0) for p in zip(*parts))

    def _map(self, fn):
        if self.layer_states is not None:
            self.layer_states = [
                tuple(fn(t) for t in s) if isinstance(s, tuple) else fn(s) for s in self.layer_states
            ]

    def reorder_cache(self, beam_idx):
        """Keep the rows beam search chose."""
        self._map(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats):
        self._map(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices):
        self._map(lambda t: t[indices])


# One time step of each recurrent layer type, with the layer's own weights. For a single token at
# batch 1 these fused cells are several times faster on CPU than calling nn.LSTM on a length-1 sequence.
RNN_CELLS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


def valid_tokens_first(attention_mask):
    """Per row, the time order that puts real tokens first (left or right padding alike)."""
    return torch.argsort((attention_mask == 0).to(torch.int8), dim=1, stable=True)


class SeqLSTMPreTrainedModel(PreTrainedModel):
    config_class = SeqLSTMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = []

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Embedding):
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
            # On an accelerator the range check costs a host sync, which a training step should not pay.
            checked = input_ids.device.type == "cpu" or not self.training
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
            if not bool(attention_mask.any(dim=1).all()):
                raise ValueError("Some rows of `attention_mask` are all zeros: every sequence needs a real token.")

    def _split_state(self, initial_state):
        """Cut a stacked (num_layers * dirs, B, H) state into one state per layer."""
        if initial_state is None:
            return [None] * len(self.layers)
        dirs = 2 if self.config.bidirectional else 1
        per_layer = [tuple(t[i * dirs : (i + 1) * dirs] for t in initial_state) for i in range(len(self.layers))]
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
            hidden = hidden.gather(1, order.unsqueeze(-1).expand_as(hidden))
            hidden = pack_padded_sequence(hidden, lengths, batch_first=True, enforce_sorted=False)

        def unpack(h):
            if not packed:
                return h
            h, _ = pad_packed_sequence(h, batch_first=True, total_length=seq_len)
            return torch.zeros_like(h).scatter_(1, order.unsqueeze(-1).expand_as(h), h)

        all_hidden_states = (inputs_embeds,) if output_hidden_states else None
        final_states = []
        for i, (layer, layer_state) in enumerate(zip(self.layers, self._split_state(initial_state))):
            if i > 0:
                hidden = self._dropout(self.hidden_dropout, hidden)
            hidden, state = self._run_layer(layer, hidden, layer_state)
            final_states.append(state if isinstance(state, tuple) else (state,))
            if output_hidden_states:
                all_hidden_states += (unpack(hidden),)

        output = self._dropout(self.output_dropout, hidden)
        last_hidden_state = all_hidden_states[-1] if output_hidden_states and output is hidden else unpack(output)
        final_state = tuple(torch.cat(parts, dim=0) for parts in zip(*final_states))
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


class SeqLSTMForSequenceClassification(SeqLSTMPreTrainedModel):
    """Recurrent encoder, a pooling of its outputs, and a (optionally two-layer) classifier."""

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
        self.post_init()

    def pool(self, outputs, attention_mask):
        """Summarise the sequence as `config.pooling` says; padded positions never count."""
        hidden = outputs.last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        mask = attention_mask.unsqueeze(-1).bool()
        h_n = outputs.final_state[0]
        # The final state of the last layer: forward (and backward) direction.
        last = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.config.bidirectional else h_n[-1]
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
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.pool(outputs, attention_mask))
        loss = None
        if labels is not None:
            if self.config.problem_type in (None, "single_label_classification") and labels.dtype in (
                torch.long,
                torch.int,
            ):
                if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_labels):
                    raise ValueError(
                        f"`labels` must be in [0, {self.num_labels}) (id2label={self.config.id2label}), "
                        f"got min {int(labels.min())}, max {int(labels.max())}."
                    )
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


def _generation_cache_kwarg():
    """The keyword generate() keeps a cache under: `cache` from transformers 5.2x, `past_key_values` before."""
    params = inspect.signature(GenerationMixin.prepare_inputs_for_generation).parameters
    return "cache" if "cache" in params else "past_key_values"


class SeqLSTMForCausalLM(SeqLSTMPreTrainedModel, GenerationMixin):
    """Unidirectional recurrent language model: next-token logits at every position.

    `generate()` carries the recurrent state in a `SeqLSTMCache`: the prompt is read once, then each
    new token costs one recurrent step. All of transformers' decoding options work (greedy, sampling,
    `top_k`, `top_p`, `repetition_penalty`, `num_return_sequences`, `eos_token_id`, streamers, beam search).

    Sampling temperature: the book samples from `softmax(alpha * logits)` with a scale factor alpha;
    transformers divides the logits by `temperature`, so the book's alpha equals `1 / temperature`
    (alpha = 2 is `temperature=0.5`, sharper; alpha = 0.5 is `temperature=2.0`, more random).
    """

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}
    _is_stateful = True  # the state cannot be rewound, so transformers refuses assisted decoding
    _cache_kwarg = _generation_cache_kwarg()

    def __init__(self, config: SeqLSTMConfig):
        if config.bidirectional:
            raise ValueError("`bidirectional=True` is not valid for a causal LM: it would read the future.")
        super().__init__(config)
        self.model = SeqLSTMModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=not config.tie_word_embeddings)
        self._cell = RNN_CELLS[config.rnn_type]
        self.post_init()

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
        cache (`SeqLSTMCache`, *optional*): state left by an earlier call; the model continues from it and
            updates it in place. Takes the place of `initial_state`.
        use_cache (`bool`, *optional*): return a (new) `SeqLSTMCache` holding the final state.
        logits_to_keep (`int`, *optional*): if > 0, compute logits for the last `logits_to_keep` positions
            only (generation needs the last one).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if cache is None and use_cache:
            cache = SeqLSTMCache()
        if cache is not None and cache.layer_states is not None:
            if initial_state is not None:
                raise ValueError("Pass either `cache` or `initial_state`, not both.")
            if (
                input_ids is not None
                and input_ids.shape[1] == 1
                and attention_mask is None
                and labels is None
                and not output_hidden_states
                and not self.training
            ):
                return self._decode_step(input_ids, cache, return_dict)
            initial_state = cache.final_state

        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            initial_state=initial_state,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        if cache is not None:
            cache.set_final_state(outputs.final_state)
            cache.seen_tokens += outputs.last_hidden_state.shape[1]
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

    def _decode_step(self, input_ids, cache, return_dict):
        """One token per row from a carried state: the hot loop of generate(). No checks, packing or
        host syncs (the ids come from the model's own sampling); eval mode only, so no dropout."""
        backbone = self.model
        hidden = backbone.embeddings(input_ids[:, 0])
        new_states = []
        for layer, state in zip(backbone.layers, cache.layer_states):
            # _flat_weights is (w_ih, w_hh, b_ih, b_hh), the list nn.LSTM/GRU/RNN itself hands to its kernel.
            state = self._cell(hidden, state, *layer._flat_weights)
            hidden = state[0] if isinstance(state, tuple) else state
            new_states.append(state)
        cache.layer_states = new_states
        cache.seen_tokens += 1
        logits = self.lm_head(hidden).unsqueeze(1)
        if not return_dict:
            return (logits, cache.final_state, cache)
        # Filled directly: the dataclass __init__ re-validates every field as it is set (~15 us, a
        # sixth of a book-sized cell step), once per generated token.
        output = SeqLSTMCausalLMOutput.__new__(SeqLSTMCausalLMOutput)
        for name, value in (("logits", logits), ("final_state", cache.final_state), ("cache", cache)):
            OrderedDict.__setitem__(output, name, value)
            object.__setattr__(output, name, value)
        return output

    # ---- generation hooks -------------------------------------------------------------------------

    def generate(self, inputs=None, generation_config=None, **kwargs):
        """transformers' `generate()`, except that an empty prompt (or an all-padding row of a batch)
        starts from `bos_token_id` instead of failing, with a clear error when the model has none."""
        key = "inputs" if inputs is not None else "input_ids"
        input_ids = inputs if inputs is not None else kwargs.get("input_ids")
        if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2 and kwargs.get("inputs_embeds") is None:
            attention_mask = kwargs.get("attention_mask")
            if input_ids.shape[1] == 0:
                empty = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            elif attention_mask is not None and attention_mask.shape == input_ids.shape:
                empty = ~attention_mask.bool().any(dim=1)
            else:
                empty = None
            if empty is not None and bool(empty.any()):
                bos = kwargs.get("bos_token_id")
                for config in (generation_config, self.generation_config, self.config):
                    bos = bos if bos is not None else getattr(config, "bos_token_id", None)
                if bos is None:
                    raise ValueError(
                        "The prompt is empty and the model has no `bos_token_id` to start from: "
                        "give a non-empty prompt, or set `model.config.bos_token_id`."
                    )
                if input_ids.shape[1] == 0:
                    input_ids = input_ids.new_full((input_ids.shape[0], 1), bos)
                    attention_mask = torch.ones_like(input_ids)
                else:  # put BOS in the last (padding) slot of the empty rows
                    input_ids, attention_mask = input_ids.clone(), attention_mask.clone()
                    input_ids[empty, -1] = bos
                    attention_mask[empty, -1] = 1
                if key == "inputs":
                    inputs = input_ids
                else:
                    kwargs["input_ids"] = input_ids
                kwargs["attention_mask"] = attention_mask
        return super().generate(inputs, generation_config, **kwargs)

    @classmethod
    def _supports_default_dynamic_cache(cls):
        return False  # the model makes its own SeqLSTMCache on the first forward

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
        if cache is not None and cache.layer_states is not None and not is_first_iteration:
            # The state summarises every earlier token: the newest token is all the model needs to read.
            model_inputs = {"input_ids": input_ids[:, -1:], "cache": cache}
            if kwargs.get("output_hidden_states"):
                model_inputs["output_hidden_states"] = True
            return model_inputs

        # First step (the whole prompt, padding handled by the attention mask), or no cache at all.
        if inputs_embeds is not None and is_first_iteration:
            model_inputs = {"input_ids": None, "inputs_embeds": inputs_embeds}
        else:
            model_inputs = {"input_ids": input_ids}
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
        model_kwargs[self._cache_kwarg] = cache
        model_kwargs["attention_mask"] = None
        return model_kwargs


__all__ = [
    "SeqLSTMPreTrainedModel",
    "SeqLSTMModel",
    "SeqLSTMForSequenceClassification",
    "SeqLSTMForCausalLM",
    "SeqLSTMModelOutput",
    "SeqLSTMCausalLMOutput",
    "SeqLSTMCache",
]
