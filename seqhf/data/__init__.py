"""Reading data: where it comes from (Hub ids, local folders, files), classification datasets and their
labels, texts for character LMs, and the word and character tokenizers."""
