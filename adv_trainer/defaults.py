"""The default hyperparameters of every method, and which `adv_*` fields each method reads.

`AdversarialTrainingArguments` fills every `adv_*` field left at `None` from its (method, scope, norm) row of
`DEFAULTS`; docs/defaults.md gives the measurement or the source behind each value.
"""

__all__ = ["DEFAULTS", "FIELDS_USED", "FOLLOW_EPSILON"]

# Defaults per (method, scope, norm); docs/defaults.md gives the measurements and sources behind each row.
# Per-example L2 radii are small because the whole radius lands on one example's ~10-30 tokens: MiniLM's
# word-embedding rows have norm ~1.1, FGM with eps=1.0 per example collapses SST-2 training to the majority class,
# and FGM and PGD with eps=0.1 keep CoLA near its majority class. The radii of FGM, PGD and CreAT are each method's
# choice of the eps sweep (3 seeds on SST-2, MRPC and CoLA; docs/results/sweep_plan.md's rule applied per method):
# the larger radii help SST-2 more but cost CoLA 3.5 to 25 Matthews points. The vocab scope keeps the popular recipe's
# values, whose radius is spread over every token of the batch. L-inf radii are per coordinate.
DEFAULTS = {
    ("fgm", "example", "l2"): {"epsilon": 0.02},
    ("pgd", "example", "l2"): {"epsilon": 0.02, "alpha": 0.006, "k": 3, "init_mag": 0.0},
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
    # SMART and R3F draw noise per coordinate at their papers' scale (1e-5). R3F: fairseq's uniform noise and
    # lambda 1. SMART: mt-dnn's normal noise and one ascent step of 1e-3 per coordinate (L-inf), which mt-dnn leaves
    # unprojected, hence eps = alpha; in L2 the same step over ~13 tokens x 384 coordinates is ~0.07 per example,
    # so SMART shares the per-example radius of FreeLB and CreAT, reached in its one step.
    ("smart", "example", "l2"): {"epsilon": 0.05, "alpha": 0.05, "k": 1, "init_mag": 1e-5, "noise": "normal"},
    ("smart", "example", "linf"): {"epsilon": 0.001, "alpha": 0.001, "k": 1, "init_mag": 1e-5, "noise": "normal"},
    ("r3f", "example", "l2"): {"init_mag": 1e-5, "noise": "uniform"},
    ("r3f", "example", "linf"): {"init_mag": 1e-5, "noise": "uniform"},
    # AWP: eps is the box relative to each weight's magnitude, alpha the step relative to each tensor's norm;
    # Kaggle NLP solutions' common adv_eps 1e-3 with adv_lr 1 (the box, not the step, sets the size).
    ("awp", "example", "l2"): {"epsilon": 1e-3, "alpha": 1.0},
    # CreAT: the paper's code takes one step of 0.1 to its per-example radius 0.1 (L2 over the example's positions,
    # as here), from N(0, 1e-5^2) noise, with tau 1. The eps sweep chose half of it on MiniLM (0.05: CoLA +1.0
    # Matthews points against -0.5 at 0.1), still one step to the radius. L-inf: the per-coordinate radius of FreeLB
    # and SMART, which share CreAT's L2 radius, reached in the one step.
    ("creat", "example", "l2"): {"epsilon": 0.05, "alpha": 0.05, "k": 1, "init_mag": 1e-5, "tau": 1.0},
    ("creat", "example", "linf"): {"epsilon": 0.001, "alpha": 0.001, "k": 1, "init_mag": 1e-5, "tau": 1.0},
    # ASCC: the paper's BERT ascent (Adam, learning rate 1) for K = 3 steps rather than its 10, the library's K,
    # at which its cost is compared with PGD's; 3 steps of 1 already set the hull's logits 6 apart (weights e^6).
    # Its training objective's beta = 4 (adv_weight), its sparsity weight 15 over a batch of 64, per example, and
    # its hull of the word and up to 19 synonyms (its GloVe models'; its BERT runs keep 9).
    ("ascc", "example", "l2"): {"alpha": 1.0, "k": 3, "weight": 4.0, "sparsity": 15 / 64, "synonyms": 19},
    # A2T: the paper's 20 % of the examples attacked (its scripts' num_train_adv_examples 0.2), the recipe's 20
    # candidates per word (`WordSwapEmbedding(max_candidates=20)`; here WordNet's first 20) and TextAttack's
    # adversarial loss weight alpha = 1 (`TrainingArgs.alpha`, the default adv_weight).
    ("a2t", "example", "l2"): {"fraction": 0.2, "synonyms": 20},
    # DNE: TextDefender's DNE trainer for BERT (K = 3 steps of 10 on the mixture's logits, Dirichlet concentration 1,
    # the losses summed: w = 1) and the authors' code's neighbourhoods of at most 64 words (the word and 63 others).
    ("dne", "example", "l2"): {"alpha": 10.0, "k": 3, "concentration": 1.0, "synonyms": 63},
}

# Defaults that are a fraction of their row's eps (PGD's and FreeLB's alpha/eps = 0.3, FreeLB's random start at eps/2,
# SMART's one step to the radius): when `adv_epsilon` is given and they are not, they keep that fraction of it, so that
# K steps still reach the radius. An unbounded eps (inf) takes the row's values.
FOLLOW_EPSILON = {"pgd": ("alpha",), "freelb": ("alpha", "init_mag"), "smart": ("alpha",), "creat": ("alpha",)}

# The adv_* hyperparameters each method reads; the others are reset to None with a warning.
FIELDS_USED = {
    "none": (),
    "fgm": ("adv_epsilon", "adv_weight"),
    "pgd": ("adv_epsilon", "adv_alpha", "adv_k", "adv_init_mag", "adv_weight"),
    "freelb": ("adv_epsilon", "adv_alpha", "adv_k", "adv_init_mag", "adv_weight"),
    "smart": ("adv_epsilon", "adv_alpha", "adv_k", "adv_init_mag", "adv_noise", "adv_weight"),
    "r3f": ("adv_init_mag", "adv_noise", "adv_weight"),
    "awp": ("adv_epsilon", "adv_alpha", "adv_weight"),
    "creat": ("adv_epsilon", "adv_alpha", "adv_k", "adv_init_mag", "adv_tau", "adv_weight"),
    "ascc": ("adv_alpha", "adv_k", "adv_sparsity", "adv_synonyms", "adv_weight"),
    "a2t": ("adv_fraction", "adv_synonyms", "adv_weight"),
    "dne": ("adv_alpha", "adv_k", "adv_concentration", "adv_synonyms", "adv_weight"),
}
