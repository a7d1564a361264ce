"""Words and tokens: the stop words no word-level attack or substitution touches, and which token ids of a
tokenizer are whole words (the tokens a word-level substitution may replace or insert)."""

import torch

__all__ = ["STOP_WORDS", "whole_word_tokens"]

# The stop words of the word-level attacks (TextAttack's `StopwordModification` keeps a list of this kind).
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves""".split()
)


def whole_word_tokens(tokenizer, stop_words=STOP_WORDS):
    """`(S,)` sorted token ids that are a whole alphabetic word on their own (the word tokenizes to exactly that id,
    so not a `##` piece), not a special token and not in `stop_words`."""
    special = set(tokenizer.all_special_ids)
    ids, strings = [], []
    for token, i in tokenizer.get_vocab().items():
        string = tokenizer.convert_tokens_to_string([token]).strip()
        if i not in special and string.isalpha() and string.lower() not in stop_words:
            ids.append(i)
            strings.append(string)
    encoded = tokenizer(strings, add_special_tokens=False)["input_ids"]
    return torch.tensor(sorted(i for i, tokens in zip(ids, encoded, strict=True) if tokens == [i]))
