"""Tiny models built from configs in code, toy data and argument factories shared by the tests (no downloads)."""

import copy

import torch
from datasets import Dataset
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    GemmaConfig,
    GemmaForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    MistralConfig,
    MistralForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
    Qwen2Config,
    Qwen2ForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
    Trainer,
    TrainingArguments,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments, SynonymTable
from adv_trainer.adversarial_config import SYNONYM_METHODS

VOCAB = 50
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
SMALL = {"vocab_size": VOCAB, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32}


def tiny_bert(num_labels=2, seed=0, hidden_size=16, head=BertForSequenceClassification, max_length=32, dropout=0.0):
    """A BERT with the given head class (sequence classification, multiple choice, token classification, QA)."""
    torch.manual_seed(seed)
    dropouts = {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    config = BertConfig(
        hidden_size=hidden_size, max_position_embeddings=max_length, num_labels=num_labels, **SMALL, **dropouts
    )
    return head(config)


def tiny_roberta(seed=0, head=RobertaForSequenceClassification):
    torch.manual_seed(seed)
    config = RobertaConfig(hidden_size=16, max_position_embeddings=40, pad_token_id=0, **SMALL, **NO_DROPOUT)
    return head(config)


def tiny_distilbert(seed=0):
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=VOCAB, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=32, dropout=0.0
    )
    config.attention_dropout = config.seq_classif_dropout = 0.0
    return DistilBertForSequenceClassification(config)


def tiny_albert(seed=0):
    """ALBERT factorises its embedding: the word embedding is 8 wide, the hidden states 16."""
    torch.manual_seed(seed)
    config = AlbertConfig(
        embedding_size=8, hidden_size=16, max_position_embeddings=32, classifier_dropout_prob=0.0, **SMALL
    )
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    return AlbertForSequenceClassification(config)


def tiny_electra(seed=0):
    torch.manual_seed(seed)
    config = ElectraConfig(embedding_size=8, hidden_size=16, max_position_embeddings=32, **SMALL, **NO_DROPOUT)
    return ElectraForSequenceClassification(config)


def tiny_gpt2(seed=0):
    """A causal LM whose output projection is tied to its input embedding."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(config)


def tiny_deberta_v2(seed=0):
    """DeBERTa-v2/v3: disentangled relative attention (position buckets) and no absolute position input."""
    torch.manual_seed(seed)
    config = DebertaV2Config(
        hidden_size=16, max_position_embeddings=32, relative_attention=True, position_buckets=8,
        max_relative_positions=16, pos_att_type=["p2c", "c2p"], position_biased_input=False, pad_token_id=0,
        **SMALL, **NO_DROPOUT,
    )  # fmt: skip
    return DebertaV2ForSequenceClassification(config)


def tiny_modernbert(seed=0):
    """ModernBERT: rotary positions, alternating local (window 8) and global attention."""
    torch.manual_seed(seed)
    config = ModernBertConfig(
        hidden_size=16, max_position_embeddings=32, global_attn_every_n_layers=2, local_attention=8, pad_token_id=0,
        **SMALL,
    )  # fmt: skip
    return ModernBertForSequenceClassification(config)


def tiny_xlm_roberta(seed=0):
    torch.manual_seed(seed)
    config = XLMRobertaConfig(hidden_size=16, max_position_embeddings=40, pad_token_id=0, **SMALL, **NO_DROPOUT)
    return XLMRobertaForSequenceClassification(config)


# Llama-style decoders: rotary positions, RMSNorm, grouped-query attention (2 query heads share 1 key/value head).
DECODER = {**SMALL, "hidden_size": 16, "head_dim": 8, "num_key_value_heads": 1, "max_position_embeddings": 32}


def tiny_decoder(config_class, model_class, seed=0):
    """A tiny decoder of a Llama-style family; its sequence classifier reads the last non-padding token (pad 0)."""
    torch.manual_seed(seed)
    return model_class(config_class(pad_token_id=0, **DECODER))


def tiny_llama(seed=0):
    return tiny_decoder(LlamaConfig, LlamaForCausalLM, seed)


def tiny_llama_classifier(seed=0):
    return tiny_decoder(LlamaConfig, LlamaForSequenceClassification, seed)


def tiny_qwen2(seed=0):
    return tiny_decoder(Qwen2Config, Qwen2ForCausalLM, seed)


def tiny_mistral_classifier(seed=0):
    return tiny_decoder(MistralConfig, MistralForSequenceClassification, seed)


def tiny_gemma(seed=0):
    """Gemma's embedding module multiplies its output by sqrt(hidden size) = 4."""
    return tiny_decoder(GemmaConfig, GemmaForCausalLM, seed)


