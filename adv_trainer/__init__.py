"""Adversarial fine-tuning of language models with Hugging Face `Trainer`: FGM, PGD, FreeLB, SMART, R3F and CreAT
on the word-embedding output and AWP on the weights, correct under gradient accumulation, mixed precision and DDP."""

from .adversarial_config import AdversarialTrainingArguments
from .adversarial_trainer import AdversarialTrainer
from .attacks import AWP, FGM, PGD, R3F, SMART, CreAT, EmbeddingAttack, FreeLB

__all__ = [
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
]
