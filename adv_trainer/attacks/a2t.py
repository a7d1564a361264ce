"""A2T: Yoo and Qi, "Towards Improving Adversarial Training of NLP Models", Findings of EMNLP 2021,
https://aclanthology.org/2021.findings-emnlp.81 (Attacking to Training); TextAttack's `a2t_yoo_2021` recipe."""

import hashlib
import math

import torch
import torch.nn.functional as F

from .base import TrainingAttack

__all__ = ["A2T"]


class A2T(TrainingAttack):
    r"""Word swaps found by a cheap greedy attack during training: a fraction of the examples is trained on again
    with the synonyms that most raise its loss.

    Per micro-batch of B examples x_b with class labels y_b (token ids `(B, T)`, or `(B, choices, T)` read as one row
    of positions per example), l the per-example cross-entropy, L the trainer's clean loss:

        chosen_b   = H(seed, global_step, x_b's attended token ids) < gamma     H: BLAKE2b, uniform in [0, 1)
        g_{b,t}    = || dL/d(e_{b,t}) ||_1                  the clean pass's gradient at the embedding output
        budget_b   = max(ceil(0.1 * n_b), 4)                n_b: x_b's attended tokens
        x'_b       = the greedy search below from x_b, for every chosen b
        grad_theta = grad_theta [ L(x) + alpha * sum_{chosen b} c_b * l(x'_b, y_b) ]

    c_b is the weight example b has in L (1/B for a per-micro-batch mean, 1/num_items_in_batch for a loss divided by
    the accumulated batch's item count), so each adversarial example counts as its clean example does, as in
    TextAttack's trainer, whose batches mix clean and adversarial examples and weigh the latter by alpha (1 there).
    The greedy search is TextAttack's `GreedyWordSwapWIR(wir_method="gradient")` with `MaxModificationRate(max_rate=
    0.1, min_threshold=4)`, run in eval mode (dropout off) and without gradients:

        candidates_b = x_b's attended positions whose token has synonyms, by decreasing g_{b,t} (ties: in order)
        done_b       = (argmax f(x_b) != y_b)               already misclassified: the goal is met, no swap
        for k = 1 .. max_b min(budget_b, |candidates_b|):   one batched forward over every chosen b still searching
            t = the k-th candidate of b; score x'_b with x'_{b,t} replaced by each of its token's first N synonyms
            keep the swap of the highest l if it is above l(x'_b); done_b = (argmax f(x'_b) != y_b)

    A swap replaces one token id by another at the same position (the `SynonymTable` holds one-token synonyms of
    whole-word tokens), so nothing shifts. Where this differs from the paper and the recipe, or they are silent:
    - The examples are chosen per micro-batch, gamma of them in expectation (the paper's 20 % of the training set,
      attacked once per epoch before it, after one clean epoch: use `adv_start_step` for clean steps); a hash of the
      example's tokens, the seed and the optimizer step chooses, so the choice is the same however the batch is split
      into micro-batches or processes. Every chosen example is trained on, the attack successful or not (TextAttack
      keeps its successful attacks only).
    - The budget counts the words tried, not only those swapped, so a step costs at most max_b budget_b batched
      forwards (4 for examples of up to 40 tokens); a word is a whole-word token, and n_b counts the special tokens and
      word pieces too.
    - Candidates are the token's WordNet synonyms (the table's order, WordNet's most frequent senses first) rather
      than its 20 nearest counter-fitted GloVe neighbours with cosine >= 0.8; neither the part-of-speech check nor the
      sentence-encoder similarity >= 0.9 (DistilBERT STS-b) filters them, and both segments of a pair may change (the
      recipe keeps NLI's premise). Stop words are never swapped (the table has none), nor a position twice.
    - The importance is the gradient of the trainer's loss for the true label (TextAttack: for the predicted label,
      the same for the examples still classified correctly, the only ones swapped), from the clean pass in training
      mode as in TextAttack's `get_grad`, at no extra cost. The score l ranks as TextAttack's 1 - p_y does.

    Cost per micro-batch with A chosen examples: the clean forward and backward (B rows); 1 + max_b budget_b forwards
    without gradients (A rows, then at most A * N rows each); one forward and backward on the A adversarial rows.
    When no example is chosen, the clean pass is the final pass (the choice is known before it).

    Args:
        fraction: gamma, in (0, 1].
        max_synonyms: N, the candidates per word (the table's first N synonyms of its token).
        weight: alpha.
        synonyms: the tokenizer's `SynonymTable`.
        max_rate: the budget's share of the example's tokens (the recipe's 0.1).
        min_words: the budget's floor (the recipe's 4).

    Raises:
        ValueError: labels that are not one class index per example (token-level heads, causal language models,
            regression, multi-label or packed rows), or logits that are not `(batch, classes)` with classes >= 2.
    """

    def __init__(self, fraction, max_synonyms, weight, synonyms, max_rate=0.1, min_words=4):
        super().__init__(weight)
        self.fraction = fraction
        self.max_synonyms = max_synonyms
        self.synonyms = synonyms
        self.max_rate = max_rate
        self.min_words = min_words

    def clean_pass(self, passes):
        return passes.clean() if self.chosen(passes).any() else passes.clean_as_final()

    def perturb(self, passes):
        if passes.final_pass_done:  # none chosen: the clean pass was the final one
            return torch.zeros(0, device=passes.inputs["input_ids"].device)
        ids, mask = _examples(passes.inputs)  # (B, P) each
        chosen = self.chosen(passes).nonzero()[:, 0]  # (A,)
        passes.input_ids()  # the batch's layout is the embedding output's (or the error that says how not)
        gradient = passes.hook.delta.grad  # (B * choices, T, E)
        importance = gradient.reshape(len(ids), -1, gradient.shape[-1]).abs().sum(dim=-1).nan_to_num(nan=0.0)
        original = ids[chosen]
        adversarial = self.search(passes, chosen, original, mask[chosen].bool(), importance[chosen])  # (A, P)
        passes.examples_pass(chosen, adversarial.view(-1, *passes.inputs["input_ids"].shape[1:]), self.weight)
        with torch.no_grad():  # the norm of the change of the embedding output, per adversarial example
            embedding = passes.hook.embedding
            change = embedding.forward(adversarial).float() - embedding.forward(original).float()  # (A, P, E)
        return change.flatten(1).norm(dim=1)

    def chosen(self, passes):
        """`(B,)` bool: the examples attacked in this micro-batch, from their attended token ids, `args.seed` and
        the optimizer step alone (never from which micro-batch or process holds them); unlabelled ones never."""
        labels = _labels(passes.inputs)
        ids, mask = _examples(passes.inputs)
        salt = f"{passes.trainer.args.seed}:{passes.trainer.state.global_step}:"
        ids, mask, labels = ids.cpu(), mask.cpu().bool(), labels.cpu()
        chosen = [
            label != -100 and _uniform(salt + ",".join(map(str, row[attended].tolist()))) < self.fraction
            for row, attended, label in zip(ids, mask, labels.tolist(), strict=True)
        ]
        return torch.tensor(chosen, dtype=torch.bool, device=passes.inputs["input_ids"].device)

    def search(self, passes, chosen, rows, mask, importance):
        """The greedy search of the class docstring: `(A, P)` token ids of the chosen examples `chosen` `(A,)`, from
        their ids `rows` `(A, P)`, attended positions `mask` and word importance `(A, P)`."""
        table = self.table(rows.device)
        rows = rows.clone()
        known = rows < table.ids.shape[0]  # tokens added after the table was built have no synonyms
        width = min(self.max_synonyms, table.ids.shape[1] - 1)
        counts = torch.where(known & mask, table.counts[torch.where(known, rows, 0)], 0).clamp_max(width)  # (A, P)
        order = importance.masked_fill(counts == 0, -math.inf).argsort(dim=1, descending=True, stable=True)
        budget = (mask.sum(dim=1) * self.max_rate).ceil().long().clamp_min(self.min_words)
        tries = torch.minimum(budget, (counts > 0).sum(dim=1))  # (A,)
        labels = _labels(passes.inputs)[chosen]
        with passes.without_dropout():
            loss, done = self.score(passes, chosen, rows, labels)
            for k in range(int(tries.max())):
                active = (~done & (k < tries)).nonzero()[:, 0]  # (A',) the examples still searching
                if len(active) == 0:
                    break
                position = order[active, k]
                synonyms = table.ids[rows[active, position], 1 : 1 + width]  # (A', N)
                owner, column = (
                    (torch.arange(width, device=rows.device) < counts[active, position][:, None]).nonzero().unbind(1)
                )
                candidates = rows[active[owner]]  # (M, P): one swap each
                candidates[torch.arange(len(owner)), position[owner]] = synonyms[owner, column]
                candidate_loss, flipped = self.score(passes, chosen[active[owner]], candidates, labels[active[owner]])
                best = torch.full_like(loss[active], -math.inf).scatter_reduce(0, owner, candidate_loss, "amax")
                index = torch.where(
                    candidate_loss == best[owner], torch.arange(len(owner), device=rows.device), len(owner)
                )
                first = torch.full_like(active, len(owner)).scatter_reduce(0, owner, index, "amin")  # the best's first
                better = best > loss[active]
                winner, improved = first[better], active[better]
                rows[improved, position[better]] = synonyms[owner[winner], column[winner]]
                loss[improved] = best[better]
                done[improved] = flipped[winner]
        return rows

    def score(self, passes, examples, rows, labels):
        """l and whether the prediction is wrong, `(N,)` each, of the examples `examples` with token ids `rows`."""
        logits = passes.example_logits(examples, rows.view(len(rows), *passes.inputs["input_ids"].shape[1:]))
        if logits.shape[-1] < 2:
            raise ValueError(
                f"`adv_method='a2t'` attacks classifiers: its search stops when the predicted class flips, but the "
                f"model gives {logits.shape[-1]} logit per example. Use another method for regression."
            )
        logits = logits.float()
        return F.cross_entropy(logits, labels, reduction="none"), logits.argmax(dim=-1) != labels

    def table(self, device):
        if self.synonyms.ids.device != device:
            self.synonyms = type(self.synonyms)(self.synonyms.ids.to(device), self.synonyms.counts.to(device))
        return self.synonyms


def _examples(inputs):
    """The `(B, P)` token ids and attention mask of the batch's examples, each one row of positions."""
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask
    return ids.reshape(len(ids), -1), mask.reshape(len(ids), -1)


def _labels(inputs):
    """The `(B,)` class labels, or the error that says why A2T cannot attack this batch."""
    labels, ids = inputs.get("labels"), inputs.get("input_ids")
    if ids is None:
        raise ValueError("`adv_method='a2t'` swaps the batch's tokens for synonyms and needs `input_ids` in it.")
    if labels is None or labels.shape != ids.shape[:1] or labels.is_floating_point():
        shape = None if labels is None else f"{tuple(labels.shape)} {labels.dtype}"
        raise ValueError(
            f"`adv_method='a2t'` attacks classifiers with one class index per example: labels of shape (batch,) "
            f"for input_ids of shape {tuple(ids.shape)}, got {shape}. Token-level heads, causal language models, "
            "regression, multi-label classification and packed rows are not supported: use fgm, pgd or freelb."
        )
    return labels


def _uniform(text):
    """A number in [0, 1) fixed by `text`: BLAKE2b's first 8 bytes over 2^64."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64
