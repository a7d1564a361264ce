"""`AdversarialTrainer`: `Trainer` whose training step adds adversarial passes on the word-embedding output."""

from accelerate.utils.memory import clear_device_cache
from transformers import Trainer
from transformers.utils import logging

from .adversarial_config import SYNONYM_METHODS, AdversarialTrainingArguments, steps_of
from .adversarial_metrics import AdversarialMetrics
from .attacks import build_attack
from .embedding_hook import EmbeddingOutputHook, input_embedding
from .gradient_sync import GradientSync
from .loss_normalisation import loss_divides_by_num_items
from .perturbed_passes import PerturbedPasses
from .recorded_state import unrecorded
from .robustness import WORD_ATTACKS
from .robustness.advglue import evaluate_advglue_with_trainer
from .robustness.embedding_pgd import check_robustness_arguments, metrics_of, robust_predictions
from .robustness.evaluation_mode import evaluation_mode
from .robustness.word_attack import attack_dataset, summarise
from .sequence_layout import check_packing_is_honoured, packed_sequences
from .synonym_table import synonym_table
from .unsupported import check_class_order, check_model, check_parallelism

__all__ = ["AdversarialTrainer"]

logger = logging.get_logger(__name__)


class AdversarialTrainer(Trainer):
    r"""A drop-in `Trainer` for adversarial fine-tuning: FGM, PGD, FreeLB, SMART, R3F, CreAT on the embedding output,
    ASCC and DNE within the convex hulls of each word's synonyms and A2T on synonym swaps (from the tokenizer,
    `processing_class`), AWP on the weights.

    Each training step runs the clean forward and backward, then the attack's passes with a perturbation added to
    the output of `model.get_input_embeddings()` by a forward hook that exists only inside `training_step`. The
    optimizer steps on grad L(e) + w * (adversarial term); see the attack classes for each update rule.

    Every backward of a micro-batch is scaled like its clean loss, so gradient accumulation gives the update of one
    large batch. Whether the loss (the model's or `compute_loss_func`'s) divides by `num_items_in_batch` is measured
    once on the first batch (`loss_normalisation`), not guessed from its signature; set `loss_is_scaled_for_ga` to
    True or False to skip the measurement. `args` must be `AdversarialTrainingArguments`; `adv_method="none"` is plain
    fine-tuning with that same loss scaling.

    `synonyms`: the `SynonymTable` (token id -> synonym token ids) of the synonym-aware methods (`ascc`, `dne`,
    `a2t`); by default `synonym_table(tokenizer)` of `processing_class`, from WordNet.
    """

    # None: measure whether the loss divides by `num_items_in_batch`. True/False: trust the user (as in transformers).
    loss_is_scaled_for_ga = None

    def __init__(self, model=None, args=None, *trainer_args, synonyms=None, **trainer_kwargs):
        if args is None:
            args = AdversarialTrainingArguments(output_dir="tmp_trainer")
        if not isinstance(args, AdversarialTrainingArguments):
            raise TypeError(f"`args` must be AdversarialTrainingArguments, got {type(args).__name__}.")
        check_class_order(type(self), AdversarialTrainer, Trainer)
        super().__init__(model, args, *trainer_args, **trainer_kwargs)
        check_parallelism(self)
        self._synonym_table = synonyms
        self._build_attack()
        self._loss_divides_by_num_items = None
        self._model_checked = False
        self._packing_checked = False
        self._adversarial_metrics = AdversarialMetrics()

    def _hp_search_setup(self, trial):
        """`Trainer.train` calls this first. A `hyperparameter_search` trial sets its values on `args` (transformers
        does so with `setattr`): here each trial starts from the `adv_*` values given at construction, takes its own,
        has its defaults re-resolved (PGD's alpha follows a searched eps) and validated, and gets its own attack."""
        searching = self.hp_search_backend is not None and trial is not None
        if searching:
            self.args.reset_adversarial_fields()
        super()._hp_search_setup(trial)
        if searching:
            self.args.resolve_adversarial_fields()
            self._build_attack()
            self._model_checked = False  # `model_init` builds a new model per trial, checked against the new args
        self._adversarial_metrics = AdversarialMetrics()

    def training_step(self, model, inputs, num_items_in_batch=None):
        model.train()
        if callable(getattr(self.optimizer, "train", None)):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        self._follow_argument_changes()
        loss_scale = self._loss_scale(model, inputs, num_items_in_batch)
        if self._loss_divides_by_num_items is False:
            # A per-micro-batch mean, scaled by 1/GA above. Without the count, the Trainer's `compute_loss` does not
            # multiply it by the number of processes either (it does so for losses normalised by the count).
            num_items_in_batch = None
        if self._adversarial_step_now():
            loss = self._adversarial_step(model, inputs, num_items_in_batch, loss_scale)
        else:
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch) * loss_scale
            self.accelerator.backward(loss)
            loss = loss.detach()
        empty_cache_steps = self.args.torch_empty_cache_steps
        if empty_cache_steps is not None and self.state.global_step % empty_cache_steps == 0:
            clear_device_cache()
        return loss

    def _adversarial_step(self, model, inputs, num_items_in_batch, loss_scale):
        """The clean pass and the attack's passes; returns the scaled clean loss."""
        unwrapped = self.accelerator.unwrap_model(model)
        if not self._model_checked:
            check_model(unwrapped, self.args)
            self._model_checked = True
        groups = packed_sequences(inputs)
        if groups is not None and not self._packing_checked:
            self._packing_checked = check_packing_is_honoured(unwrapped, inputs, groups)
        scale = self._epsilon_scale()
        attack = self.attack if scale == 1 else build_attack(self.args, scale, self._synonyms())
        with EmbeddingOutputHook(input_embedding(unwrapped)) as hook, GradientSync(self.accelerator, model) as sync:
            passes = PerturbedPasses(self, model, inputs, num_items_in_batch, loss_scale, hook, sync)
            clean_loss = attack.clean_pass(passes)
            with unrecorded(self):  # what `compute_loss` records (TRL's metrics) counts once, from the clean pass
                norms = attack.perturb(passes)
        if not passes.final_pass_done:
            raise RuntimeError(f"{type(attack).__name__} did not run a final parameter pass.")
        adversarial_loss = sum(passes.adversarial_losses) / len(passes.adversarial_losses)
        epsilon = None if self.args.adv_epsilon is None else self.args.adv_epsilon * scale
        self._adversarial_metrics.update(
            adversarial_loss, norms, passes.space.skipped, self.state.global_step, epsilon
        )
        return clean_loss

    def evaluate_robustness(
        self, eval_dataset=None, epsilons=(0.05, 0.1, 0.25), steps=10, norm="l2", alpha=None, metric_key_prefix="eval"
    ):
        """The task metric under a white-box PGD attack on the word-embedding output, per radius.

        For every radius in `epsilons` (per example, in `norm`), a `steps`-step PGD maximises each example's loss
        (step `alpha`, default 2.5 eps / steps) and the metric is computed on the perturbed predictions: e.g.
        `eval_robust_accuracy_eps0.5`. At eps = 0 it equals the clean metric exactly: the model is evaluated as
        `evaluate()` evaluates it (`evaluation_mode`: an optimizer's eval mode, full fp16/bf16 eval). Nothing else
        about the model changes: mode, gradients, `requires_grad` and hooks are restored or never touched.
        """
        check_robustness_arguments(epsilons, steps)
        dataset = self.eval_dataset if eval_dataset is None else eval_dataset
        if dataset is None or (hasattr(dataset, "__len__") and len(dataset) == 0):
            raise ValueError("`evaluate_robustness` needs a non-empty `eval_dataset`.")
        is_regression = getattr(self.model.config, "problem_type", None) == "regression" or (
            getattr(self.model.config, "num_labels", 2) == 1
        )
        metrics = {}
        with evaluation_mode(self) as model:
            for eps in epsilons:
                batches = (self._prepare_inputs(batch) for batch in self.get_eval_dataloader(dataset))
                gather = self.accelerator.gather_for_metrics
                logits, labels = robust_predictions(model, batches, eps, steps, norm, gather, alpha)
                for key, value in metrics_of(logits, labels, self.compute_metrics, is_regression).items():
                    metrics[f"{metric_key_prefix}_robust_{key}_eps{eps:g}"] = value
        self.log(dict(metrics))  # a copy: `log` adds the epoch to the dict it is given
        return metrics

    def evaluate_word_attack(
        self, eval_dataset, text_columns, method="pwws", max_examples=None, progress=False, metric_key_prefix="eval",
        **options,
    ):  # fmt: skip
        """A word-level attack on the first `max_examples` rows of `eval_dataset` (its `text_columns` and integer
        `label`), with the trainer's tokenizer (`processing_class`), on the model as `evaluate()` sees it.

        `method`: `pwws` (WordNet synonyms, Ren et al. 2019), `deepwordbug` (character edits, Gao et al. 2018) or
        `embedding_neighbour` (nearest neighbours in the model's embedding space); `options` go to its class
        (`max_words_fraction`, `max_queries`, `max_length`; DeepWordBug's `max_edit_distance`, `seed`; the
        neighbour attack's `neighbours`). Returns `(metrics, results)`: TextAttack's summary, prefixed
        (`eval_pwws_accuracy_under_attack`, ...) and logged, and one `AttackResult` per example. Raises ValueError for
        an unknown method or a trainer without a tokenizer.
        """
        if isinstance(text_columns, str) or not text_columns:
            raise ValueError(f"`text_columns` must list the text columns, e.g. ['sentence'], got {text_columns!r}.")
        if method not in WORD_ATTACKS:
            raise ValueError(f"`method` must be one of {sorted(WORD_ATTACKS)}, got {method!r}.")
        if self.processing_class is None:
            raise ValueError("A word-level attack needs the trainer's tokenizer: pass `processing_class`.")
        with evaluation_mode(self) as model:
            attack = WORD_ATTACKS[method](model, self.processing_class, **options)
            results = attack_dataset(attack, eval_dataset, text_columns, max_examples, progress)
        metrics = {f"{metric_key_prefix}_{key}": value for key, value in summarise(results, method).items()}
        self.log(dict(metrics))  # a copy: `log` adds the epoch to the dict it is given
        return metrics, results

    def evaluate_advglue(self, path, task, max_length=None, label_names=None, padding=False, metric_key_prefix="eval"):
        """Accuracy on AdvGLUE task `task` (file `path`): all, benign originals, per level and method, with
        per-example records; see `robustness.advglue`. Returns an `AdvGlueEvaluation`; its metrics are logged."""
        evaluation = evaluate_advglue_with_trainer(
            self, path, task, max_length, label_names, padding, metric_key_prefix
        )
        self.log(dict(evaluation.metrics))  # a copy: `log` adds the epoch to the dict it is given
        return evaluation

    def log(self, logs, *args, **kwargs):
        if "loss" in logs:  # a training log: add the adversarial statistics of the same steps
            logs = {**logs, **self._adversarial_metrics.pop(self.accelerator)}
        super().log(logs, *args, **kwargs)

    def _adversarial_step_now(self):
        return self.attack is not None and self.state.global_step >= self._first_adversarial_step()

    def _first_adversarial_step(self):
        """`adv_start_step` in optimizer steps: a fraction counts in this run's `max_steps`, rounded up."""
        return steps_of(self.args.adv_start_step, self.state.max_steps)

    def _epsilon_scale(self):
        """The share of eps (and of what follows it) this optimizer step uses: `adv_epsilon_warmup` = N steps from
        the first adversarial step take (t + 1) / N of it at their t-th step (t = 0..N-1), then all of it."""
        warmup = steps_of(self.args.adv_epsilon_warmup, self.state.max_steps)
        if warmup == 0:
            return 1.0
        return min(1.0, (self.state.global_step - self._first_adversarial_step() + 1) / warmup)

    def _build_attack(self):
        self.attack = build_attack(self.args, synonyms=self._synonyms())
        self._attack_built_from = self.args.adversarial_fields()

    def _synonyms(self):
        """The `SynonymTable` of the synonym-aware methods, else None: the one given as `synonyms`, or the
        tokenizer's (built once, cached on disk)."""
        if self.args.adv_method not in SYNONYM_METHODS:
            return None
        if self._synonym_table is not None:
            return self._synonym_table
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)  # a processor holds one
        if not callable(getattr(tokenizer, "get_vocab", None)):
            raise ValueError(
                f"`adv_method='{self.args.adv_method}'` substitutes WordNet synonyms from the tokenizer's "
                f"vocabulary, but the trainer has no tokenizer (`processing_class={self.processing_class!r}`). Pass "
                "`processing_class=tokenizer` to the trainer."
            )
        self._synonym_table = synonym_table(tokenizer)
        return self._synonym_table

    def _follow_argument_changes(self):
        """`args.adv_*` changed since the attack was built (a callback's own schedule, say): the changed values are
        taken as given, the defaults that follow them re-resolved and validated, and the attack rebuilt, from this
        micro-batch on. Never ignored: an invalid value raises as it would at construction."""
        changed = self.args.apply_adversarial_changes(self._attack_built_from)
        if changed:
            self._build_attack()
            self._model_checked = False  # a new method may need other support from the model
            described = ", ".join(f"`{name}` {before} -> {after}" for name, (before, after) in changed.items())
            logger.info(f"Step {self.state.global_step}: the attack now trains with {described}.")

    def _loss_scale(self, model, inputs, num_items_in_batch):
        """The factor that turns this micro-batch's loss into its share of the accumulated batch's loss.

        A loss divided by `num_items_in_batch` (counted over the accumulated batch) already is that share; a
        per-micro-batch mean (a model's, or a `compute_loss_func` that ignores the count) is divided by the number of
        micro-batches in this optimizer step, as the Trainer does for a model's mean.
        """
        if num_items_in_batch is None:
            return 1.0 / self._micro_batches_per_step()
        if self._loss_divides_by_num_items is None:
            decision = self.loss_is_scaled_for_ga
            if decision is None and not (self.model_accepts_loss_kwargs or self.compute_loss_func is not None):
                decision = False  # the forward cannot even receive num_items_in_batch
            if decision is None:
                # What the Trainer would assume, for a loss the probe cannot measure.
                assumption = self.model_accepts_loss_kwargs or self.compute_loss_func is not None
                decision = loss_divides_by_num_items(
                    self._compute_loss_in_context, model, inputs, num_items_in_batch, assumption
                )
            if decision is None:  # no labelled item in this micro-batch: its loss is 0 either way; ask again later
                return 1.0
            self._loss_divides_by_num_items = decision
            # The Trainer counts items, passes them to the model and multiplies the loss by the number of processes
            # under DDP only for models it believes normalise by the count; make that belief true.
            self.model_accepts_loss_kwargs = decision
        return 1.0 if self._loss_divides_by_num_items else 1.0 / self._micro_batches_per_step()

    def _micro_batches_per_step(self):
        # The last optimizer step of an epoch may have fewer micro-batches (transformers >= 4.50 tracks this).
        return getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)

    def _compute_loss_in_context(self, model, inputs, num_items_in_batch):
        # The probe's calls are not training passes: nothing `compute_loss` records (TRL's eval metrics) may stay.
        with self.compute_loss_context_manager(), unrecorded(self):
            return self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
