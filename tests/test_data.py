"""Data loading: IMDb splits, the chapter's cut of the novel, chunks, clear errors for missing paths."""

import pytest
import torch

from seqhf.data.char_text import CharChunks, read_island_text, split_heldout
from seqhf.data.sources import load_imdb


def test_imdb_splits_validation_from_train_with_fixed_seed(imdb_dir):
    data = load_imdb(str(imdb_dir), validation_size=0.2, seed=7)
    assert (len(data["train"]), len(data["validation"]), len(data["test"])) == (20000, 5000, 25000)
    again = load_imdb(str(imdb_dir), validation_size=0.2, seed=7)
    assert data["validation"]["text"][:20] == again["validation"]["text"][:20]
    assert sum(data["validation"]["label"]) == 2500  # stratified
    assert len(data["unsupervised"]) == 50000  # unlabelled reviews, for word vectors


def test_missing_imdb_path_names_it(tmp_path):
    missing = str(tmp_path / "no_such_imdb")
    with pytest.raises(FileNotFoundError, match="no_such_imdb.*stanfordnlp/imdb"):
        load_imdb(missing)


def test_island_cut_as_the_chapter_cuts_it(island_txt):
    text = read_island_text(str(island_txt))
    assert text.startswith("THE MYSTERIOUS ISLAND") and "End of the Project Gutenberg" not in text
    assert (len(text), len(set(text))) == (1112350, 80)
    train, heldout = split_heldout(text, 0.1)
    assert train + heldout == text and len(heldout) == 111235


def test_missing_or_wrong_text_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt.*1268"):
        read_island_text(str(tmp_path / "nope.txt"))
    other = tmp_path / "other.txt"
    other.write_text("Some other book.")
    with pytest.raises(ValueError, match="THE MYSTERIOUS ISLAND"):
        read_island_text(str(other))


def test_char_chunks_have_targets_shifted_by_one():
    ids = torch.arange(100)
    chunks = CharChunks(ids, seq_len=40)
    assert len(chunks) == 2
    item = chunks[1]
    assert torch.equal(item["input_ids"], torch.arange(40, 80))
    assert torch.equal(item["shift_labels"], torch.arange(41, 81))
    with pytest.raises(ValueError, match="seq_len"):
        CharChunks(torch.arange(10), seq_len=40)


def test_jittered_chunks_move_within_their_slot_and_stay_in_the_text():
    ids = torch.arange(1000)
    chunks = CharChunks(ids, seq_len=40, jitter=True)
    assert len(chunks) == len(CharChunks(ids, seq_len=40))
    torch.manual_seed(0)
    starts = {i: set() for i in range(len(chunks))}
    for _ in range(20):
        for i in range(len(chunks)):
            item = chunks[i]
            start = int(item["input_ids"][0])
            assert torch.equal(item["input_ids"], torch.arange(start, start + 40))
            assert torch.equal(item["shift_labels"], torch.arange(start + 1, start + 41))
            assert 40 * i <= start < 40 * i + 40 and start + 41 <= len(ids)
            starts[i].add(start)
    assert all(len(s) > 5 for s in starts.values())  # a new window almost every time
    torch.manual_seed(0)
    again = [int(chunks[i]["input_ids"][0]) for i in range(len(chunks))]
    torch.manual_seed(0)
    assert again == [int(chunks[i]["input_ids"][0]) for i in range(len(chunks))]  # seeded by the global RNG
