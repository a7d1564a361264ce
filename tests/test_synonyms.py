"""WordNet synonyms: single words only, the word itself excluded, and a clear error when WordNet is missing."""

import os
import subprocess
import sys

from adv_trainer import synonyms


def test_synonyms_are_single_alphabetic_words_of_the_words_synsets(wordnet_data):
    assert synonyms.word_synonyms("movie") == ("film", "picture", "pic", "flick")  # WordNet 3.0's order
    assert synonyms.word_synonyms("Movie") == synonyms.word_synonyms("movie")
    found = synonyms.word_synonyms("good")
    assert "good" not in found and {"beneficial", "respectable"} <= set(found)
    assert all(word.isalpha() and word.islower() for word in found)  # no `trade_good`, no `moving-picture_show`
    assert synonyms.word_synonyms("the") == () and synonyms.word_synonyms("xyzzy") == ()


def test_missing_wordnet_names_nltk_data_and_the_download(tmp_path):
    # A fresh process, so that no WordNet is loaded yet; NLTK also looks under ~/nltk_data, hence HOME.
    code = "from adv_trainer.synonyms import word_synonyms; word_synonyms('movie')"
    env = {**os.environ, "NLTK_DATA": str(tmp_path), "HOME": str(tmp_path)}
    completed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("adv_trainer.synonyms.WordNetMissingError: NLTK found no WordNet corpus: set NLTK_DATA")
    assert "nltk.download('wordnet')" in last
