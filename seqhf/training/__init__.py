"""Training through `transformers.Trainer`: one module a task (`classifier`, `charlm`, `wordlm`), the
presets, and the shared pieces (arguments, run record, resuming, word vectors, ULMFiT, adversarial
training)."""
