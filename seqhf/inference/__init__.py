"""Using a trained model: text generation from a saved LM, and word attributions of a classifier."""
