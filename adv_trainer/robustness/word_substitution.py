"""A gradient-guided greedy word-substitution attack (the HotFlip / TextFooler family) that needs only the model and
its tokenizer: no word vectors, no sentence encoder, no download.

For an example the model classifies correctly:
1. Words that are one whole-word token (alphabetic, not a special token, not a stop word) may be replaced.
2. They are ranked by saliency: the norm of the gradient of the gold-label loss at their embedding.
3. In that order, each word is tried against its nearest whole-word tokens in the model's own input-embedding space
   (cosine); the substitution that most lowers the gold-label probability is kept if it lowers it at all.
4. The attack stops when the prediction flips (success), or when the word budget (a fraction of the words, at least
   one) or the query budget (model evaluations of one input) is spent (failure).

Neighbours in an embedding space can be antonyms ("good" and "bad" sit close in many models), so these substitutions
need not preserve meaning: the numbers are not comparable with TextFooler's, which uses synonym vectors. Tested with
WordPiece tokenizers (BERT, MiniLM); a word is a whitespace-separated unit of the input text.
"""

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..embedding_hook import EmbeddingOutputHook, input_embedding

__all__ = ["AttackResult", "WordSubstitutionAttack", "attack_dataset", "summarise", "write_examples"]

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves""".split()
)


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


class WordSubstitutionAttack:
    """Attacks a sequence classifier one example at a time.

    Args:
        model: a `...ForSequenceClassification` model; its mode is restored after each example.
        tokenizer: its fast tokenizer.
        max_words_fraction: the most words one example may have replaced, as a fraction (at least one word).
        max_queries: the most model evaluations per example.
        neighbours: how many nearest whole-word tokens are tried per word.
        max_length: inputs are truncated to this many tokens, as in training.
    """

    def __init__(self, model, tokenizer, max_words_fraction=0.2, max_queries=300, neighbours=10, max_length=128):
        if not 0 < max_words_fraction <= 1:
            raise ValueError(f"`max_words_fraction` must be in (0, 1], got {max_words_fraction}.")
        if max_queries < 1 or neighbours < 1:
            raise ValueError(f"`max_queries` and `neighbours` must be >= 1, got {max_queries} and {neighbours}.")
        if getattr(model.config, "num_labels", 2) < 2:
            raise ValueError("The word-substitution attack needs a classification model (a regression has no label).")
        self.model, self.tokenizer = model, tokenizer
        self.max_words_fraction, self.max_queries = max_words_fraction, max_queries
        self.neighbours, self.max_length = neighbours, max_length
        self.substitutes = self._whole_word_tokens()  # (S,) token ids that may replace or be replaced
        weight = input_embedding(model).weight.detach()[self.substitutes].float()
        self.unit_embeddings = weight / weight.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (S, E)
        self.substitute_index = {token: i for i, token in enumerate(self.substitutes.tolist())}

    def attack(self, texts, label):
        """Attacks one example given as its text column(s); returns an `AttackResult`."""
        words = [text.split() for text in texts]
        was_training = self.model.training
        self.model.eval()
        try:
            return self._attack(words, label)
        finally:
            self.model.train(was_training)

    def _attack(self, words, label):
        probabilities, queries = self._probabilities([words]), 1
        prediction = int(probabilities[0].argmax())
        total_words = sum(len(column) for column in words)
        result = {"label": label, "original_prediction": prediction, "words": total_words}
        result["original_text"] = " ||| ".join(" ".join(column) for column in words)
        current, current_probability, perturbed = words, float(probabilities[0, label]), 0
        if prediction == label:
            budget = max(1, int(self.max_words_fraction * total_words))
            for column, index, token in self._ranked_words(words, label):
                if perturbed >= budget or queries >= self.max_queries:
                    break
                candidates = self._nearest(token)[: self.max_queries - queries]
                variants = [_replace(current, column, index, self._word(c)) for c in candidates]
                scores = self._probabilities(variants)
                queries += len(variants)
                best = int(scores[:, label].argmin())
                if float(scores[best, label]) < current_probability:
                    current, current_probability, perturbed = variants[best], float(scores[best, label]), perturbed + 1
                    prediction = int(scores[best].argmax())
                    if prediction != label:
                        break
        adversarial_text = " ||| ".join(" ".join(column) for column in current)
        return AttackResult(
            adversarial_prediction=prediction, perturbed_words=perturbed, queries=queries,
            adversarial_text=adversarial_text, **result,
        )  # fmt: skip

    def _encode(self, batch_of_words):
        columns = [[variant[c] for variant in batch_of_words] for c in range(len(batch_of_words[0]))]
        return self.tokenizer(
            *columns, is_split_into_words=True, truncation=True, max_length=self.max_length, padding=True,
            return_tensors="pt",
        )  # fmt: skip

    def _probabilities(self, batch_of_words):
        encoded = self._encode(batch_of_words).to(self.model.device)
        with torch.no_grad():
            return self.model(**encoded).logits.float().softmax(dim=-1).cpu()  # (N, C)

    def _ranked_words(self, words, label):
        """(column, word index, token id) of the replaceable words, most salient first."""
        encoded = self._encode([words])
        with EmbeddingOutputHook(input_embedding(self.model)) as hook:
            hook.start_pass(None)
            with torch.enable_grad():
                logits = self.model(**encoded.to(self.model.device)).logits
                loss = torch.nn.functional.cross_entropy(logits, torch.tensor([label], device=logits.device))
                (gradient,) = torch.autograd.grad(loss, hook.delta)
        saliency = gradient[0].norm(dim=-1).cpu()  # (T,)
        tokens_of = {}
        for position, (sequence, word) in enumerate(zip(encoded.sequence_ids(0), encoded.word_ids(0), strict=True)):
            if word is not None:
                tokens_of.setdefault((sequence, word), []).append(position)
        ranked = []
        for (column, index), positions in tokens_of.items():
            token = int(encoded["input_ids"][0, positions[0]])
            if len(positions) == 1 and token in self.substitute_index:
                ranked.append((float(saliency[positions[0]]), column, index, token))
        return [(column, index, token) for _, column, index, token in sorted(ranked, reverse=True)]

    def _nearest(self, token):
        similarity = self.unit_embeddings @ self.unit_embeddings[self.substitute_index[token]]  # (S,)
        order = similarity.topk(min(self.neighbours + 1, len(similarity))).indices.tolist()
        return [int(self.substitutes[i]) for i in order if int(self.substitutes[i]) != token][: self.neighbours]

    def _word(self, token):
        return self.tokenizer.convert_tokens_to_string([self.tokenizer.convert_ids_to_tokens(token)]).strip()

    def _whole_word_tokens(self):
        """Token ids that are a whole alphabetic word on their own and not a stop word or special token."""
        special = set(self.tokenizer.all_special_ids)
        ids, strings = [], []
        for token, i in self.tokenizer.get_vocab().items():
            string = self.tokenizer.convert_tokens_to_string([token]).strip()
            if i not in special and string.isalpha() and string.lower() not in STOP_WORDS:
                ids.append(i)
                strings.append(string)
        encoded = self.tokenizer(strings, add_special_tokens=False)["input_ids"]
        return torch.tensor(sorted(i for i, tokens in zip(ids, encoded, strict=True) if tokens == [i]))


def _replace(words, column, index, word):
    replaced = [list(c) for c in words]
    replaced[column][index] = word
    return replaced


def summarise(results):
    """TextAttack's summary: accuracy before and under attack, success rate, perturbed words, queries."""
    if not results:
        raise ValueError("No example was attacked: the dataset is empty.")
    statuses = [r.status for r in results]
    attacked = [r for r in results if r.status != "skipped"]
    succeeded = [r for r in results if r.status == "succeeded"]
    return {
        "attack_examples": len(results),
        "attack_original_accuracy": len(attacked) / len(results),
        "attack_accuracy_under_attack": statuses.count("failed") / len(results),
        "attack_success_rate": len(succeeded) / len(attacked) if attacked else 0.0,
        "attack_perturbed_word_percentage": (
            100 * sum(r.perturbed_words / r.words for r in succeeded) / len(succeeded) if succeeded else 0.0
        ),
        "attack_average_queries": sum(r.queries for r in attacked) / len(attacked) if attacked else 0.0,
    }


def attack_dataset(attack, dataset, text_columns, max_examples=None, progress=False):
    """Attacks the first `max_examples` rows of a dataset with `text_columns` and integer `label`s; `progress` shows a
    progress bar (tqdm), one tick per example."""
    count = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    rows = tqdm(dataset.select(range(count)), desc="Word-substitution attack", unit="example", disable=not progress)
    return [attack.attack([row[column] for column in text_columns], row["label"]) for row in rows]


def write_examples(path, results, label_names=None, limit=25):
    """Writes up to `limit` successful attacks for a person to read: labels, then original and adversarial text."""
    name = (lambda i: label_names[i]) if label_names else str
    with open(path, "w", encoding="utf-8") as f:
        for result in [r for r in results if r.status == "succeeded"][:limit]:
            f.write(f"{name(result.label)} -> {name(result.adversarial_prediction)} ")
            f.write(f"({result.perturbed_words} of {result.words} words, {result.queries} queries)\n")
            f.write(f"  original:    {result.original_text}\n  adversarial: {result.adversarial_text}\n\n")
