"""`AdversarialTrainingArguments`: the `TrainingArguments` of `AdversarialTrainer`, with validated `adv_*` fields."""

import enum
import math
import warnings
from dataclasses import dataclass, field

from transformers import TrainingArguments

__all__ = ["AdversarialMethod", "AdversarialNorm", "AdversarialScope", "AdversarialTrainingArguments", "DEFAULTS"]


class AdversarialMethod(str, enum.Enum):
    NONE = "none"
    FGM = "fgm"
    PGD = "pgd"
    FREELB = "freelb"


class AdversarialNorm(str, enum.Enum):
    L2 = "l2"
    LINF = "linf"


class AdversarialScope(str, enum.Enum):
    EXAMPLE = "example"
    VOCAB = "vocab"


# Defaults per (method, scope, norm); README "Defaults" gives the measurements and sources behind each row.
# Per-example L2 radii are small because the whole radius lands on one example's ~10-30 tokens: MiniLM's
# word-embedding rows have norm ~1.1, FGM with eps=1.0 per example collapses SST-2 training to the majority class,
# and PGD with eps=0.1 kept CoLA at its majority class where eps=0.05 learned. The vocab scope keeps the popular
# recipe's values, whose radius is spread over every token of the batch. L-inf radii are per coordinate.
DEFAULTS = {
    ("fgm", "example", "l2"): {"epsilon": 0.05},
    ("pgd", "example", "l2"): {"epsilon": 0.05, "alpha": 0.015, "k": 3, "init_mag": 0.0},
    ("freelb", "example", "l2"): {"epsilon": 0.05, "alpha": 0.015, "k": 3, "init_mag": 0.025},
    ("fgm", "example", "linf"): {"epsilon": 0.001},
    ("pgd", "example", "linf"): {"epsilon": 0.001, "alpha": 0.0003, "k": 3, "init_mag": 0.0},
    ("freelb", "example", "linf"): {"epsilon": 0.001, "alpha": 0.0003, "k": 3, "init_mag": 0.0005},
    ("fgm", "vocab", "l2"): {"epsilon": 1.0},
    ("pgd", "vocab", "l2"): {"epsilon": 1.0, "alpha": 0.3, "k": 3, "init_mag": 0.0},
    ("freelb", "vocab", "l2"): {"epsilon": 1.0, "alpha": 0.3, "k": 3, "init_mag": 0.0},
    ("fgm", "vocab", "linf"): {"epsilon": 0.001},
    ("pgd", "vocab", "linf"): {"epsilon": 0.001, "alpha": 0.0003, "k": 3, "init_mag": 0.0},
    ("freelb", "vocab", "linf"): {"epsilon": 0.001, "alpha": 0.0003, "k": 3, "init_mag": 0.0},
}

_DEFAULTS_HELP = "Default depends on `adv_method`, `adv_scope` and `adv_norm` (README, 'Defaults')."


