"""WordNet 3.0 synonyms, offline, through NLTK: the substitution set of PWWS (and of the synonym-aware methods).

A word's synonyms are the lemma names of the synsets it belongs to, in WordNet's order (most frequent sense first),
lowercased, without the word itself and without multi-word lemmas (`motion_picture`: one word may only become one
word) or lemmas that are not alphabetic (`moving-picture_show`). WordNet is found where NLTK looks for its data
(`NLTK_DATA`, then `~/nltk_data` and the system paths); online, `nltk.download("wordnet")` puts it there.
"""

import functools

__all__ = ["WordNetMissingError", "word_synonyms", "wordnet"]

INSTALL_HELP = (
    "set NLTK_DATA to a folder holding corpora/wordnet (this repository's tests use ../shared/nltk_data), or, online, "
    "run `python -c \"import nltk; nltk.download('wordnet')\"`"
)


class WordNetMissingError(RuntimeError):
    """NLTK or its WordNet corpus is not installed where NLTK looks."""


@functools.cache
def wordnet():
    """NLTK's WordNet corpus reader, loaded once. Raises `WordNetMissingError` saying how to install it."""
    try:
        from nltk.corpus import wordnet as reader
    except ImportError as error:
        raise WordNetMissingError(f"WordNet synonyms need NLTK: pip install nltk; then {INSTALL_HELP}.") from error
    try:
        reader.ensure_loaded()
    except LookupError as error:
        raise WordNetMissingError(f"NLTK found no WordNet corpus: {INSTALL_HELP}.") from error
    return reader


@functools.cache
def word_synonyms(word):
    """The single-word WordNet synonyms of `word` (any part of speech), as a tuple of lowercase strings."""
    word = word.lower()
    found = dict.fromkeys(
        lemma.lower() for synset in wordnet().synsets(word) for lemma in synset.lemma_names() if lemma.isalpha()
    )
    found.pop(word, None)
    return tuple(found)
