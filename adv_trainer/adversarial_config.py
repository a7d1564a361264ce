"""`AdversarialTrainingArguments`: the `TrainingArguments` of `AdversarialTrainer`, with validated `adv_*` fields."""

import enum
import math
import warnings
from dataclasses import dataclass, field, fields
from functools import cached_property

from transformers import TrainingArguments

from .cpu_ddp import require_synchronised_gradients, use_cpu_when_launched
from .defaults import DEFAULTS, FIELDS_USED, FOLLOW_EPSILON

__all__ = [
    "AdversarialMethod",
    "AdversarialNoise",
    "AdversarialNorm",
    "AdversarialScope",
    "AdversarialTrainingArguments",
]


class AdversarialMethod(str, enum.Enum):
    NONE = "none"
    FGM = "fgm"
    PGD = "pgd"
    FREELB = "freelb"
    SMART = "smart"
    R3F = "r3f"
    AWP = "awp"
    CREAT = "creat"
    ASCC = "ascc"
    A2T = "a2t"
    DNE = "dne"


# The methods `adv_scope="vocab"` (the weight-editing recipe's semantics) applies to.
EMBEDDING_RECIPE_METHODS = (AdversarialMethod.FGM, AdversarialMethod.PGD, AdversarialMethod.FREELB)
# Methods that regularise the divergence between clean and perturbed predictions instead of adding a perturbed loss.
SMOOTHNESS_METHODS = (AdversarialMethod.SMART, AdversarialMethod.R3F)
# Methods whose perturbations are made of the synonyms of each token (the tokenizer's `synonym_table`).
SYNONYM_METHODS = (AdversarialMethod.ASCC, AdversarialMethod.A2T, AdversarialMethod.DNE)


class AdversarialNoise(str, enum.Enum):
    NORMAL = "normal"
    UNIFORM = "uniform"


class AdversarialNorm(str, enum.Enum):
    L2 = "l2"
    LINF = "linf"


class AdversarialScope(str, enum.Enum):
    EXAMPLE = "example"
    VOCAB = "vocab"


_DEFAULTS_HELP = "Default depends on `adv_method`, `adv_scope` and `adv_norm` (docs/defaults.md)."


