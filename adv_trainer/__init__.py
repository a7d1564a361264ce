"""Adversarial fine-tuning of language models with Hugging Face `Trainer`: FGM, PGD and FreeLB on the word-embedding
output, correct under gradient accumulation, mixed precision and DDP."""

from .adversarial_config import AdversarialTrainingArguments
from .adversarial_trainer import AdversarialTrainer
from .attacks import FGM, PGD, EmbeddingAttack, FreeLB

__all__ = ["AdversarialTrainer", "AdversarialTrainingArguments", "EmbeddingAttack", "FGM", "FreeLB", "PGD"]
