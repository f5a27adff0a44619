"""seqhf: classic sequence models (RNN, LSTM, GRU, small Transformers) as Hugging Face models."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
)

from .models.lstm.configuration_lstm import SeqLSTMConfig
from .models.lstm.modeling_lstm import (
    SeqLSTMForCausalLM,
    SeqLSTMForSequenceClassification,
    SeqLSTMModel,
    SeqLSTMPreTrainedModel,
)
from .models.transformer.configuration_transformer import SeqTransformerConfig
from .models.transformer.modeling_transformer import (
    SeqTransformerForCausalLM,
    SeqTransformerForSequenceClassification,
    SeqTransformerModel,
    SeqTransformerPreTrainedModel,
)

__version__ = "0.1.0"


def _register(config_class, base_class, classifier_class, causal_lm_class):
    """Register with the Auto classes, and mark the classes so save_pretrained copies their code."""
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, base_class, exist_ok=True)
    AutoModelForSequenceClassification.register(config_class, classifier_class, exist_ok=True)
    AutoModelForCausalLM.register(config_class, causal_lm_class, exist_ok=True)
    config_class.register_for_auto_class()
    base_class.register_for_auto_class("AutoModel")
    classifier_class.register_for_auto_class("AutoModelForSequenceClassification")
    causal_lm_class.register_for_auto_class("AutoModelForCausalLM")


_register(SeqLSTMConfig, SeqLSTMModel, SeqLSTMForSequenceClassification, SeqLSTMForCausalLM)
_register(
    SeqTransformerConfig, SeqTransformerModel, SeqTransformerForSequenceClassification, SeqTransformerForCausalLM
)

__all__ = [
    "SeqLSTMConfig",
    "SeqLSTMPreTrainedModel",
    "SeqLSTMModel",
    "SeqLSTMForSequenceClassification",
    "SeqLSTMForCausalLM",
    "SeqTransformerConfig",
    "SeqTransformerPreTrainedModel",
    "SeqTransformerModel",
    "SeqTransformerForSequenceClassification",
    "SeqTransformerForCausalLM",
]
