"""Run by torchrun from test_advglue.py: AdvGLUE evaluation of a saved model in each process; rank 0 writes the
gathered metrics and records as JSON. Arguments: the AdvGLUE file, the model directory, the output file."""

import json
import pathlib
import sys

from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adv_trainer import AdversarialTrainer, AdversarialTrainingArguments


def main():
    advglue_file, model_dir, out = sys.argv[1:4]
    args = AdversarialTrainingArguments(
        output_dir=str(pathlib.Path(out).parent / "trainer"), per_device_eval_batch_size=4, use_cpu=True,
        ddp_backend="gloo", report_to="none", disable_tqdm=True,
    )  # fmt: skip
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    trainer = AdversarialTrainer(model=model, args=args, processing_class=AutoTokenizer.from_pretrained(model_dir))
    evaluation = trainer.evaluate_advglue(advglue_file, "mnli")
    if trainer.is_world_process_zero():
        result = {"world_size": args.world_size, "metrics": evaluation.metrics, "records": evaluation.records}
        pathlib.Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
