"""Where a perturbation lives, how it is measured, and how it maps onto the embedding output of one micro-batch.

A perturbation is held as a `(G, N, E)` float32 tensor of G groups, each normalised and projected on its own, and
every position `(b, t)` of the embedding output reads one slot `(g, n)`:
- scope `example`: one group per sequence, N = the longest sequence; padding positions (mask 0) stay exactly zero.
  A sequence is a row of the embedding output (G = B, N = T, slot (b, t)), or one sequence of a packed row
  (`groups`: slot (sequence, offset in it)).
- scope `vocab`: G = 1, N = the distinct token ids of the micro-batch; row n is added at every occurrence of
  token n, which is what editing the embedding weight does, without touching (or copying) the weight.

Norms and directions are computed in float32 whatever the model's dtype. A group whose gradient is not finite
(an fp16 overflow, say) gets a zero ascent direction instead of NaN, and is counted in `skipped`.
"""

import torch

__all__ = ["PerturbationSpace"]


class L2Ball:
    """Steps along g/||g||_2 and projects onto {||delta||_2 <= eps}, per group."""

    @staticmethod
    def norm(x, mask):
        return ((x * x) * mask[..., None]).sum(dim=(1, 2)).sqrt()  # (G,)

    def direction(self, g, mask):
        g = g * mask[..., None]
        norm = self.norm(g, mask)
        # A zero gradient gives a zero direction: 0 / tiny is 0, never 0 / 0.
        return g / norm.clamp_min(torch.finfo(torch.float32).tiny)[:, None, None]

    def project(self, delta, mask, eps):
        norm = self.norm(delta, mask)
        scale = torch.where(norm > eps, eps / norm.clamp_min(torch.finfo(torch.float32).tiny), 1.0)
        return delta * scale[:, None, None]

    @staticmethod
    def random(mask, dim, magnitude):
        # FreeLB's initialisation: uniform noise divided by sqrt(#coordinates), so ||delta_0||_2 <= magnitude.
        noise = torch.empty(*mask.shape, dim, device=mask.device).uniform_(-1, 1) * mask[..., None]
        coordinates = (mask.sum(dim=1) * dim).clamp_min(1)
        return noise * (magnitude / coordinates.sqrt())[:, None, None]


class LinfBall:
    """Steps along sign(g) and clips every coordinate to [-eps, eps]."""

    @staticmethod
    def norm(x, mask):
        return (x.abs() * mask[..., None]).amax(dim=(1, 2))

    @staticmethod
    def direction(g, mask):
        return g.sign() * mask[..., None]

    @staticmethod
    def project(delta, mask, eps):
        return delta.clamp(-eps, eps)

    @staticmethod
    def random(mask, dim, magnitude):
        return torch.empty(*mask.shape, dim, device=mask.device).uniform_(-magnitude, magnitude) * mask[..., None]


BALLS = {"l2": L2Ball(), "linf": LinfBall()}


class PerturbationSpace:
    """The perturbations of one micro-batch whose embedding output has shape `(B, T, E)`.

    Args:
        norm: `"l2"` or `"linf"`.
        scope: `"example"` or `"vocab"`.
        attention_mask: `(B, T)`; positions with 0 are never perturbed.
        input_ids: `(B, T)`, needed by the `vocab` scope.
        dim: E, the embedding width.
        groups: `(B, T)` long, the sequence of each position for the `example` scope, numbered 0..G-1 in row-major
            order, each sequence's positions contiguous (`sequence_layout.packed_sequences`); None: one per row.
    """

    def __init__(self, norm, scope, attention_mask, input_ids, dim, groups=None):
        self.ball = BALLS[norm]
        self.dim = dim
        self.shape = (*attention_mask.shape, dim)  # (B, T, E) of the embedding output
        self.position_mask = attention_mask.float()  # (B, T)
        self.skipped = torch.zeros((), device=attention_mask.device)
        if scope == "vocab":
            token_ids, self.slot = torch.unique(input_ids, return_inverse=True)  # (U,), (B, T)
            self.mask = torch.ones(1, len(token_ids), device=attention_mask.device)  # (1, U)
            return
        rows, length = attention_mask.shape
        if groups is None:
            groups = torch.arange(rows, device=attention_mask.device)[:, None].expand(rows, length)
        group = groups.flatten()  # (B·T,)
        index = torch.arange(group.numel(), device=group.device)
        first = torch.full((int(group.max()) + 1,), group.numel(), device=group.device)  # (G,)
        offset = index - first.scatter_reduce(0, group, index, "amin")[group]  # position within its sequence
        width = int(offset.max()) + 1  # N
        self.slot = (group * width + offset).view(rows, length)  # (B, T): flat index into (G·N)
        mask = torch.zeros(len(first) * width, device=group.device)
        self.mask = mask.scatter_(0, group * width + offset, self.position_mask.flatten()).view(-1, width)  # (G, N)

    def zeros(self):
        return torch.zeros(*self.mask.shape, self.dim, device=self.mask.device)

    def random(self, magnitude):
        return self.ball.random(self.mask, self.dim, magnitude)

    def noise(self, distribution, scale):
        """Independent noise per coordinate of every group: N(0, scale^2) or U(-scale, scale) (SMART, R3F)."""
        shape = (*self.mask.shape, self.dim)
        if distribution == "normal":
            noise = torch.randn(shape, device=self.mask.device) * scale
        else:
            noise = torch.empty(shape, device=self.mask.device).uniform_(-scale, scale)
        return noise * self.mask[..., None]

    def gradient(self, position_grad):
        """Maps dL/d(embedding output) `(B, T, E)` to the gradient with respect to this space's perturbation."""
        g = position_grad.float() * self.position_mask[..., None]
        slots = torch.zeros(self.mask.numel(), self.dim, device=g.device)  # (G·N, E)
        # Each slot of the `example` scope is read by one position; a `vocab` slot sums its token's occurrences.
        return slots.index_add_(0, self.slot.flatten(), g.flatten(0, 1)).view(*self.mask.shape, self.dim)

    def ascend(self, delta, gradient, step_size):
        """`delta + step_size * direction(gradient)`; groups with a non-finite gradient do not move."""
        finite = torch.isfinite(gradient).flatten(1).all(dim=1)  # (G,)
        self.skipped += (~finite).sum()
        gradient = torch.where(finite[:, None, None], gradient, 0.0)
        return delta + step_size * self.ball.direction(gradient, self.mask)

    def project(self, delta, eps):
        return self.ball.project(delta, self.mask, eps)

    def norms(self, delta):
        return self.ball.norm(delta, self.mask)

    def positions(self, delta):
        """The `(B, T, E)` tensor to add to the embedding output."""
        return delta.flatten(0, 1)[self.slot] * self.position_mask[..., None]
