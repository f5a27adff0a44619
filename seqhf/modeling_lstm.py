"""Recurrent sequence models (SimpleRNN, LSTM, GRU) as transformers models.

This file imports only torch, transformers and its sibling configuration file, so a saved
folder loads with `trust_remote_code=True` where seqhf is not installed.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
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
    logits: (batch, seq, vocab_size).
    final_state: recurrent state after the last token; feed it back as `initial_state` to continue.
    hidden_states: as in `SeqLSTMModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    final_state: tuple[torch.FloatTensor, ...] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


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
            if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= self.config.vocab_size):
                raise ValueError(
                    f"`input_ids` holds ids outside [0, {self.config.vocab_size}): "
                    f"min {int(input_ids.min())}, max {int(input_ids.max())}. Is the tokenizer the model's own?"
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
            inputs_embeds = self.embeddings(input_ids)
        hidden = self.embedding_dropout(inputs_embeds)
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
                hidden = self._dropout(hidden, packed)
            hidden, state = layer(hidden, layer_state)
            final_states.append(state if isinstance(state, tuple) else (state,))
            if output_hidden_states:
                all_hidden_states += (unpack(hidden),)

        last_hidden_state = all_hidden_states[-1] if output_hidden_states else unpack(hidden)
        final_state = tuple(torch.cat(parts, dim=0) for parts in zip(*final_states))
        if not return_dict:
            return tuple(v for v in (last_hidden_state, final_state, all_hidden_states) if v is not None)
        return SeqLSTMModelOutput(
            last_hidden_state=last_hidden_state, final_state=final_state, hidden_states=all_hidden_states
        )

    def _dropout(self, hidden, packed):
        if not packed:
            return self.hidden_dropout(hidden)
        return hidden._replace(data=self.hidden_dropout(hidden.data))


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


class SeqLSTMForCausalLM(SeqLSTMPreTrainedModel, GenerationMixin):
    """Unidirectional recurrent language model: next-token logits at every position."""

    _tied_weights_keys = {"lm_head.weight": "model.embeddings.weight"}

    def __init__(self, config: SeqLSTMConfig):
        if config.bidirectional:
            raise ValueError("`bidirectional=True` is not valid for a causal LM: it would read the future.")
        super().__init__(config)
        self.model = SeqLSTMModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=not config.tie_word_embeddings)
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
            initial_state=initial_state,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        if not return_dict:
            output = (logits, outputs.final_state)
            return ((loss,) + output) if loss is not None else output
        return SeqLSTMCausalLMOutput(
            loss=loss, logits=logits, final_state=outputs.final_state, hidden_states=outputs.hidden_states
        )


__all__ = [
    "SeqLSTMPreTrainedModel",
    "SeqLSTMModel",
    "SeqLSTMForSequenceClassification",
    "SeqLSTMForCausalLM",
    "SeqLSTMModelOutput",
    "SeqLSTMCausalLMOutput",
]
