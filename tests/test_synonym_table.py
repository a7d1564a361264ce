"""The synonym table of a real tokenizer: whole-word tokens only, the token first, cached, and its coverage."""

import pytest
import torch
from transformers import AutoTokenizer

from adv_trainer.synonym_table import synonym_table
from adv_trainer.synonyms import word_synonyms
from adv_trainer.vocabulary import STOP_WORDS
from scripts import run_glue


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(run_glue.resolve_model_path(run_glue.OFFLINE_MINILM))


def synonyms_of(table, tokenizer, word):
    i = tokenizer.convert_tokens_to_ids(word)
    return tokenizer.convert_ids_to_tokens(table.ids[i, : 1 + table.counts[i]].tolist())


def test_a_tokens_row_is_itself_then_its_single_token_wordnet_synonyms(tokenizer, wordnet_data, tmp_path):
    table = synonym_table(tokenizer, cache_dir=tmp_path)
    assert synonyms_of(table, tokenizer, "movie") == ["movie", "film", "picture", "pic", "flick"]
    for word in ("good", "film", "clever", "dull"):
        row = synonyms_of(table, tokenizer, word)
        assert row[0] == word and len(row) == len(set(row)) >= 2
        assert set(row[1:]) <= set(word_synonyms(word))  # WordNet's, those that are one token
        assert not set(row) & STOP_WORDS and not any(token.startswith("##") for token in row)
    for token in ("the", "##s", "[CLS]", ","):  # stop words, pieces, special tokens, punctuation
        assert table.counts[tokenizer.convert_tokens_to_ids(token)] == 0
    ids = torch.tensor([[tokenizer.convert_tokens_to_ids("movie"), tokenizer.convert_tokens_to_ids("the")]])
    assert table.mask(ids).sum(dim=-1).tolist() == [[5, 1]]  # the token and its synonyms; the token alone


def test_the_table_is_cached_per_vocabulary(tokenizer, wordnet_data, tmp_path, monkeypatch):
    built = synonym_table(tokenizer, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    monkeypatch.setattr("adv_trainer.synonym_table._build", lambda *args: pytest.fail("built again"))
    cached = synonym_table(tokenizer, cache_dir=tmp_path)
    assert torch.equal(cached.ids, built.ids) and torch.equal(cached.counts, built.counts)


def test_coverage_counts_whole_words_and_their_synonyms(tokenizer, wordnet_data, tmp_path):
    table = synonym_table(tokenizer, cache_dir=tmp_path)
    coverage = table.coverage(tokenizer, ["a movie about the film , unbelievably xylophonic"])
    # movie and film have synonyms; "unbelievably" and "xylophonic" are pieces or have none; stop words don't count
    words = ["movie", "film", "unbelievably", "xylophonic"]
    expected = sum(synonyms_of(table, tokenizer, w)[1:] != [] for w in words if len(tokenizer.tokenize(w)) == 1)
    assert coverage["words"] == pytest.approx(expected / 4)
    assert 0.5 < coverage["vocabulary"] < 0.7  # 59.3 % of MiniLM's whole-word tokens
