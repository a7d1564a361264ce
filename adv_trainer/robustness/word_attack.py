"""What every word-level attack shares: the example's words, the model's queries and their budget, the result.

An example is one or more text columns (a sentence, or MRPC's two), each split on whitespace into tokens; a token
with a letter or a digit is a word (punctuation, which GLUE's files separate by spaces, is not, as in TextAttack), and
every column may be attacked, as TextAttack does. A query is one model evaluation of one input. The constraints every
attack keeps (TextAttack's `RepeatModification` and `StopwordModification`): a word is changed at most once, and stop
words never. A subclass implements `search`, the algorithm of its paper.
"""

import dataclasses
import json
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ..vocabulary import STOP_WORDS

__all__ = [
    "AttackResult",
    "QueryBudgetSpent",
    "WordAttack",
    "WordExample",
    "attack_dataset",
    "is_word",
    "summarise",
    "write_examples",
    "write_records",
]


@dataclass
class AttackResult:
    label: int
    original_prediction: int
    adversarial_prediction: int
    words: int
    perturbed_words: int
    queries: int
    original_text: str
    adversarial_text: str

    @property
    def status(self):
        if self.original_prediction != self.label:
            return "skipped"
        return "succeeded" if self.adversarial_prediction != self.label else "failed"


def is_word(token):
    """Whether a whitespace-separated token is a word: it has a letter or a digit (`,` and `--` are not)."""
    return any(character.isalnum() for character in token)


def word_count(columns):
    return sum(is_word(token) for column in columns for token in column)


class QueryBudgetSpent(Exception):
    """Raised by `WordAttack.probabilities` when a batch of variants would exceed `max_queries`."""


@dataclass
class WordExample:
    """The state of one example under attack; `search` moves `current` and `prediction` as it goes."""

    words: list  # the original words, one list per text column
    label: int
    current: list  # the words now
    probability: float  # P(label | current)
    prediction: int  # argmax P(. | current)
    queries: int = 0
    changed: set = field(default_factory=set)  # (column, index) of the words changed so far

    def positions(self):
        """(column, index) of every word that may change: a word, not a stop word, not changed yet."""
        return [
            (column, index)
            for column, words in enumerate(self.words)
            for index, word in enumerate(words)
            if is_word(word) and word.lower() not in STOP_WORDS and (column, index) not in self.changed
        ]

    def word(self, position):
        column, index = position
        return self.current[column][index]

    def replaced(self, position, word):
        """`current` with the word at `position` replaced."""
        column, index = position
        words = [list(c) for c in self.current]
        words[column][index] = word
        return words


