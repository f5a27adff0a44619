"""Small Transformers built on self-attention (encoder for classification, decoder for LMs)."""

from .configuration_transformer import SeqTransformerConfig
from .modeling_transformer import (
    SeqTransformerForCausalLM,
    SeqTransformerForSequenceClassification,
    SeqTransformerModel,
    SeqTransformerPreTrainedModel,
)

__all__ = [
    "SeqTransformerConfig",
    "SeqTransformerPreTrainedModel",
    "SeqTransformerModel",
    "SeqTransformerForSequenceClassification",
    "SeqTransformerForCausalLM",
]
