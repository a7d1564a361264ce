"""PWWS: Ren, Deng, He and Che, "Generating Natural Language Adversarial Examples through Probability Weighted Word
Saliency", ACL 2019, https://aclanthology.org/P19-1103, with WordNet synonyms as the substitutes."""

import torch

from ..synonyms import word_synonyms
from .word_attack import WordAttack

__all__ = ["PWWS"]


class PWWS(WordAttack):
    r"""Probability weighted word saliency: words ordered once by saliency x their best swap's effect, then swapped.

    For an example x of label y, P = P(y | .), and every word w_i that may change (not a stop word):

        S_i    = P(x) - P(x with w_i -> unk)                           word saliency (the paper's eq. 3)
        w_i*   = argmax over WordNet synonyms w' of P(x) - P(x with w_i -> w')       (eq. 4)
        dP_i*  = P(x) - P(x with w_i -> w_i*)
        H_i    = softmax(S)_i * dP_i*                                                (eq. 7)

    then w_i -> w_i* for the words in decreasing H, one after the other on the text already changed, until the
    prediction flips (success) or the words, the word budget or the query budget run out (failure). Words without a
    single-word synonym (`synonyms.word_synonyms`) are not swapped, and their saliency is not asked for: the softmax's
    normaliser is shared, so it does not change the order. The synonyms keep the word's capitalisation.

    Where this differs: the paper also swaps named entities for others of their type (not done here: no NER model
    offline); TextAttack's recipe re-scores each word's candidates on the text already changed and keeps a swap only
    if it lowers P, while the paper, followed here, fixes w_i* on the original text and applies the swaps in order.
    Queries: 1 + (words with synonyms) + (their synonyms) to rank, then one per swap.
    """

    name = "pwws"

    def search(self, example):
        candidates = {
            p: [_cased(s, example.word(p)) for s in word_synonyms(example.word(p))] for p in example.positions()
        }
        positions = [p for p, synonyms in candidates.items() if synonyms]
        if not positions:
            return
        saliency = self.unknown_word_drops(example, positions)  # (W,)
        variants = [(p, s) for p in positions for s in candidates[p]]
        scores = self.probabilities(example, [example.replaced(p, s) for p, s in variants])[:, example.label]
        best = {}  # position: (dP*, w*), the largest drop in P over its synonyms (the first of equal ones)
        for (position, synonym), score in zip(variants, scores.tolist(), strict=True):
            drop = example.probability - score
            if position not in best or drop > best[position][0]:
                best[position] = (drop, synonym)
        weights = torch.softmax(saliency, dim=0)
        priority = {p: float(weights[i]) * best[p][0] for i, p in enumerate(positions)}
        budget = self.word_budget(example)
        for position in sorted(priority, key=priority.get, reverse=True):
            if len(example.changed) >= budget:
                return
            substitute = best[position][1]
            (probabilities,) = self.probabilities(example, [example.replaced(position, substitute)])
            self.accept(example, position, substitute, probabilities)
            if example.prediction != example.label:
                return


def _cased(synonym, word):
    return synonym.capitalize() if word[:1].isupper() else synonym
