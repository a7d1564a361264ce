import pytest
import torch

from adv_trainer.perturbation_space import PerturbationSpace

MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])  # (B=3, T=4); 0 marks padding
IDS = torch.tensor([[5, 7, 5, 0], [7, 9, 0, 0], [9, 9, 5, 7]])


def space(norm="l2", scope="example"):
    return PerturbationSpace(norm, scope, MASK, IDS, dim=2)


def gradient(seed=0):
    return torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(seed))


def test_l2_step_has_norm_alpha_per_example_and_is_zero_on_padding():
    s = space()
    delta = s.ascend(s.zeros(), s.gradient(gradient()), 0.3)
    torch.testing.assert_close(s.norms(delta), torch.full((3,), 0.3))
    assert (s.positions(delta)[MASK == 0] == 0).all()


def test_l2_step_is_the_normalised_gradient_of_the_non_padding_positions():
    g = gradient()
    s = space()
    delta = s.ascend(s.zeros(), s.gradient(g), 1.0)
    masked = g * MASK[..., None]
    expected = masked / masked.flatten(1).norm(dim=1)[:, None, None]
    torch.testing.assert_close(delta, expected)


def test_zero_gradient_example_gets_zero_perturbation_not_nan():
    g = gradient()
    g[1] = 0.0
    s = space()
    delta = s.project(s.ascend(s.zeros(), s.gradient(g), 0.5), 0.5)
    assert torch.isfinite(delta).all()
    assert (delta[1] == 0).all() and (delta[0] != 0).any()
    assert s.skipped.item() == 0


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_non_finite_gradient_freezes_that_example_and_is_counted(norm):
    g = gradient()
    g[2, 1, 0] = float("inf")
    g[0, 0, 1] = float("nan")
    s = space(norm)
    start = s.random(0.1)
    delta = s.ascend(start, s.gradient(g), 0.5)
    assert torch.isfinite(delta).all()
    torch.testing.assert_close(delta[[0, 2]], start[[0, 2]])
    assert not torch.equal(delta[1], start[1])
    assert s.skipped.item() == 2


def test_l2_projection_scales_down_only_examples_outside_the_ball():
    s = space()
    delta = gradient() * MASK[..., None]
    norms = s.norms(delta)
    eps = norms[1].item()  # example 1 sits on the sphere; the others are compared against it
    projected = s.project(delta, eps)
    assert (s.norms(projected) <= eps * (1 + 1e-6)).all()
    for i in range(3):
        if norms[i] <= eps:
            torch.testing.assert_close(projected[i], delta[i])
        else:
            torch.testing.assert_close(projected[i], delta[i] * eps / norms[i])


def test_infinite_radius_leaves_the_perturbation_unprojected():
    s = space()
    delta = 100 * gradient() * MASK[..., None]
    assert torch.equal(s.project(delta, float("inf")), delta)


def test_linf_step_is_alpha_times_the_sign_and_projection_clips():
    g = gradient()
    s = space("linf")
    delta = s.ascend(s.zeros(), s.gradient(g), 0.2)
    torch.testing.assert_close(delta, 0.2 * g.sign() * MASK[..., None])
    delta = s.project(s.ascend(delta, s.gradient(g), 0.2), 0.3)
    assert delta.abs().max().item() == pytest.approx(0.3)
    torch.testing.assert_close(s.norms(delta), torch.full((3,), 0.3))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_random_start_stays_inside_its_magnitude_and_off_padding(norm):
    torch.manual_seed(0)
    s = space(norm)
    delta = s.random(0.05)
    assert (s.norms(delta) <= 0.05).all() and (s.norms(delta) > 0).all()
    assert (s.positions(delta)[MASK == 0] == 0).all()


def test_vocab_scope_sums_gradients_per_token_and_normalises_over_the_batch():
    g = gradient()
    s = space(scope="vocab")
    delta = s.ascend(s.zeros(), s.gradient(g), 1.0)  # (1, U, E), U = tokens {0, 5, 7, 9}
    rows = {}
    for b in range(3):
        for t in range(4):
            if MASK[b, t]:
                token = IDS[b, t].item()
                rows[token] = rows.get(token, torch.zeros(2)) + g[b, t]
    total = torch.stack(list(rows.values())).norm()
    positions = s.positions(delta)
    for b in range(3):
        for t in range(4):
            expected = rows[IDS[b, t].item()] / total if MASK[b, t] else torch.zeros(2)
            torch.testing.assert_close(positions[b, t], expected)
    assert s.norms(delta).shape == (1,)
    torch.testing.assert_close(s.norms(delta), torch.ones(1))


def test_vocab_scope_projects_over_all_rows_together():
    s = space(scope="vocab")
    delta = s.project(s.ascend(s.zeros(), s.gradient(gradient()), 3.0), 1.0)
    torch.testing.assert_close(s.norms(delta), torch.ones(1))


# The three sequences of MASK packed into one row without padding: 3, 2 and 4 tokens.
GROUPS = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 2]])


def packed(norm="l2"):
    return PerturbationSpace(norm, "example", torch.ones(1, 9), None, dim=2, groups=GROUPS)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_packed_sequences_are_the_groups_and_get_the_perturbation_of_the_padded_batch(norm):
    g = gradient()
    padded_space, packed_space = space(norm), packed(norm)
    packed_gradient = g[MASK.bool()][None]  # (1, 9, 2): the padded batch's tokens in row-major order
    padded_delta = padded_space.project(padded_space.ascend(padded_space.zeros(), padded_space.gradient(g), 0.5), 0.3)
    packed_delta = packed_space.project(
        packed_space.ascend(packed_space.zeros(), packed_space.gradient(packed_gradient), 0.5), 0.3
    )
    assert packed_delta.shape == (3, 4, 2)  # (sequences, longest sequence, E)
    torch.testing.assert_close(packed_space.norms(packed_delta), padded_space.norms(padded_delta))
    torch.testing.assert_close(packed_space.norms(packed_delta), torch.full((3,), 0.3))
    torch.testing.assert_close(
        packed_space.positions(packed_delta)[0], padded_space.positions(padded_delta)[MASK.bool()]
    )


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_packed_random_start_is_bounded_per_sequence(norm):
    torch.manual_seed(0)
    s = packed(norm)
    delta = s.random(0.05)
    assert ((s.norms(delta) <= 0.05) & (s.norms(delta) > 0)).all()
    assert (delta[s.mask == 0] == 0).all()  # the slots past a sequence's end stay zero
