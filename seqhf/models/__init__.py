"""The model families, one folder each, as in transformers' `models/`: `configuration_<name>.py` and
`modeling_<name>.py` import only torch, transformers and their sibling configuration, so a saved folder
carries them as remote code."""