def classification_rows(n=16, seed=0, num_labels=2, min_len=3, max_len=10):
    """Rows of random token ids (ids >= 2; 0 pads) of varying lengths with labels."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=generator))
        rows.append(
            {"input_ids": torch.randint(2, VOCAB, (length,), generator=generator).tolist(), "labels": i % num_labels}
        )
    return rows


def lm_rows(n=16, seed=0):
    """Causal-LM rows whose labels ignore (-100) a varying prompt, so micro-batches hold different token counts."""
    rows = classification_rows(n, seed, min_len=4, max_len=12)
    for i, row in enumerate(rows):
        prompt = i % 3
        row["labels"] = [-100] * prompt + row["input_ids"][prompt:]
    return rows


def repeated_rows(n=16):
    """`n` copies of one labelled row: every shard and order of them gives the same batches."""
    return classification_rows(1, min_len=7, max_len=7) * n


def collate(rows):
    """Right-pads `input_ids` with 0 (mask 0) and sequence labels with -100; stacks scalar labels."""
    length = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row["input_ids"])] = torch.tensor(row["input_ids"])
        mask[i, : len(row["input_ids"])] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if isinstance(rows[0]["labels"], list):
        labels = torch.full((len(rows), length), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            labels[i, : len(row["labels"])] = torch.tensor(row["labels"])
        batch["labels"] = labels
    else:
        batch["labels"] = torch.tensor([r["labels"] for r in rows])
    return batch


def dataset(rows):
    return Dataset.from_list(rows)


def checkpointing(use_reentrant):
    """Gradient checkpointing's arguments under the names this transformers knows: `activation_checkpointing*` from
    5.23, `gradient_checkpointing*` (deprecated since) before, so that the tests run at the declared floor too."""
    prefix = "activation" if "activation_checkpointing" in TrainingArguments.__dataclass_fields__ else "gradient"
    return {f"{prefix}_checkpointing": True, f"{prefix}_checkpointing_kwargs": {"use_reentrant": use_reentrant}}


def arguments(tmp_path, args_class=AdversarialTrainingArguments, **overrides):
    """Deterministic CPU arguments: SGD without clipping, so that a wrong gradient scale shows in the weights."""
    settings = {
        "output_dir": str(tmp_path / "out"),
        "per_device_train_batch_size": 4,
        "max_steps": 2,
        "learning_rate": 0.5,
        "optim": "sgd",
        "max_grad_norm": 0.0,
        "lr_scheduler_type": "constant",
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
        "dataloader_num_workers": 0,
    }
    settings.update(overrides)
    return args_class(**settings)


def train(
    model, tmp_path, rows, trainer_class=AdversarialTrainer, resume_from_checkpoint=None, compute_loss_func=None,
    **overrides,
):  # fmt: skip
    """Trains a copy of `model` and returns the trainer (the synonym-aware methods with `tiny_synonyms()`)."""
    args_class = TrainingArguments if trainer_class is Trainer else AdversarialTrainingArguments
    args = arguments(tmp_path, args_class, **overrides)
    trainer = trainer_class(
        model=copy.deepcopy(model),
        args=args,
        train_dataset=dataset(rows),
        data_collator=collate,
        compute_loss_func=compute_loss_func,
        **synonyms_for(trainer_class, args),
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def tiny_synonyms(width=3):
    """A `SynonymTable` of the tiny models' vocabulary: token v >= 2 has the synonyms v + 1, ..., v + (v mod
    (width + 1)) below VOCAB (none when v is a multiple of width + 1); 0 and 1 (padding) have none."""
    ids = torch.arange(VOCAB)[:, None].repeat(1, 1 + width)
    counts = torch.zeros(VOCAB, dtype=torch.long)
    for v in range(2, VOCAB):
        found = [s for s in range(v + 1, v + 1 + v % (width + 1)) if s < VOCAB]
        ids[v, 1 : 1 + len(found)] = torch.tensor(found, dtype=torch.long)
        counts[v] = len(found)
    return SynonymTable(ids, counts)


def token_dirichlet(attack, hull):
    """A stand-in for DNE's Dirichlet sample that each position's neighbourhood fixes, whatever batch it is in (as
    `token_noise` is for SMART's noise): weights proportional to 1 + (7 * vertex + column) mod 5 over the vertices."""
    columns = torch.arange(hull.vertex_ids.shape[1])
    weights = torch.where(hull.vertex_mask, 1.0 + (7 * hull.vertex_ids + columns) % 5, 0.0)
    return weights / weights.sum(dim=-1, keepdim=True)


def synonyms_for(trainer_class, args):
    """The `synonyms` keyword of an `AdversarialTrainer` of a synonym-aware method: `tiny_synonyms()`."""
    if issubclass(trainer_class, AdversarialTrainer) and args.adv_method in SYNONYM_METHODS:
        return {"synonyms": tiny_synonyms()}
    return {}


def mean_loss(outputs, labels, num_items_in_batch=None):
    """A `compute_loss_func` that ignores the item count: the mean over its own micro-batch."""
    return torch.nn.functional.cross_entropy(outputs.logits, labels)


def max_weight_difference(model_a, model_b):
    state_b = model_b.state_dict()
    return max((value - state_b[name]).abs().max().item() for name, value in model_a.state_dict().items())


def token_noise(attack, passes):
    """A stand-in for SMART/R3F's random noise that each example's tokens fix, whatever batch it is in.

    Random noise drawn per micro-batch differs between 1 x 8 and 2 x 4 rows, so the gradient-accumulation and DDP
    equivalences of the noise-drawing methods are tested with this deterministic noise of the same scale.
    """
    ids = passes.inputs["input_ids"].float()  # (B, T)
    positions = torch.arange(ids.shape[1], dtype=torch.float32, device=ids.device)
    coordinates = torch.arange(1, passes.space.dim + 1, dtype=torch.float32, device=ids.device)
    noise = torch.sin(0.37 * ids[..., None] * coordinates + positions[None, :, None])  # (B, T, E)
    return attack.noise_scale * noise * passes.space.mask[..., None]


def outputs_at(model, inputs, delta, **forward_kwargs):
    """The model's output with `delta` added to its word-embedding output, through a hook local to the test."""
    handle = model.get_input_embeddings().register_forward_hook(lambda module, args, output: output + delta)
    try:
        return model(**inputs, **forward_kwargs)
    finally:
        handle.remove()
