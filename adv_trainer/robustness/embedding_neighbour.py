"""A gradient-guided greedy attack that swaps words for their nearest neighbours in the model's own input-embedding
space (the HotFlip family): it needs only the model and its tokenizer, no synonym source.

For an example the model classifies correctly:
1. Words that are one whole-word token (alphabetic, not a special token, not a stop word) may be replaced.
2. They are ranked by saliency: the norm of the gradient of the gold-label loss at their embedding.
3. In that order, each word is tried against its nearest whole-word tokens in the model's input-embedding space
   (cosine); the substitution that most lowers the gold-label probability is kept if it lowers it at all.
4. The attack stops when the prediction flips (success), or when the word budget (a fraction of the words, at least
   one) or the query budget (model evaluations of one input) is spent (failure).

Neighbours in an embedding space are often antonyms ("good" and "bad" sit close in many models), so these
substitutions need not preserve meaning: the numbers are not comparable with any published attack's. For those, use
PWWS (WordNet synonyms) or DeepWordBug (character edits). Tested with WordPiece tokenizers (BERT, MiniLM).
"""

import torch

from ..embedding_hook import EmbeddingOutputHook, input_embedding
from ..vocabulary import whole_word_tokens
from .word_attack import WordAttack

__all__ = ["EmbeddingNeighbourAttack"]


class EmbeddingNeighbourAttack(WordAttack):
    """Swaps salient words for their nearest whole-word tokens in the input-embedding space; see the module.

    Args:
        neighbours: how many nearest whole-word tokens are tried per word.
        max_words_fraction: the most words changed, as a fraction (0.2 by default).
        max_queries: the most model evaluations per example (300 by default).

    The other arguments are `WordAttack`'s.
    """

    name = "embedding_neighbour"

    def __init__(self, model, tokenizer, neighbours=10, max_words_fraction=0.2, max_queries=300, **options):
        super().__init__(model, tokenizer, max_words_fraction=max_words_fraction, max_queries=max_queries, **options)
        if neighbours < 1:
            raise ValueError(f"`neighbours` must be >= 1, got {neighbours}.")
        self.neighbours = neighbours
        self.substitutes = whole_word_tokens(tokenizer)  # (S,) token ids that may replace or be replaced
        weight = input_embedding(model).weight.detach()[self.substitutes].float()
        self.unit_embeddings = weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (S, E)
        self.substitute_index = {token: i for i, token in enumerate(self.substitutes.tolist())}

    def search(self, example):
        budget = self.word_budget(example)
        for position, token in self._ranked_words(example):
            if len(example.changed) >= budget:
                return
            remaining = None if self.max_queries is None else self.max_queries - example.queries
            words = [self._word(c) for c in self._nearest(token)][:remaining]
            if not words:
                return
            probabilities = self.probabilities(example, [example.replaced(position, w) for w in words])
            best = int(probabilities[:, example.label].argmin())
            if float(probabilities[best, example.label]) < example.probability:
                self.accept(example, position, words[best], probabilities[best])
                if example.prediction != example.label:
                    return

    def _ranked_words(self, example):
        """((column, word index), token id) of the replaceable words, most salient first."""
        encoded = self.encode([example.words])
        with EmbeddingOutputHook(input_embedding(self.model)) as hook:
            hook.start_pass(None)
            with torch.enable_grad():
                logits = self.model(**encoded.to(self.model.device)).logits
                target = torch.tensor([example.label], device=logits.device)
                (gradient,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, target), hook.delta)
        saliency = gradient[0].norm(dim=-1).cpu()  # (T,)
        tokens_of = {}
        for position, (sequence, word) in enumerate(zip(encoded.sequence_ids(0), encoded.word_ids(0), strict=True)):
            if word is not None:
                tokens_of.setdefault((sequence, word), []).append(position)
        ranked = []
        for (column, index), positions in tokens_of.items():
            token = int(encoded["input_ids"][0, positions[0]])
            if len(positions) == 1 and token in self.substitute_index:
                ranked.append((float(saliency[positions[0]]), (column, index), token))
        return [(position, token) for _, position, token in sorted(ranked, reverse=True)]

    def _nearest(self, token):
        similarity = self.unit_embeddings @ self.unit_embeddings[self.substitute_index[token]]  # (S,)
        order = similarity.topk(min(self.neighbours + 1, len(similarity))).indices.tolist()
        return [int(self.substitutes[i]) for i in order if int(self.substitutes[i]) != token][: self.neighbours]

    def _word(self, token):
        return self.tokenizer.convert_tokens_to_string([self.tokenizer.convert_ids_to_tokens(token)]).strip()