class WordAttack:
    """Attacks a sequence classifier one example at a time; a subclass's `search` is the algorithm.

    Args:
        model: a `...ForSequenceClassification` model; its mode is restored after each example.
        tokenizer: its fast tokenizer.
        max_words_fraction: the most words one example may have changed, as a fraction of its words (at least one);
            1 (the default of the published recipes) is no budget.
        max_queries: the most model evaluations per example; None (the published recipes') is no budget.
        max_length: inputs are truncated to this many tokens, as in training.
        batch_size: variants scored in one forward.
    """

    name = None

    def __init__(self, model, tokenizer, max_words_fraction=1.0, max_queries=None, max_length=128, batch_size=64):
        if not 0 < max_words_fraction <= 1:
            raise ValueError(f"`max_words_fraction` must be in (0, 1], got {max_words_fraction}.")
        if max_queries is not None and max_queries < 1:
            raise ValueError(f"`max_queries` must be >= 1 or None (no budget), got {max_queries}.")
        if getattr(model.config, "num_labels", 2) < 2:
            raise ValueError(f"{type(self).__name__} needs a classification model (a regression has no label).")
        self.model, self.tokenizer = model, tokenizer
        self.max_words_fraction, self.max_queries = max_words_fraction, max_queries
        self.max_length, self.batch_size = max_length, batch_size

    def attack(self, texts, label):
        """Attacks one example given as its text column(s); returns an `AttackResult`."""
        words = [text.split() for text in texts]
        was_training = self.model.training
        self.model.eval()
        try:
            probabilities = self._forward([words])[0]
            prediction = int(probabilities.argmax())
            example = WordExample(words, label, words, float(probabilities[label]), prediction, queries=1)
            if prediction == label:
                try:
                    self.search(example)
                except QueryBudgetSpent:
                    pass  # the attack stops where the budget ran out
        finally:
            self.model.train(was_training)
        return AttackResult(
            label=label,
            original_prediction=prediction,
            adversarial_prediction=example.prediction,
            words=word_count(words),
            perturbed_words=len(example.changed),
            queries=example.queries,
            original_text=" ||| ".join(" ".join(column) for column in words),
            adversarial_text=" ||| ".join(" ".join(column) for column in example.current),
        )

    def search(self, example):
        """Changes `example` until its prediction flips or a budget is spent (the paper's algorithm)."""
        raise NotImplementedError

    def word_budget(self, example):
        """The most words `example` may have changed."""
        total = word_count(example.words)
        return total if self.max_words_fraction == 1 else max(1, int(self.max_words_fraction * total))

    def probabilities(self, example, variants):
        """P(. | variant) `(N, C)` of `variants` (lists of words per column), counted as N queries of `example`.
        Raises `QueryBudgetSpent` before querying past `max_queries`."""
        if self.max_queries is not None and example.queries + len(variants) > self.max_queries:
            raise QueryBudgetSpent
        example.queries += len(variants)
        return torch.cat(
            [self._forward(variants[i : i + self.batch_size]) for i in range(0, len(variants), self.batch_size)]
        )

    def unknown_word_drops(self, example, positions):
        """P(y | current) - P(y | current with the word at each of `positions` -> unk), `(W,)`: PWWS's word saliency,
        DeepWordBug's Replace-1 score. One query per position."""
        unknown = [example.replaced(position, self.tokenizer.unk_token) for position in positions]
        return example.probability - self.probabilities(example, unknown)[:, example.label]

    def accept(self, example, position, word, probabilities):
        """Moves `example` to its current words with `word` at `position`, whose P(. | ...) is `probabilities`."""
        example.current = example.replaced(position, word)
        example.changed.add(position)
        example.probability = float(probabilities[example.label])
        example.prediction = int(probabilities.argmax())

    def encode(self, batch_of_words):
        columns = [[variant[c] for variant in batch_of_words] for c in range(len(batch_of_words[0]))]
        return self.tokenizer(
            *columns, is_split_into_words=True, truncation=True, max_length=self.max_length, padding=True,
            return_tensors="pt",
        )  # fmt: skip

    def _forward(self, batch_of_words):
        encoded = self.encode(batch_of_words).to(self.model.device)
        with torch.no_grad():
            return self.model(**encoded).logits.float().softmax(dim=-1).cpu()  # (N, C)


def summarise(results, prefix="attack"):
    """TextAttack's summary, its keys prefixed with `prefix`: accuracy before and under attack, success rate, the
    perturbed words' share of the successful examples' words, queries per attacked example."""
    if not results:
        raise ValueError("No example was attacked: the dataset is empty.")
    statuses = [r.status for r in results]
    attacked = [r for r in results if r.status != "skipped"]
    succeeded = [r for r in results if r.status == "succeeded"]
    return {
        f"{prefix}_examples": len(results),
        f"{prefix}_original_accuracy": len(attacked) / len(results),
        f"{prefix}_accuracy_under_attack": statuses.count("failed") / len(results),
        f"{prefix}_success_rate": len(succeeded) / len(attacked) if attacked else 0.0,
        f"{prefix}_perturbed_word_percentage": (
            100 * sum(r.perturbed_words / r.words for r in succeeded) / len(succeeded) if succeeded else 0.0
        ),
        f"{prefix}_average_queries": sum(r.queries for r in attacked) / len(attacked) if attacked else 0.0,
    }


def attack_dataset(attack, dataset, text_columns, max_examples=None, progress=False):
    """Attacks the first `max_examples` rows of a dataset with `text_columns` and integer `label`s; `progress` shows a
    progress bar (tqdm), one tick per example."""
    count = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    description = f"{attack.name} attack"
    rows = tqdm(dataset.select(range(count)), desc=description, unit="example", disable=not progress)
    return [attack.attack([row[column] for column in text_columns], row["label"]) for row in rows]


def write_examples(path, results, label_names=None, limit=25):
    """Writes up to `limit` successful attacks for a person to read: labels, then original and adversarial text."""
    name = (lambda i: label_names[i]) if label_names else str
    with open(path, "w", encoding="utf-8") as f:
        for result in [r for r in results if r.status == "succeeded"][:limit]:
            f.write(f"{name(result.label)} -> {name(result.adversarial_prediction)} ")
            f.write(f"({result.perturbed_words} of {result.words} words, {result.queries} queries)\n")
            f.write(f"  original:    {result.original_text}\n  adversarial: {result.adversarial_text}\n\n")


def write_records(path, results):
    """Writes one JSON line per attacked example, in dataset order: the `AttackResult` fields and its status."""
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({**dataclasses.asdict(r), "status": r.status}) + "\n" for r in results)