@dataclass
class AdversarialTrainingArguments(TrainingArguments):
    r"""
    `TrainingArguments` plus the hyperparameters of adversarial training on the word-embedding output.

    Every `adv_*` field left at `None` takes the default of its (method, scope, norm) row in `DEFAULTS`. A field that
    the chosen method does not use (FGM takes one step of size `adv_epsilon`: no `adv_k`, `adv_alpha`,
    `adv_init_mag`; `adv_method="none"` uses none of them) is reset to `None` with a warning that names it.
    """

    adv_method: str = field(
        default="none",
        metadata={
            "help": "Adversarial training method: `none` (plain fine-tuning), `fgm` (one normalised gradient step, "
            "Miyato et al. 2017), `pgd` (K projected steps, Madry et al. 2018), `freelb` (K steps with parameter "
            "gradients averaged along the path, Zhu et al. 2020).",
            "choices": [m.value for m in AdversarialMethod],
        },
    )
    adv_epsilon: float | None = field(
        default=None,
        metadata={
            "help": "eps: FGM's step size; the radius of the ball PGD and FreeLB project onto. `inf` (PGD/FreeLB "
            "only) leaves the steps unprojected, as FreeLB's scripts do with max-norm 0. " + _DEFAULTS_HELP
        },
    )
    adv_alpha: float | None = field(
        default=None,
        metadata={"help": "alpha: the size of each ascent step of PGD and FreeLB. " + _DEFAULTS_HELP},
    )
    adv_k: int | None = field(
        default=None,
        metadata={"help": "K: the number of ascent steps of PGD and FreeLB. " + _DEFAULTS_HELP},
    )
    adv_norm: str = field(
        default="l2",
        metadata={
            "help": "The norm of the perturbation. `l2`: steps along g/||g||_2, projection onto the L2 ball. `linf`: "
            "steps along sign(g) (FGSM's steepest-ascent step for L-inf), projection by clipping every coordinate to "
            "[-eps, eps]; eps is then a per-coordinate bound.",
            "choices": [n.value for n in AdversarialNorm],
        },
    )
    adv_scope: str = field(
        default="example",
        metadata={
            "help": "What one perturbation covers. `example`: every example has its own perturbation over its "
            "non-padding positions, normalised by that example's gradient, so a micro-batch's perturbation does not "
            "depend on the other examples and gradient accumulation and DDP give the same update as one large batch. "
            "`vocab`: the popular weight-editing recipe's semantics without editing the weight: one perturbation per "
            "vocabulary row, shared by all occurrences of a token, normalised over the whole micro-batch. It depends "
            "on which examples share the micro-batch, so the gradient-accumulation and DDP equivalences do not hold.",
            "choices": [s.value for s in AdversarialScope],
        },
    )
    adv_init_mag: float | None = field(
        default=None,
        metadata={
            "help": "Magnitude of a random start for PGD and FreeLB; 0 starts from the clean embeddings. L2: uniform "
            "noise scaled so that its norm is at most adv_init_mag (FreeLB's initialisation); L-inf: uniform in "
            "[-adv_init_mag, adv_init_mag] per coordinate. " + _DEFAULTS_HELP
        },
    )
    adv_weight: float | None = field(
        default=None,
        metadata={
            "help": "w: weight of the adversarial loss; the parameter gradient is grad L(e) + w * (adversarial "
            "term). 1 (the default) is the recipes' plain sum."
        },
    )
    adv_start_step: int = field(
        default=0,
        metadata={
            "help": "Optimizer step from which adversarial passes run; earlier steps train as `adv_method=none` "
            "(FreeLB's adv-begin-iter). Counted in global steps, so a resumed run starts where it left off."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        # Stored as plain strings, so that `to_dict()`, JSON and the DEFAULTS lookup see the same values.
        self.adv_method = _require_choice("adv_method", self.adv_method, AdversarialMethod)
        self.adv_norm = _require_choice("adv_norm", self.adv_norm, AdversarialNorm)
        self.adv_scope = _require_choice("adv_scope", self.adv_scope, AdversarialScope)
        if self.adv_start_step < 0:
            raise ValueError(f"`adv_start_step` must be >= 0, got {self.adv_start_step}.")
        if self.adv_method == AdversarialMethod.NONE:
            self._drop_unused(["adv_epsilon", "adv_alpha", "adv_k", "adv_init_mag", "adv_weight"], "none")
            return
        if self.adv_method == AdversarialMethod.FGM:
            self._drop_unused(["adv_alpha", "adv_k", "adv_init_mag"], "fgm")
        defaults = DEFAULTS[(self.adv_method, self.adv_scope, self.adv_norm)]
        for name, value in defaults.items():
            if getattr(self, f"adv_{name}") is None:
                setattr(self, f"adv_{name}", value)
        if self.adv_weight is None:
            self.adv_weight = 1.0
        self._validate_values()

    def _drop_unused(self, names, method):
        # A config written for PGD and run with `--adv_method fgm` is legitimate; the leftovers are said and unset.
        for name in names:
            if getattr(self, name) is not None:
                warnings.warn(
                    f"`{name}={getattr(self, name)}` is not used by `adv_method='{method}'` and is ignored "
                    "(`adv_k`, `adv_alpha`, `adv_init_mag` are for pgd and freelb).",
                    stacklevel=3,
                )
                setattr(self, name, None)

    def _validate_values(self):
        method = self.adv_method
        if math.isnan(self.adv_epsilon) or self.adv_epsilon <= 0:
            raise ValueError(
                f"`adv_epsilon` must be > 0, got {self.adv_epsilon}. For an unbounded PGD/FreeLB use "
                "`adv_epsilon=inf` (FreeLB's max-norm 0); to train without perturbation use `adv_method='none'`."
            )
        if method == AdversarialMethod.FGM and math.isinf(self.adv_epsilon):
            raise ValueError("`adv_epsilon` is FGM's step size and must be finite, got inf.")
        if method != AdversarialMethod.FGM:
            if not 0 < self.adv_alpha < math.inf:
                raise ValueError(
                    f"`adv_alpha` must be > 0 and finite for `adv_method='{method}'`, got {self.adv_alpha}."
                )
            if self.adv_k < 1:
                raise ValueError(f"`adv_k` must be >= 1 for `adv_method='{method}'`, got {self.adv_k}.")
            if not 0 <= self.adv_init_mag < math.inf:
                raise ValueError(
                    f"`adv_init_mag` must be >= 0 and finite, got {self.adv_init_mag}; 0 means no random start."
                )
        if not 0 <= self.adv_weight < math.inf:
            raise ValueError(f"`adv_weight` must be >= 0 and finite, got {self.adv_weight}.")


def _require_choice(name, value, choices):
    allowed = [c.value for c in choices]
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")
    return choices(value).value
