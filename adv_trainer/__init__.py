"""Adversarial fine-tuning of language models with Hugging Face `Trainer`: FGM, PGD, FreeLB, SMART, R3F and CreAT
on the word-embedding output, ASCC and DNE within the convex hulls of each word's synonyms, A2T on synonym swaps
and AWP on the weights, correct under gradient accumulation, mixed precision and DDP."""

from .adversarial_config import AdversarialMethod, AdversarialTrainingArguments
from .adversarial_trainer import AdversarialTrainer
from .attacks import A2T, ASCC, AWP, DNE, FGM, PGD, R3F, SMART, CreAT, EmbeddingAttack, FreeLB
from .synonym_table import SynonymTable

__all__ = [
    "A2T",
    "ASCC",
    "AWP",
    "AdversarialMethod",
    "AdversarialTrainer",
    "AdversarialTrainingArguments",
    "CreAT",
    "DNE",
    "EmbeddingAttack",
    "FGM",
    "FreeLB",
    "PGD",
    "R3F",
    "SMART",
    "SynonymTable",
]
