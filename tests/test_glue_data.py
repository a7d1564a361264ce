"""Reading GLUE in its original layout: the real files beside the repository and fixtures for the other tasks."""

import hashlib
from collections import Counter

import pytest

from adv_trainer.glue import TASKS, find_glue_dir, get_task, load_glue
from adv_trainer.glue.glue_tsv import read_glue_dir
from tests.glue_files import shared_glue, write_fixture_glue, write_tsv

# From ../shared/glue/README.md: rows, label counts (hub label ids) and sha256 of each file.
REAL_FILES = [
    ("sst2", "train", 67349, {0: 29780, 1: 37569}, "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
    ("sst2", "validation", 872, {0: 428, 1: 444}, "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
    ("sst2", "test", 1821, {-1: 1821}, "69a938605609b3e6663b4487918fe1565eb293734e6e520d0366d1d412fd2a13"),
    ("cola", "train", 8551, {0: 2528, 1: 6023}, "cb368ebeb9f27d7ad03720d27ddc95687a311bdb100781a2fe59a5f5b1bc0624"),
    ("cola", "validation", 1043, {0: 322, 1: 721}, "8c013e21dc39957cac37378d87bebe225b694a0d5fe13eded66c2856628833fd"),
    ("cola", "test", 1063, {-1: 1063}, "3b4df85f7a9a0633574b38d181e18090ac961a24b18fb6bcd74999ddea8ad0b8"),
    ("mrpc", "train", 3668, {0: 1194, 1: 2474}, "69abcedee3cf738c6ce58d772e43e1b7cdf5b4edee4aceda459c0d9f4e5599f3"),
    ("mrpc", "validation", 408, {0: 129, 1: 279}, "9e8f284788040f7c9ecde2e1b3c07237c756f926bd9ef8548ef5d34b56f69f17"),
    ("mrpc", "test", 1725, {-1: 1725}, "aee460ceda833926b8ab2ad952d399f5cf8bc9335cff19afcac03dc449558622"),
    (
        "qnli",
        "validation",
        5463,
        {0: 2702, 1: 2761},
        "ac19409dcb04631eaaa094bdebdcf621086bc352503dfb6a1a648b614986f4fd",
    ),
    ("qnli", "test", 5463, {-1: 5463}, "6d856264e292fa7a7bc7b8e182efa1454ffd9532733c12ad813017dd5b377a5a"),
    ("wnli", "train", 635, {0: 323, 1: 312}, "9a88e9d54b6861cc796a088e9acf4f5f65064a9ef65ae6fa7a688b28391e5c9a"),
    ("wnli", "validation", 71, {0: 40, 1: 31}, "cba00490596dd14be8cf53b4f53bb744abe3a7b89f81ab210528d80225338ed5"),
    ("wnli", "test", 146, {-1: 146}, "ff0296817e235bf6f7a230c5f6781bd6ee228a45445f6510831fdef6f2a04766"),
    ("ax", "test", 1104, {-1: 1104}, "0e13510b1bb14436ff7e2ee82338f0efb0133ecf2e73507a697dc210db3f05fd"),
]


@pytest.mark.parametrize("task,split,rows,labels,sha256", REAL_FILES, ids=[f"{t}-{s}" for t, s, *_ in REAL_FILES])
def test_real_glue_files_read_with_the_published_sizes_and_labels(task, split, rows, labels, sha256):
    glue = shared_glue()
    task = get_task(task)
    path = glue / task.directory / task.tsv_files[split]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    dataset = read_glue_dir(task, glue, [split])[split]
    assert len(dataset) == rows
    assert dict(Counter(dataset["label"])) == labels
    assert dataset.column_names == ["idx", *task.text_columns, "label"]
    assert all(dataset[0][column].strip() for column in task.text_columns)


def test_real_files_keep_quotes_and_strip_mrpc_byte_order_mark():
    glue = shared_glue()
    mrpc = read_glue_dir(get_task("mrpc"), glue, ["train"])["train"]
    assert mrpc[0]["sentence1"].startswith("Amrozi accused his brother")
    assert '" the witness "' in mrpc[0]["sentence1"]  # QUOTE_NONE keeps quote characters as text
    assert read_glue_dir(get_task("sst2"), glue, ["test"])["test"]["idx"][:3] == [0, 1, 2]


@pytest.fixture
def fixture_glue(tmp_path):
    return write_fixture_glue(tmp_path / "glue")


def test_stsb_scores_are_floats_and_test_scores_are_minus_one(fixture_glue):
    data = read_glue_dir(get_task("stsb"), fixture_glue, ["train", "validation", "test"])
    assert data["train"]["label"][:3] == pytest.approx([0.0, 0.8, 1.6])
    assert set(data["test"]["label"]) == {-1}
    assert data["train"].features["label"].dtype == "float32"


def test_mnli_columns_are_found_by_header_name_in_train_and_dev(fixture_glue):
    splits = ["train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"]
    data = read_glue_dir(get_task("mnli"), fixture_glue, splits)
    assert data["train"]["label"][:3] == [0, 1, 2]  # entailment, neutral, contradiction
    assert data["validation_mismatched"]["label"][:3] == [2, 1, 0]
    assert data["test_matched"]["idx"][:2] == [100, 101]
    assert data["validation_matched"][0]["premise"] == 'First "sentence" number 0 .'
    assert set(data["test_mismatched"]["label"]) == {-1}


@pytest.mark.parametrize(
    "task,split,labels", [("qqp", "train", [0, 1, 0]), ("rte", "validation", [1, 0, 1]), ("rte", "test", [-1] * 3)]
)
def test_label_names_and_ids_become_hub_ids(fixture_glue, task, split, labels):
    data = read_glue_dir(get_task(task), fixture_glue, [split])[split]
    assert data["label"][:3] == labels
    assert data.column_names == ["idx", *get_task(task).text_columns, "label"]


def test_diagnostic_set_reads_as_unlabelled_premise_hypothesis_pairs(fixture_glue):
    data = read_glue_dir(get_task("ax"), fixture_glue, ["test"])["test"]
    assert data.column_names == ["idx", "premise", "hypothesis", "label"] and set(data["label"]) == {-1}


def test_every_task_has_a_layout_for_each_split_it_uses():
    for task in TASKS.values():
        assert set(task.eval_splits) | set(task.submissions) <= set(task.tsv_files)
        assert len(task.text_columns) == len(task.tsv_columns)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match=r"`task_name` must be one of \['ax', 'cola'.*got 'sts'"):
        get_task("sts")


def test_missing_task_files_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"has no RTE/train.tsv for task 'rte'.*--glue_dir"):
        read_glue_dir(get_task("rte"), tmp_path, ["train"])


