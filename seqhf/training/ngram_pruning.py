"""A minimum text count for the classifier's hashed n-gram path, applied once training ends.

The path can learn a weight for an n-gram that a handful of training texts hold: on IMDb, a movie's names and
plot words, which a randomly carved validation split shares with training (its reviews' movies are in training)
and the test split does not (its movies are not). Those weights make validation read unlike the test split, and
the temperature fitted on it too high. Zeroing the rows of buckets that fewer than `min_texts` training texts hit,
as a vocabulary's minimum document frequency would (scikit-learn's `min_df`, fastText's `minCount`), removes them.
The saved folder carries the zeros as it carries any weight: `pipeline`, remote code and ONNX need nothing new."""

import torch
from torch.nn.utils.rnn import pad_sequence


@torch.no_grad()
def texts_per_bucket(ngrams, batches) -> torch.Tensor:
    """How many texts hit each bucket of `ngrams` (a `HashedNgramLogits`), with any of its n-gram orders: a
    (buckets,) int64 tensor. `batches` yields lists of texts' token ids (read a batch at a time, as every phase
    reads the training split)."""
    counts = torch.zeros(ngrams.buckets, dtype=torch.int64)
    for rows in batches:
        ids = pad_sequence([torch.as_tensor(row, dtype=torch.int64) for row in rows], batch_first=True)
        valid = torch.arange(ids.shape[1]) < torch.tensor([len(row) for row in rows]).unsqueeze(1)
        keys = []
        for n in ngrams.orders:
            bucket, real = ngrams.hashed(ids, valid, n)
            text = torch.arange(len(rows)).unsqueeze(1).expand_as(bucket)
            keys.append((text * ngrams.buckets + bucket)[real])  # one key per (text, bucket)
        counts += torch.bincount(torch.unique(torch.cat(keys)) % ngrams.buckets, minlength=ngrams.buckets)
    return counts


@torch.no_grad()
def drop_rare_ngrams(model, batches, min_texts: int) -> int:
    """Zero the n-gram path's rows for buckets that fewer than `min_texts` training texts hit (`batches`: the
    training split's token ids, as `texts_per_bucket` reads them); returns how many nonzero rows were zeroed
    (0 where the model has no n-gram path or `min_texts` <= 1, without reading `batches`)."""
    ngrams = getattr(model, "ngrams", None)
    if ngrams is None or min_texts <= 1:
        return 0
    rare = (texts_per_bucket(ngrams, batches) < min_texts).to(ngrams.weight.device)
    dropped = int((ngrams.weight[rare] != 0).any(dim=1).sum())
    ngrams.weight[rare] = 0.0
    return dropped
