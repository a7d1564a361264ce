"""A tokenizer's vocabulary mapped to its WordNet synonyms' token ids: the substitution sets of synonym-aware
training (a position's embedding may move within the convex hull of its token's and its synonyms' embeddings).

A token has synonyms when it is a whole word (`vocabulary.whole_word_tokens`: not a `##` piece, not a stop word or a
special token) and some of its single-word WordNet synonyms (`synonyms.word_synonyms`) are whole-word tokens too. A
synonym that the tokenizer splits into several tokens is dropped: one position holds one token, and replacing it by
several would shift every position after it. Stop words neither have nor are synonyms. Built once per tokenizer
vocabulary and cached on disk (`cache_dir`, default `~/.cache/adv_trainer/synonym_tables`, or `ADV_TRAINER_CACHE`).
"""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .synonyms import word_synonyms, wordnet
from .vocabulary import STOP_WORDS, whole_word_tokens

__all__ = ["SynonymTable", "synonym_table"]


@dataclass(frozen=True)
class SynonymTable:
    """`ids[v]` is token v followed by its synonyms' token ids, padded with v itself; `counts[v]` how many synonyms.

    Attributes:
        ids: `(V, 1 + S)` long, S the most synonyms of any token; column 0 is the token itself.
        counts: `(V,)` long; 0 for a token without synonyms (most pieces, stop words, special tokens).
    """

    ids: torch.Tensor
    counts: torch.Tensor

    def mask(self, token_ids):
        """`(..., 1 + S)` bool: which entries of `ids[token_ids]` are the token or one of its synonyms."""
        columns = torch.arange(self.ids.shape[1], device=self.counts.device)
        return columns <= self.counts[token_ids][..., None]

    def coverage(self, tokenizer, texts):
        """The share of whole-word tokens of the vocabulary with a synonym, and of the words of `texts` (whitespace
        separated, alphabetic, not stop words) whose single token has one; a word split into pieces has none."""
        vocabulary = whole_word_tokens(tokenizer)
        words = [w for text in texts for w in text.split() if w.isalpha() and w.lower() not in STOP_WORDS]
        encoded = tokenizer(words, add_special_tokens=False)["input_ids"]
        covered = [len(tokens) == 1 and int(self.counts[tokens[0]]) > 0 for tokens in encoded]
        return {
            "vocabulary": float((self.counts[vocabulary] > 0).float().mean()),
            "words": sum(covered) / max(len(covered), 1),
        }


def synonym_table(tokenizer, cache_dir=None):
    """The `SynonymTable` of `tokenizer`'s vocabulary, read from the cache or built (seconds) and cached.

    Raises `synonyms.WordNetMissingError` when WordNet is not installed and the table is not cached.
    """
    vocab = tokenizer.get_vocab()
    key = hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:16]
    default = Path(os.environ.get("ADV_TRAINER_CACHE", Path.home() / ".cache" / "adv_trainer")) / "synonym_tables"
    path = Path(cache_dir or default) / f"{key}.pt"
    if path.is_file():
        return SynonymTable(**torch.load(path))
    table = _build(tokenizer, len(vocab))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"ids": table.ids, "counts": table.counts}, path)
    return table


def _build(tokenizer, size):
    wordnet()  # the clear error first, when WordNet is missing
    words = whole_word_tokens(tokenizer).tolist()
    as_string = {i: tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(i)]).strip() for i in words}
    token_of = {as_string[i].lower(): i for i in words}
    synonyms = {i: [token_of[s] for s in word_synonyms(as_string[i]) if token_of.get(s, i) != i] for i in words}
    width = max((len(found) for found in synonyms.values()), default=0)
    ids = torch.arange(size)[:, None].repeat(1, 1 + width)  # (V, 1 + S), padded with the token itself
    counts = torch.zeros(size, dtype=torch.long)
    for i, found in synonyms.items():
        ids[i, 1 : 1 + len(found)] = torch.tensor(found, dtype=torch.long)
        counts[i] = len(found)
    return SynonymTable(ids, counts)
