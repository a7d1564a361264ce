"""The sparse mixture of embedding rows against the dense sum it replaces: values and both gradients."""

import torch

from adv_trainer.sparse_mixture import sparse_mixture


def dense_mixture(weights, columns, mask, rows):
    return (torch.where(mask, weights, 0.0)[:, :, None] * rows[columns]).sum(dim=1)


def test_the_point_and_both_gradients_equal_the_dense_sum():
    torch.manual_seed(0)
    positions, width, distinct, features = 7, 5, 40, 4
    # Distinct columns per row in no particular order; the missing vertices repeat a column of their row, as the
    # padded hull columns repeat the token itself.
    columns = torch.stack([torch.randperm(distinct)[:width] for _ in range(positions)])
    mask = torch.rand(positions, width) < 0.7
    mask[:, 0] = True
    columns = torch.where(mask, columns, columns[:, :1])
    weights = torch.rand(positions, width).requires_grad_()
    rows = torch.randn(distinct, features).requires_grad_()
    grad_point = torch.randn(positions, features)

    point = sparse_mixture(weights, columns, mask, rows)
    grad_weights, grad_rows = torch.autograd.grad(point, [weights, rows], grad_point)
    expected = dense_mixture(weights, columns, mask, rows)
    expected_weights, expected_rows = torch.autograd.grad(expected, [weights, rows], grad_point)

    torch.testing.assert_close(point, expected)
    torch.testing.assert_close(grad_weights, expected_weights)
    torch.testing.assert_close(grad_rows, expected_rows)
    assert grad_weights[~mask].abs().max() == 0  # a missing vertex gets no gradient
    unused = torch.ones(distinct, dtype=torch.bool)
    unused[columns[mask]] = False
    assert unused.any() and grad_rows[unused].abs().max() == 0 and grad_rows[~unused].abs().sum(dim=1).min() > 0


def test_no_position_gives_empty_results():
    weights = torch.zeros(0, 1, requires_grad=True)
    rows = torch.zeros(0, 3, requires_grad=True)
    point = sparse_mixture(weights, torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1, dtype=torch.bool), rows)
    point.sum().backward()
    assert point.shape == (0, 3) and weights.grad.shape == (0, 1) and rows.grad.shape == (0, 3)