@pytest.mark.parametrize(
    "content,message",
    [
        ([], "is empty"),
        ([["index", "sentence1", "sentence2", "label"]], "has no rows of data"),
        (
            [["index", "premise", "hypothesis", "label"], [0, "a", "b", "entailment"]],
            r"lacks the columns \['sentence1'",
        ),
        (
            [["index", "sentence1", "sentence2", "label"], [0, "a", "b", "maybe"]],
            "line 2: label 'maybe' is not one of",
        ),
        ([["index", "sentence1", "sentence2", "label"], [0, "a", "b", "2"]], "label '2' is not one of"),
        ([["index", "sentence1", "sentence2", "label"], [0, "a"]], "line 2: expected 4 tab-separated columns, got 2"),
    ],
    ids=["empty", "header-only", "missing-columns", "unknown-label", "label-out-of-range", "short-row"],
)
def test_bad_files_are_refused_with_the_file_and_line(tmp_path, content, message):
    write_tsv(tmp_path / "RTE" / "train.tsv", content) if content else (tmp_path / "RTE").mkdir()
    if not content:
        (tmp_path / "RTE" / "train.tsv").write_text("")
    with pytest.raises(ValueError, match=message):
        read_glue_dir(get_task("rte"), tmp_path, ["train"])


def test_stsb_score_outside_zero_to_five_is_refused(tmp_path):
    header = [
        "index",
        "genre",
        "filename",
        "year",
        "old_index",
        "source1",
        "source2",
        "sentence1",
        "sentence2",
        "score",
    ]
    write_tsv(tmp_path / "STS-B" / "train.tsv", [header, [0, "g", "f", "y", 0, "s", "s", "a", "b", "7.5"]])
    with pytest.raises(ValueError, match=r"STS-B scores lie in \[0, 5\], got '7.5'"):
        read_glue_dir(get_task("stsb"), tmp_path, ["train"])


def test_glue_dir_precedence_flag_then_environment_then_fallback_then_hub(tmp_path, monkeypatch, fixture_glue):
    task = get_task("rte")
    monkeypatch.delenv("GLUE_DIR", raising=False)
    assert find_glue_dir(task, ["train"], "/flag", fixture_glue) == "/flag"
    assert find_glue_dir(task, ["train"], None, fixture_glue) == str(fixture_glue)
    assert find_glue_dir(task, ["train"], None, tmp_path / "nowhere") is None
    assert find_glue_dir(get_task("cola"), ["train"], None, fixture_glue) is None  # the fallback lacks CoLA
    monkeypatch.setenv("GLUE_DIR", "/environment")
    assert find_glue_dir(task, ["train"], None, fixture_glue) == "/environment"


def test_hub_failure_says_how_to_use_local_files(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=r"(?s)Could not load GLUE task 'wnli' from the hub.*point `--glue_dir`"):
        load_glue(get_task("wnli"), ["train"], glue_dir=None)
