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
        default=False, metadata={"help": "Also evaluate under the word-level attacks of attack_methods."}
    )
    attack_methods: list[str] = field(
        default_factory=lambda: ["pwws"],
        metadata={
            "help": "Word-level attacks: pwws (WordNet synonyms, Ren et al. 2019; WordNet from NLTK_DATA), "
            "deepwordbug (character edits, Gao et al. 2018), embedding_neighbour (the model's embedding neighbours).",
            "choices": ["pwws", "deepwordbug", "embedding_neighbour"],
        },
    )
    attack_max_examples: int | None = field(
        default=200,
        metadata={"help": "Attack the first N evaluation examples (each costs many model queries); 0: all of them."},
    )
    attack_max_words_fraction: float | None = field(
        default=None,
        metadata={
            "help": "The most words changed per example, a fraction (at least one). Default: none; 0.2 for "
            "embedding_neighbour."
        },
    )
    attack_max_queries: int | None = field(
        default=None,
        metadata={"help": "The most model evaluations per example. Default: none; 300 for embedding_neighbour."},
    )
    attack_max_edit_distance: int = field(
        default=30, metadata={"help": "deepwordbug: the most character edits per example (TextAttack's 30)."}
    )
    attack_neighbours: int = field(
        default=10,
        metadata={"help": "embedding_neighbour: nearest whole-word tokens (cosine, input embeddings) tried per word."},
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
        for name in ("robust_steps", "attack_max_edit_distance", "attack_neighbours"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.attack_max_examples == 0:  # the command line's way to say "every example"
            self.attack_max_examples = None
        if self.attack_max_examples is not None and self.attack_max_examples < 0:
            raise ValueError(f"`attack_max_examples` must be >= 1, or 0 for all, got {self.attack_max_examples}.")
        if self.attack_max_queries is not None and self.attack_max_queries < 1:
            raise ValueError(f"`attack_max_queries` must be >= 1, got {self.attack_max_queries}.")
        fraction = self.attack_max_words_fraction
        if fraction is not None and not 0 < fraction <= 1:
            raise ValueError(f"`attack_max_words_fraction` must be in (0, 1], got {fraction}.")
        if not self.attack_methods:
            raise ValueError(
                "`attack_methods` must name at least one attack, e.g. `--attack_methods pwws deepwordbug`."
            )
        if self.advglue_file is not None and not self.do_advglue_eval:
            warnings.warn(
                f"`advglue_file={self.advglue_file}` is ignored without `do_advglue_eval` (add `--do_advglue_eval`).",
                stacklevel=3,
            )

    def attack_options(self, method, max_length, seed):
        """The keyword arguments of `method`'s attack class: the budgets given, and its own flags."""
        options = {"max_length": max_length}
        if self.attack_max_words_fraction is not None:
            options["max_words_fraction"] = self.attack_max_words_fraction
        if self.attack_max_queries is not None:
            options["max_queries"] = self.attack_max_queries
        if method == "deepwordbug":
            options.update(max_edit_distance=self.attack_max_edit_distance, seed=seed)
        if method == "embedding_neighbour":
            options["neighbours"] = self.attack_neighbours
        return options
