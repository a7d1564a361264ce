"""The real data beside the repository (GLUE, WordNet), and small files in the original GLUE layout for the other
tasks."""

import os
from pathlib import Path

import pytest

SHARED_GLUE = Path(__file__).resolve().parent.parent.parent / "shared" / "glue"
SHARED_NLTK_DATA = SHARED_GLUE.parent / "nltk_data"


def shared_glue():
    """GLUE_DIR when set, else `../shared/glue`; skips the test when it is absent, except under CI, where its absence
    fails the run."""
    glue = Path(os.environ["GLUE_DIR"]) if os.environ.get("GLUE_DIR") else SHARED_GLUE
    if glue.is_dir():
        return glue
    message = f"the real GLUE files are not at {glue} (GLUE_DIR, else ../shared/glue)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the real-data tests.")
    pytest.skip(message)


def shared_nltk_data():
    """NLTK_DATA when set, else `../shared/nltk_data` (WordNet 3.0 in NLTK's layout); skips the test when it holds
    no WordNet, except under CI, where its absence fails the run."""
    # Absolute: a test that changes directory (a docs example) must still find it.
    folder = (Path(os.environ["NLTK_DATA"]) if os.environ.get("NLTK_DATA") else SHARED_NLTK_DATA).resolve()
    if (folder / "corpora" / "wordnet").is_dir():
        return folder
    message = f"WordNet is not at {folder}/corpora/wordnet (NLTK_DATA, else ../shared/nltk_data)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the WordNet tests.")
    pytest.skip(message)


def write_tsv(path, rows, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join("\t".join(str(cell) for cell in row) for row in rows) + "\n"
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")


def _pairs(n, labels):
    return [
        (f'First "sentence" number {i} .', f"Second sentence {i} , it's quoted '", labels[i % len(labels)])
        for i in range(n)
    ]


def write_fixture_glue(root, n=8):
    """Writes STS-B, QQP, MNLI, RTE and the diagnostic set in the original layout: headers, label columns, quotes."""
    stsb = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"]
    for split in ("train", "dev", "test"):
        rows = [
            [i, "main-news", "f", "2012", i, "s1", "s2", a, b, f"{(i % 6) * 0.8:.3f}"]
            for i, (a, b, _) in enumerate(_pairs(n, [0]))
        ]
        write_tsv(
            root / "STS-B" / f"{split}.tsv",
            [stsb[: 9 if split == "test" else 10]] + [r[: 9 if split == "test" else 10] for r in rows],
        )
    qqp = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    write_tsv(
        root / "QQP" / "train.tsv",
        [qqp] + [[i, 2 * i, 2 * i + 1, a, b, y] for i, (a, b, y) in enumerate(_pairs(n, [0, 1]))],
    )
    write_tsv(
        root / "QQP" / "dev.tsv",
        [qqp] + [[i, 2 * i, 2 * i + 1, a, b, y] for i, (a, b, y) in enumerate(_pairs(n, [1, 0]))],
    )
    write_tsv(
        root / "QQP" / "test.tsv",
        [["id", "question1", "question2"]] + [[i, a, b] for i, (a, b, _) in enumerate(_pairs(n, [0]))],
    )
    nli = ["entailment", "neutral", "contradiction"]
    head = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
            "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]  # fmt: skip
    train = [head + ["label1", "gold_label"]] + [
        [i, i, i, "g", "(", "(", "(", "(", a, b, y, y] for i, (a, b, y) in enumerate(_pairs(n, nli))
    ]
    write_tsv(root / "MNLI" / "train.tsv", train)
    dev_head = head + ["label1", "label2", "label3", "label4", "label5", "gold_label"]
    for name, labels in (("dev_matched", nli), ("dev_mismatched", nli[::-1])):
        rows = [
            [i, i, i, "g", "(", "(", "(", "(", a, b, y, y, y, y, y, y] for i, (a, b, y) in enumerate(_pairs(n, labels))
        ]
        write_tsv(root / "MNLI" / f"{name}.tsv", [dev_head] + rows)
    for name in ("test_matched", "test_mismatched"):
        write_tsv(
            root / "MNLI" / f"{name}.tsv",
            [head] + [[100 + i, i, i, "g", "(", "(", "(", "(", a, b] for i, (a, b, _) in enumerate(_pairs(n, [0]))],
        )
    rte = ["index", "sentence1", "sentence2", "label"]
    for split, labels in (("train", ["entailment", "not_entailment"]), ("dev", ["not_entailment", "entailment"])):
        write_tsv(
            root / "RTE" / f"{split}.tsv", [rte] + [[i, a, b, y] for i, (a, b, y) in enumerate(_pairs(n, labels))]
        )
    write_tsv(root / "RTE" / "test.tsv", [rte[:3]] + [[i, a, b] for i, (a, b, _) in enumerate(_pairs(n, [0]))])
    write_tsv(
        root / "diagnostic" / "diagnostic.tsv", [rte[:3]] + [[i, a, b] for i, (a, b, _) in enumerate(_pairs(n, [0]))]
    )
    return root
