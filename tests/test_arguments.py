import math

import pytest
from transformers import HfArgumentParser

from adv_trainer import AdversarialTrainingArguments
from adv_trainer.adversarial_config import AdversarialMethod
from adv_trainer.defaults import DEFAULTS


def make(**kwargs):
    return AdversarialTrainingArguments(output_dir="unused", report_to="none", **kwargs)


def test_cli_flags_parse_into_pgd_with_its_defaults():
    parser = HfArgumentParser(AdversarialTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(["--output_dir", "x", "--adv_method", "pgd", "--adv_k", "3"])
    assert (args.adv_method, args.adv_k, args.adv_norm, args.adv_scope) == ("pgd", 3, "l2", "example")
    assert (args.adv_epsilon, args.adv_alpha, args.adv_init_mag, args.adv_weight) == (0.02, 0.006, 0.0, 1.0)


def test_cli_rejects_an_unknown_method_with_the_choices(capsys):
    parser = HfArgumentParser(AdversarialTrainingArguments)
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--output_dir", "x", "--adv_method", "fgsm"])
    error = capsys.readouterr().err
    assert "--adv_method" in error and "'fgsm'" in error and "pgd" in error


def test_cli_accepts_inf_as_the_unbounded_radius():
    parser = HfArgumentParser(AdversarialTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", "x", "--adv_method", "freelb", "--adv_epsilon", "inf"]
    )
    assert math.isinf(args.adv_epsilon)


@pytest.mark.parametrize("method,scope,norm", [key for key in DEFAULTS], ids=["-".join(key) for key in DEFAULTS])
def test_every_default_row_is_filled_in_and_valid(method, scope, norm):
    args = make(adv_method=method, adv_scope=scope, adv_norm=norm)
    row = DEFAULTS[(method, scope, norm)]
    for name, value in row.items():
        assert getattr(args, f"adv_{name}") == value
    assert args.adv_weight == row.get("weight", 1.0)  # ASCC's beta = 4; the others' plain sum


def test_explicit_values_override_the_defaults():
    args = make(adv_method="freelb", adv_epsilon=0.5, adv_alpha=0.2, adv_k=2, adv_init_mag=0.0, adv_weight=0.5)
    assert (args.adv_epsilon, args.adv_alpha, args.adv_k, args.adv_init_mag, args.adv_weight) == (
        0.5,
        0.2,
        2,
        0.0,
        0.5,
    )


def test_none_keeps_every_hyperparameter_unset():
    args = make()
    assert args.adv_method == "none"
    assert (args.adv_epsilon, args.adv_alpha, args.adv_k, args.adv_init_mag, args.adv_weight) == (None,) * 5


def test_enum_values_are_stored_as_plain_strings():
    from adv_trainer.adversarial_config import AdversarialMethod

    args = make(adv_method=AdversarialMethod.PGD)
    assert type(args.adv_method) is str and args.adv_method == "pgd"
    assert args.to_dict()["adv_method"] == "pgd"


@pytest.mark.parametrize(
    "kwargs,unused",
    [
        (
            {"adv_method": "fgm", "adv_k": 3, "adv_alpha": 0.1, "adv_init_mag": 0.1},
            ["adv_k", "adv_alpha", "adv_init_mag"],
        ),
        ({"adv_epsilon": 0.1, "adv_weight": 1.0}, ["adv_epsilon", "adv_weight"]),
        (
            {"adv_method": "r3f", "adv_k": 2, "adv_epsilon": 0.1, "adv_alpha": 0.2},
            ["adv_k", "adv_epsilon", "adv_alpha"],
        ),
        ({"adv_method": "pgd", "adv_noise": "normal"}, ["adv_noise"]),
        ({"adv_method": "awp", "adv_k": 2, "adv_init_mag": 0.1}, ["adv_k", "adv_init_mag"]),
    ],
)
def test_hyperparameters_the_method_does_not_use_are_named_in_a_warning_and_unset(kwargs, unused):
    with pytest.warns(UserWarning) as warned:
        args = make(**kwargs)
    method = kwargs.get("adv_method", "none")
    messages = [str(w.message) for w in warned]
    for name in unused:
        assert any(f"`{name}={kwargs[name]}` is not used by `adv_method='{method}'`" in m for m in messages)
        assert getattr(args, name) is None


def test_a_pgd_config_runs_as_fgm_from_the_command_line():
    parser = HfArgumentParser(AdversarialTrainingArguments)
    with pytest.warns(UserWarning, match="`adv_k=3` is not used"):
        (args,) = parser.parse_args_into_dataclasses(
            ["--output_dir", "x", "--adv_method", "fgm", "--adv_k", "3", "--adv_epsilon", "0.2"]
        )
    assert (args.adv_method, args.adv_epsilon, args.adv_k) == ("fgm", 0.2, None)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (
            {"adv_method": "fgsm"},
            f"`adv_method` must be one of {[method.value for method in AdversarialMethod]}, got 'fgsm'",
        ),
        ({"adv_method": "pgd", "adv_norm": "l1"}, "`adv_norm` must be one of ['l2', 'linf'], got 'l1'"),
        ({"adv_method": "pgd", "adv_scope": "batch"}, "`adv_scope` must be one of ['example', 'vocab'], got 'batch'"),
        ({"adv_method": "fgm", "adv_epsilon": 0.0}, "`adv_epsilon` must be > 0, got 0.0"),
        ({"adv_method": "pgd", "adv_epsilon": -1.0}, "`adv_epsilon` must be > 0, got -1.0"),
        ({"adv_method": "pgd", "adv_epsilon": float("nan")}, "`adv_epsilon` must be > 0, got nan"),
        ({"adv_method": "fgm", "adv_epsilon": float("inf")}, "`adv_epsilon` is FGM's step size and must be finite"),
        (
            {"adv_method": "pgd", "adv_alpha": 0.0},
            "`adv_alpha` must be > 0 and finite for `adv_method='pgd'`, got 0.0",
        ),
        ({"adv_method": "freelb", "adv_k": 0}, "`adv_k` must be >= 1 for `adv_method='freelb'`, got 0"),
        ({"adv_method": "pgd", "adv_init_mag": -0.1}, "`adv_init_mag` must be >= 0 and finite, got -0.1"),
        ({"adv_method": "fgm", "adv_weight": -1.0}, "`adv_weight` must be >= 0 and finite, got -1.0"),
        ({"adv_method": "pgd", "adv_start_step": -1}, "`adv_start_step` must be a step >= 0 or a fraction of the run"),
        (
            {"adv_method": "pgd", "adv_start_step": float("nan")},
            "must be a step >= 0 or a fraction of the run in [0, 1)",
        ),
        (
            {"adv_method": "pgd", "adv_start_step": 2.5},
            "must be a whole number of steps, or a fraction of the run below",
        ),
        ({"adv_method": "r3f", "adv_noise": "gamma"}, "`adv_noise` must be one of ['normal', 'uniform'], got 'gamma'"),
        ({"adv_method": "r3f", "adv_init_mag": 0.0}, "`adv_init_mag` is r3f's noise scale and must be > 0"),
        ({"adv_method": "smart", "adv_init_mag": -1e-5}, "`adv_init_mag` is smart's noise scale and must be > 0"),
        ({"adv_method": "smart", "adv_k": 0}, "`adv_k` must be >= 1 for `adv_method='smart'`, got 0"),
        ({"adv_method": "smart", "adv_scope": "vocab"}, "`adv_method='smart'` needs `adv_scope='example'`"),
        ({"adv_method": "r3f", "adv_weight": -0.5}, "`adv_weight` must be >= 0 and finite, got -0.5"),
    ],
)
def test_invalid_values_name_the_field_the_value_and_the_fix(kwargs, message):
    with pytest.raises(ValueError) as error:
        make(**kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize("given,stored", [(0, 0), (3, 3), (3.0, 3), (0.25, 0.25)])
def test_adv_start_step_is_a_step_or_a_fraction_of_the_run(given, stored):
    start = make(adv_method="fgm", adv_start_step=given).adv_start_step
    assert start == stored and type(start) is type(stored)


@pytest.mark.parametrize(
    "method,norm,expected",
    [
        ("pgd", "l2", {"alpha": 0.15, "init_mag": 0.0}),
        ("freelb", "l2", {"alpha": 0.15, "init_mag": 0.25}),
        ("smart", "l2", {"alpha": 0.5, "init_mag": 1e-5}),
        ("pgd", "linf", {"alpha": 0.15, "init_mag": 0.0}),
        ("awp", "l2", {"alpha": 1.0}),
    ],
)
def test_defaults_tied_to_epsilon_follow_a_given_epsilon(method, norm, expected):
    args = make(adv_method=method, adv_norm=norm, adv_epsilon=0.5)
    for name, value in expected.items():
        assert getattr(args, f"adv_{name}") == pytest.approx(value, rel=1e-12), name


def test_an_explicit_alpha_and_an_unbounded_epsilon_keep_their_values():
    assert make(adv_method="pgd", adv_epsilon=0.5, adv_alpha=0.01).adv_alpha == 0.01
    args = make(adv_method="freelb", adv_epsilon=math.inf)
    assert (args.adv_alpha, args.adv_init_mag) == (0.015, 0.025)


def test_reset_and_resolve_re_derive_the_defaults_from_the_given_values():
    args = make(adv_method="pgd", adv_k=2)
    assert (args.adv_epsilon, args.adv_alpha) == (0.02, 0.006)
    args.reset_adversarial_fields()
    assert (args.adv_epsilon, args.adv_alpha, args.adv_k) == (None, None, 2)
    args.adv_epsilon = 2.0  # as a hyperparameter-search trial sets it
    args.resolve_adversarial_fields()
    assert (args.adv_epsilon, args.adv_alpha, args.adv_k) == (2.0, pytest.approx(0.6), 2)
    args.reset_adversarial_fields()
    args.adv_k = 0
    with pytest.raises(ValueError, match="`adv_k` must be >= 1"):
        args.resolve_adversarial_fields()
