"""Adversarial fine-tuning of language models with Hugging Face `Trainer`: FGM, PGD, FreeLB, SMART, R3F and CreAT
on the word-embedding output, ASCC within the convex hulls of each word's synonyms and AWP on the weights, correct
under gradient accumulation, mixed precision and DDP."""

from .adversarial_config import AdversarialTrainingArguments
from .adversarial_trainer import AdversarialTrainer
from .attacks import A2T, ASCC, AWP, FGM, PGD, R3F, SMART, CreAT, EmbeddingAttack, FreeLB
from .synonym_table import SynonymTable, synonym_table

__all__ = [
    "A2T",
    "ASCC",
    "AWP",
    "AdversarialTrainer",
    "AdversarialTrainingArguments",
    "CreAT",
    "EmbeddingAttack",
    "FGM",
    "FreeLB",
    "PGD",
    "R3F",
    "SMART",
    "SynonymTable",
    "synonym_table",
]