@dataclass
class AdversarialTrainingArguments(TrainingArguments):
    r"""
    `TrainingArguments` plus the hyperparameters of adversarial training on the word-embedding output.

    Every `adv_*` field left at `None` takes the default of its (method, scope, norm) row in `DEFAULTS`; where
    `adv_epsilon` is given, PGD's, FreeLB's, SMART's and CreAT's default `adv_alpha` (and FreeLB's `adv_init_mag`)
    keep their row's ratio to eps instead (`FOLLOW_EPSILON`; e.g. PGD: alpha = 0.3 eps). A field that the chosen
    method does not use (FGM takes one step of size `adv_epsilon`: no `adv_k`, `adv_alpha`, `adv_init_mag`;
    `adv_method="none"` uses none of them) is reset to `None` with a warning that names it.

    The values as given are remembered: a hyperparameter search that sets `adv_*` fields per trial calls
    `reset_adversarial_fields()` before and `resolve_adversarial_fields()` after, so each trial's defaults follow its
    own values and are validated (`AdversarialTrainer` does this in `_hp_search_setup`).
    """

    adv_method: str = field(
        default="none",
        metadata={
            "help": "Adversarial training method; docs/methods.md gives each one's update rule and paper. `none` is "
            "plain fine-tuning; `ascc`, `dne` and `a2t` substitute WordNet synonyms and need the tokenizer.",
            "choices": [m.value for m in AdversarialMethod],
        },
    )
    adv_epsilon: float | None = field(
        default=None,
        metadata={
            "help": "eps: FGM's step size; the radius of the ball PGD, FreeLB, SMART and CreAT project onto. `inf` "
            "(PGD/FreeLB/SMART/CreAT) leaves the steps unprojected, as FreeLB's scripts do with max-norm 0. AWP: "
            "gamma, the box |V| <= gamma * |W| per weight element. " + _DEFAULTS_HELP
        },
    )
    adv_alpha: float | None = field(
        default=None,
        metadata={
            "help": "alpha: the size of each ascent step of PGD, FreeLB, SMART and CreAT; AWP: the step relative to "
            "each weight tensor's norm; ASCC: Adam's learning rate on the hull weights' logits; DNE: the step on "
            "the mixture's logits. " + _DEFAULTS_HELP + " Unset with a finite `adv_epsilon` given, PGD's and "
            "FreeLB's alpha is 0.3 eps and SMART's and CreAT's eps (their rows' ratio)."
        },
    )
    adv_k: int | None = field(
        default=None,
        metadata={
            "help": "K: the number of ascent steps of PGD, FreeLB, SMART, CreAT, ASCC and DNE. " + _DEFAULTS_HELP
        },
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
            "help": "What one perturbation covers. `example`: each example's non-padding positions, normalised by its "
            "own gradient, so gradient accumulation and DDP give the update of one large batch. `vocab`: the "
            "weight-editing recipe's, without editing the weight: one per vocabulary row, normalised over the "
            "micro-batch (those equivalences do not hold).",
            "choices": [s.value for s in AdversarialScope],
        },
    )
    adv_init_mag: float | None = field(
        default=None,
        metadata={
            "help": "Magnitude of a random start for PGD and FreeLB (0: the clean embeddings); L2: uniform noise of "
            "norm at most this (FreeLB's), L-inf: uniform per coordinate. SMART, R3F: their noise scale per "
            "coordinate (std of `normal`, half-width of `uniform`), > 0; CreAT: sigma of its normal start, > 0. "
            + _DEFAULTS_HELP
            + " Unset with a finite `adv_epsilon` given, FreeLB's keeps its row's ratio to eps (eps/2 per example)."
        },
    )
    adv_noise: str | None = field(
        default=None,
        metadata={
            "help": "Distribution of the per-coordinate noise of SMART and R3F: `normal` (SMART's, mt-dnn) or "
            "`uniform` (R3F's default in fairseq). " + _DEFAULTS_HELP,
            "choices": [n.value for n in AdversarialNoise],
        },
    )
    adv_weight: float | None = field(
        default=None,
        metadata={
            "help": "w: weight of the adversarial loss; the parameter gradient is grad L(e) + w * (adversarial "
            "term). 1 (the default) is the recipes' plain sum. For SMART and R3F, lambda: the weight of the "
            "symmetric-KL (MSE for regression) regulariser; ASCC: beta, of its KL term. For CreAT, the parameters "
            "train on (L(e) + w * L(e + delta)) / (1 + w): w = 1 is the paper's mean of the clean and adversarial "
            "losses. A2T: alpha, of its adversarial examples' loss."
        },
    )
    adv_tau: float | None = field(
        default=None,
        metadata={
            "help": "tau: CreAT's weight of the cosine similarity between the last hidden states at the perturbed and "
            "at the clean input, subtracted from the task loss in its ascent objective (1 in the paper). 0 makes its "
            "ascent a PGD step on the task loss from the noise start. " + _DEFAULTS_HELP
        },
    )
    adv_sparsity: float | None = field(
        default=None,
        metadata={
            "help": "ASCC's sparsity weight: of the entropy of the hull weights (per example, averaged over its "
            "tokens) in its ascent objective. " + _DEFAULTS_HELP
        },
    )
    adv_synonyms: int | None = field(
        default=None,
        metadata={
            "help": "ASCC: a token's hull has it and its first N synonyms (WordNet's order); DNE: its neighbourhood "
            "has it and N synonyms and their synonyms; A2T: the candidates per word. " + _DEFAULTS_HELP
        },
    )
    adv_concentration: float | None = field(
        default=None,
        metadata={
            "help": "DNE: the Dirichlet concentration of a word and its synonyms (half for the second hop). "
            + _DEFAULTS_HELP
        },
    )
    adv_fraction: float | None = field(
        default=None,
        metadata={"help": "A2T: gamma, the share of the examples attacked (chosen by hash). " + _DEFAULTS_HELP},
    )
    adv_start_step: float = field(
        default=0,
        metadata={
            "help": "Optimizer step from which adversarial passes run, earlier ones as `adv_method=none` (FreeLB's "
            "adv-begin-iter): a whole number >= 1, or a fraction in [0, 1) of the run's steps, rounded up; counted "
            "in global steps (a resumed run starts where it left off)."
        },
    )

    adv_epsilon_warmup: float = field(
        default=0,
        metadata={
            "help": "N: a linear warm-up of eps (and of alpha, FreeLB's start) from eps/N to eps over the first N "
            "adversarial steps; a fraction in (0, 1) is that share of the run, rounded up. 0: none."
        },
    )

    def __post_init__(self):
        use_cpu_when_launched(self)  # `torchrun` on a machine without an accelerator: DDP on the CPU (cpu_ddp.py)
        super().__post_init__()
        self._adversarial_given = {name: getattr(self, name) for name in _ADVERSARIAL_FIELDS}
        self._adversarial_changes = {}
        self.resolve_adversarial_fields()

    def adversarial_fields(self):
        """{name: value} of every `adv_*` field."""
        return {name: getattr(self, name) for name in _ADVERSARIAL_FIELDS}

    def apply_adversarial_changes(self, resolved):
        """Takes the `adv_*` fields that differ from `resolved` (all of them as the last resolution left them) as
        given, and resolves and validates the rest as at construction: a default that follows eps follows a changed
        eps. Returns {name: (before, after)} of the fields that end up different; raises ValueError as construction
        does for an invalid value."""
        changed = {name: value for name, value in self.adversarial_fields().items() if value != resolved[name]}
        if not changed:
            return {}
        # This run's changes stay given until `reset_adversarial_fields` (a new search trial) starts from construction.
        changes = {**self._adversarial_changes, **changed}
        self.reset_adversarial_fields()
        self._adversarial_changes = changes
        for name, value in changes.items():
            setattr(self, name, value)
        self.resolve_adversarial_fields()
        current = self.adversarial_fields()
        return {name: (resolved[name], value) for name, value in current.items() if value != resolved[name]}

    def reset_adversarial_fields(self):
        """Sets every `adv_*` field back to its value at construction (`None` where a default was filled in),
        forgetting the changes `apply_adversarial_changes` took."""
        for name, value in self._adversarial_given.items():
            setattr(self, name, value)
        self._adversarial_changes = {}

    def resolve_adversarial_fields(self):
        """Validates the `adv_*` fields and fills those left at `None` from `DEFAULTS`, as at construction.

        Raises ValueError naming the field, its value and the fix for an invalid value or combination.
        """
        # Stored as plain strings, so that `to_dict()`, JSON and the DEFAULTS lookup see the same values.
        self.adv_method = _require_choice("adv_method", self.adv_method, AdversarialMethod)
        self.adv_norm = _require_choice("adv_norm", self.adv_norm, AdversarialNorm)
        self.adv_scope = _require_choice("adv_scope", self.adv_scope, AdversarialScope)
        if self.adv_noise is not None:
            self.adv_noise = _require_choice("adv_noise", self.adv_noise, AdversarialNoise)
        self.adv_start_step = _steps_or_fraction("adv_start_step", self.adv_start_step)
        self.adv_epsilon_warmup = _steps_or_fraction("adv_epsilon_warmup", self.adv_epsilon_warmup)
        self._drop_unused()
        if self.adv_method == AdversarialMethod.NONE:
            return
        if self.adv_method not in EMBEDDING_RECIPE_METHODS and self.adv_scope != AdversarialScope.EXAMPLE:
            raise ValueError(
                f"`adv_scope='{self.adv_scope}'` reproduces the weight-editing FGM/PGD recipe and is for fgm, pgd and "
                f"freelb; `adv_method='{self.adv_method}'` needs `adv_scope='example'`."
            )
        if self.adv_method == AdversarialMethod.AWP and self.adv_norm != AdversarialNorm.L2:
            raise ValueError(
                f"`adv_norm='{self.adv_norm}'` does not apply to `adv_method='awp'`: its step is relative to each "
                "weight tensor's L2 norm and its box is per element. Leave `adv_norm` at 'l2'."
            )
        if self.adv_method == AdversarialMethod.A2T and self.adv_norm != AdversarialNorm.L2:
            raise ValueError(
                f"`adv_norm='{self.adv_norm}'` does not apply to `adv_method='a2t'`: it swaps words for synonyms, "
                "with no norm. Leave `adv_norm` at 'l2'."
            )
        if self.adv_method in SYNONYM_METHODS and self.adv_norm != AdversarialNorm.L2:
            raise ValueError(
                f"`adv_norm='{self.adv_norm}'` does not apply to `adv_method='{self.adv_method}'`: its perturbations "
                "are bounded by the convex hull of each word's synonyms, not by a norm. Leave `adv_norm` at 'l2'."
            )
        defaults = DEFAULTS[(self.adv_method, self.adv_scope, self.adv_norm)]
        follow = self.adv_epsilon is not None and math.isfinite(self.adv_epsilon)
        for name, value in defaults.items():
            if getattr(self, f"adv_{name}") is None:
                if follow and name in FOLLOW_EPSILON.get(self.adv_method, ()):
                    value = value * (self.adv_epsilon / defaults["epsilon"])
                setattr(self, f"adv_{name}", value)
        if self.adv_weight is None:
            self.adv_weight = 1.0
        self._validate_values()

    @cached_property
    def _setup_devices(self):
        device = super()._setup_devices
        require_synchronised_gradients(self)
        return device

    def _drop_unused(self):
        # A config written for PGD and run with `--adv_method fgm` is legitimate; the leftovers are said and unset.
        used = FIELDS_USED[self.adv_method]
        for name in dict.fromkeys(name for names in FIELDS_USED.values() for name in names):
            if name not in used and getattr(self, name) is not None:
                warnings.warn(
                    f"`{name}={getattr(self, name)}` is not used by `adv_method='{self.adv_method}'` and is ignored "
                    f"(it uses {', '.join(f'`{n}`' for n in used) or 'none of the adv_* hyperparameters'}).",
                    stacklevel=4,
                )
                setattr(self, name, None)
        if self.adv_epsilon_warmup != 0 and "adv_epsilon" not in used:
            warnings.warn(
                f"`adv_epsilon_warmup={self.adv_epsilon_warmup}` is ignored: `adv_method='{self.adv_method}'` has no "
                "radius `adv_epsilon` to warm up.",
                stacklevel=4,
            )
            self.adv_epsilon_warmup = 0

    def _validate_values(self):
        method = self.adv_method
        used = FIELDS_USED[method]
        if "adv_epsilon" in used:
            if math.isnan(self.adv_epsilon) or self.adv_epsilon <= 0:
                raise ValueError(
                    f"`adv_epsilon` must be > 0, got {self.adv_epsilon}. For an unbounded PGD/FreeLB/SMART use "
                    "`adv_epsilon=inf` (FreeLB's max-norm 0); to train without perturbation use `adv_method='none'`."
                )
            if method == AdversarialMethod.FGM and math.isinf(self.adv_epsilon):
                raise ValueError("`adv_epsilon` is FGM's step size and must be finite, got inf.")
            if method == AdversarialMethod.AWP and math.isinf(self.adv_epsilon):
                raise ValueError("`adv_epsilon` is AWP's box relative to each weight and must be finite, got inf.")
        if "adv_alpha" in used and not 0 < self.adv_alpha < math.inf:
            raise ValueError(f"`adv_alpha` must be > 0 and finite for `adv_method='{method}'`, got {self.adv_alpha}.")
        if "adv_k" in used and self.adv_k < 1:
            raise ValueError(f"`adv_k` must be >= 1 for `adv_method='{method}'`, got {self.adv_k}.")
        if method in (*SMOOTHNESS_METHODS, AdversarialMethod.CREAT):
            # At zero noise SMART's first ascent gradient is exactly 0 (the divergence is at its minimum), R3F's
            # regulariser vanishes, and so does the gradient of CreAT's similarity (at its maximum): the noise is what
            # these methods need.
            if not 0 < self.adv_init_mag < math.inf:
                raise ValueError(
                    f"`adv_init_mag` is {method}'s noise scale and must be > 0 and finite, got {self.adv_init_mag}."
                )
        elif "adv_init_mag" in used and not 0 <= self.adv_init_mag < math.inf:
            raise ValueError(
                f"`adv_init_mag` must be >= 0 and finite, got {self.adv_init_mag}; 0 means no random start."
            )
        if "adv_tau" in used and not 0 <= self.adv_tau < math.inf:
            raise ValueError(
                f"`adv_tau` must be >= 0 and finite, got {self.adv_tau}; it weighs CreAT's cosine similarity (1 in "
                "the paper)."
            )
        if "adv_sparsity" in used and not 0 <= self.adv_sparsity < math.inf:
            raise ValueError(
                f"`adv_sparsity` must be >= 0 and finite, got {self.adv_sparsity}; it weighs ASCC's entropy term "
                "(15/64 per example, the paper's)."
            )
        if "adv_synonyms" in used and self.adv_synonyms < 1:
            raise ValueError(
                f"`adv_synonyms` must be >= 1 for `adv_method='{method}'`, got {self.adv_synonyms}: it caps the "
                "synonyms of each token's hull (ascc), neighbourhood (dne) or candidates (a2t)."
            )
        if "adv_concentration" in used and not 0 < self.adv_concentration < math.inf:
            raise ValueError(
                f"`adv_concentration` must be > 0 and finite, got {self.adv_concentration}; it is DNE's Dirichlet "
                "concentration (1 in its code)."
            )
        if "adv_fraction" in used and not 0 < self.adv_fraction <= 1:
            raise ValueError(
                f"`adv_fraction` must be in (0, 1], got {self.adv_fraction}: it is the share of the examples A2T "
                "attacks (0.2, the paper's); to train without attacks use `adv_method='none'`."
            )
        if not 0 <= self.adv_weight < math.inf:
            raise ValueError(f"`adv_weight` must be >= 0 and finite, got {self.adv_weight}.")


def _steps_or_fraction(name, value):
    """A count of optimizer steps as an int (>= 1, or 0) or a float fraction of the run in (0, 1), the convention of
    `warmup_steps`."""
    if not 0 <= value < math.inf:
        raise ValueError(
            f"`{name}` must be a step >= 0 or a fraction of the run in [0, 1), got {value}; e.g. 500 or 0.1."
        )
    if 0 < value < 1:
        return float(value)
    if value != int(value):
        raise ValueError(
            f"`{name}` must be a whole number of steps, or a fraction of the run below 1, got {value}; "
            f"e.g. {int(value)} or 0.1."
        )
    return int(value)


def steps_of(value, max_steps):
    """Optimizer steps of a `_steps_or_fraction` value in a run of `max_steps`: a fraction is rounded up."""
    return value if isinstance(value, int) else math.ceil(value * max_steps)


_ADVERSARIAL_FIELDS = tuple(f.name for f in fields(AdversarialTrainingArguments) if f.name.startswith("adv_"))


def _require_choice(name, value, choices):
    allowed = [c.value for c in choices]
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {allowed}, got {value!r}.")
    return choices(value).value
