"""Recurrent models: SimpleRNN, LSTM and GRU, uni- or bidirectional, stacked."""

from .configuration_lstm import SeqLSTMConfig
from .modeling_lstm import (
    SeqLSTMForCausalLM,
    SeqLSTMForSequenceClassification,
    SeqLSTMModel,
    SeqLSTMPreTrainedModel,
)

__all__ = ["SeqLSTMConfig", "SeqLSTMPreTrainedModel", "SeqLSTMModel", "SeqLSTMForSequenceClassification", "SeqLSTMForCausalLM"]
