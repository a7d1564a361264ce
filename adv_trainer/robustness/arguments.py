"""`RobustnessArguments`: the robustness evaluation flags of `run_glue.py` and `attack.py`."""

import warnings
from dataclasses import dataclass, field

__all__ = ["RobustnessArguments"]


@dataclass
class RobustnessArguments:
    do_robust_eval: bool = field(
        default=False,
        metadata={"help": "Also evaluate under PGD on the word-embedding output, at each radius of robust_epsilons."},
    )
    robust_epsilons: list[float] = field(
        default_factory=lambda: [0.05, 0.1, 0.25],
        metadata={"help": "Radii of the embedding attack, per example (L2 norm over its tokens, or L-inf)."},
    )
    robust_steps: int = field(default=10, metadata={"help": "PGD steps of the embedding attack (alpha = 2.5 eps/K)."})
    robust_norm: str = field(
        default="l2", metadata={"help": "Norm of the embedding attack.", "choices": ["l2", "linf"]}
    )
    do_attack_eval: bool = field(
        default=False, metadata={"help": "Also evaluate under the gradient-guided word-substitution attack."}
    )
    attack_max_examples: int | None = field(
        default=200, metadata={"help": "Attack the first N evaluation examples (it costs up to max_queries each)."}
    )
    attack_max_words_fraction: float = field(
        default=0.2, metadata={"help": "The most words replaced per example, as a fraction (at least one word)."}
    )
    attack_max_queries: int = field(default=300, metadata={"help": "The most model evaluations per example."})
    attack_neighbours: int = field(
        default=10, metadata={"help": "Nearest whole-word tokens (cosine, input embeddings) tried per word."}
    )
    do_advglue_eval: bool = field(
        default=False,
        metadata={"help": "Also evaluate on AdvGLUE: textual adversarial examples of the task (mnli: both sets)."},
    )
    advglue_file: str | None = field(
        default=None,
        metadata={
            "help": "The AdvGLUE dev.json; default ../shared/advglue/dev.json beside the repository if present."
        },
    )

    def __post_init__(self):
        negative = [eps for eps in self.robust_epsilons if not eps >= 0]
        if not self.robust_epsilons or negative:
            raise ValueError(f"`robust_epsilons` must be one or more radii >= 0, got {self.robust_epsilons}.")
        for name in ("robust_steps", "attack_max_queries", "attack_neighbours"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.attack_max_examples is not None and self.attack_max_examples < 1:
            raise ValueError(f"`attack_max_examples` must be >= 1, got {self.attack_max_examples}.")
        if not 0 < self.attack_max_words_fraction <= 1:
            raise ValueError(f"`attack_max_words_fraction` must be in (0, 1], got {self.attack_max_words_fraction}.")
        if self.advglue_file is not None and not self.do_advglue_eval:
            warnings.warn(
                f"`advglue_file={self.advglue_file}` is ignored without `do_advglue_eval` (add `--do_advglue_eval`).",
                stacklevel=3,
            )
