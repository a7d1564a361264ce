"""The convex hull of a token's and its synonyms' embeddings: where ASCC lets each position's embedding move.

A position whose token has synonyms in the `SynonymTable` reads `e = sum_j w_j E[c_j]`, with `c_0` the token itself,
`c_1..c_S` its synonyms and `w` on the simplex (`w = softmax(logits)` over the hull's vertices); every other
position (padding, special tokens, stop words, pieces, words without a one-token synonym) keeps its embedding. The
hull is applied through the embedding hook as `delta = e - E[c_0]` at the hull positions, zero elsewhere.
"""

import torch

from .sparse_mixture import sparse_mixture

__all__ = ["SynonymHull"]


class SynonymHull:
    """The hulls of one micro-batch whose embedding output has shape `(B, T, E)`.

    Args:
        table: the tokenizer's `SynonymTable`, on the batch's device.
        input_ids: `(B, T)` long, in the layout of the embedding output.
        attention_mask: `(B, T)`; positions with 0 get no hull.
        max_synonyms: S, the most synonyms of a hull (the table's first S, WordNet's most frequent senses first).

    Attributes:
        positions: `(B, T)` bool, the P positions with a hull (attended, with at least one synonym).
        vertex_ids: `(P, 1 + S)` long token ids; column 0 is the position's own token.
        vertex_mask: `(P, 1 + S)` bool, which vertices exist (a token with fewer synonyms has padded columns).
        example: `(P,)` long, the row of each hull position.
        distinct_ids: `(U,)` long, the distinct tokens among the vertices, ascending.
        vertex_index: `(P, 1 + S)` long, each vertex's index into `distinct_ids`.
    """

    def __init__(self, table, input_ids, attention_mask, max_synonyms):
        vocabulary = table.ids.shape[0]
        known = input_ids < vocabulary  # tokens added after the table was built have no synonyms
        token_ids = torch.where(known, input_ids, 0)
        counts = torch.where(known, table.counts[token_ids], 0).clamp_max(max_synonyms)  # (B, T)
        self.positions = (counts > 0) & attention_mask.bool()
        self.example = self.positions.nonzero()[:, 0]
        ids = table.ids[token_ids[self.positions], : 1 + max_synonyms]  # (P, 1 + S')
        width = int(counts.max()) + 1 if self.positions.any() else 1
        self.vertex_ids = ids[:, :width]
        columns = torch.arange(width, device=ids.device)
        self.vertex_mask = columns <= counts[self.positions][:, None]
        self.distinct_ids, self.vertex_index = self.vertex_ids.unique(return_inverse=True)
        self.shape = input_ids.shape
        # The example's tokens: the entropy term is averaged over them, the paper's mean over a sequence's positions.
        self.tokens = attention_mask.sum(dim=1).clamp_min(1).float()  # (B,)

    def vertices(self, embedding):
        """`(U, E)`: the output of the input-embedding module for each distinct vertex token (`distinct_ids`). Calls
        its `forward`, not the module, so that the embedding hook does not count (or perturb) it; gradients flow into
        the embedding weights where enabled."""
        return embedding.forward(self.distinct_ids)

    def zero_logits(self):
        """`(P, 1 + S)` float32 zeros: the uniform weights, the centroid of every hull."""
        return torch.zeros(self.vertex_ids.shape, device=self.vertex_ids.device)

    def weights(self, logits):
        """`(P, 1 + S)`: softmax of `logits` over each hull's vertices; missing vertices weigh exactly 0."""
        return logits.float().masked_fill(~self.vertex_mask, float("-inf")).softmax(dim=-1)

    def entropy(self, weights):
        """`(B,)`: the entropy of each hull position's weights, summed over an example's hull positions and divided
        by its tokens (attended positions)."""
        plogp = torch.where(weights > 0, weights * weights.clamp_min(torch.finfo(weights.dtype).tiny).log(), 0.0)
        per_position = -plogp.sum(dim=-1)  # (P,)
        summed = torch.zeros(self.shape[0], device=weights.device).index_add_(0, self.example, per_position)
        return summed / self.tokens

    def delta(self, weights, vertices):
        """`(B, T, E)` float32: `sum_j w_j E[c_j] - E[c_0]` at the hull positions, 0 elsewhere, from the `(U, E)`
        `vertices` and `(P, 1 + S)` `weights`; differentiable in both."""
        point = sparse_mixture(weights, self.vertex_index, self.vertex_mask, vertices)  # (P, E)
        delta = torch.zeros(*self.shape, vertices.shape[-1], device=vertices.device, dtype=point.dtype)
        own = vertices[self.vertex_index[:, 0]].float()
        return delta.index_put((*self.positions.nonzero().unbind(1),), point - own)
