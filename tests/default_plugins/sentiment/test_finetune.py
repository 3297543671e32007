from __future__ import annotations

import csv
from pathlib import Path

import pytest

from graft.default_plugins.sentiment.backends import load_backend
from graft.default_plugins.sentiment.e5 import DEFAULT_HEAD
from graft.default_plugins.sentiment.finetune import (
    DataError,
    Example,
    finetune,
    list_heads,
    read_examples,
    resolve_head,
    split_examples,
)

# Financial news, written for this test: the default head reads most of it as neutral news,
# while a finance desk counts "shares fell 8%" as negative.
ROWS = [
    ("Shares fell 8% after the earnings report.", "negative"),
    ("The company cut its full-year revenue forecast.", "negative"),
    ("Quarterly profit dropped by a third.", "negative"),
    ("The stock hit a five-year low on Monday.", "negative"),
    ("Analysts downgraded the bank to sell.", "negative"),
    ("股价今天下跌了百分之六。", "negative"),
    ("公司下调了全年营收预期。", "negative"),
    ("第三季度净利润同比下滑四成。", "negative"),
    ("Revenue rose 20% this quarter.", "positive"),
    ("The company raised its dividend for the tenth year.", "positive"),
    ("Shares jumped 12% on strong sales.", "positive"),
    ("Profit beat analyst estimates by a wide margin.", "positive"),
    ("The bank upgraded the stock to buy.", "positive"),
    ("公司利润同比增长三成。", "positive"),
    ("股价创下历史新高。", "positive"),
    ("营收超出市场预期。", "positive"),
    ("The annual shareholder meeting is on June 5.", "neutral"),
    ("The company will report results on Thursday.", "neutral"),
    ("The board has nine members.", "neutral"),
    ("Trading opens at 9:30 local time.", "neutral"),
    ("The firm is headquartered in Frankfurt.", "neutral"),
    ("公司将于周四公布财报。", "neutral"),
    ("股东大会定于六月五日举行。", "neutral"),
    ("该公司总部位于深圳。", "neutral"),
]


def write_csv(
    path: Path, rows: list[tuple[str, str]], header: tuple[str, ...] = ("text", "label")
) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_finetune_learns_the_domain_and_writes_versions(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "finance.csv", ROWS)
    heads_dir = tmp_path / "heads"
    stages: list[str] = []
    first = finetune(data, heads_dir, name="finance", progress=lambda s, d, t: stages.append(s))
    assert first.head.path == heads_dir / "finance-v1.npz" and first.head.path.is_file()
    assert first.accuracy_before <= 0.5 < first.accuracy_after  # the domain was new to it
    assert first.accuracy_after - first.accuracy_before >= 0.3
    assert sum(first.held_out_counts.values()) == 6  # 20 % of 8 per label, rounded
    assert sum(first.train_counts.values()) == 18
    assert stages[0] == "embedding" and stages[-1] == "training"
    assert "e5:finance-v1" in "\n".join(first.lines())

    second = finetune(data, heads_dir, name="finance", base="finance")
    assert second.head.path == heads_dir / "finance-v2.npz"
    assert second.accuracy_before == first.accuracy_after  # same split, starts from v1

    assert [h.spec for h in list_heads(heads_dir)] == ["default", "finance-v1", "finance-v2"]
    assert resolve_head("finance", heads_dir) == second.head.path
    assert resolve_head("finance-v1", heads_dir) == first.head.path
    assert resolve_head("default", heads_dir) == DEFAULT_HEAD
    backend = load_backend("e5:finance-v1", heads_dir=heads_dir)
    assert backend.name == "e5:finance-v1"
    # Not among the examples; the default head reads it as neutral news.
    assert (
        backend.analyze_batch(["Sales slumped 15% in the second quarter."])[0].label == "negative"
    )


def test_split_is_stratified_and_stable() -> None:
    examples = [Example(t, label, i + 2) for i, (t, label) in enumerate(ROWS)]  # type: ignore[arg-type]
    train, held = split_examples(examples)
    assert sorted(e.label for e in held) == ["negative"] * 2 + ["neutral"] * 2 + ["positive"] * 2
    assert split_examples(list(reversed(examples))) == (train, held)
    assert not {e.text for e in train} & {e.text for e in held}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("fine", "positive"), ("meh", "postive")], r"line 3: unknown label 'postive'"),
        ([("fine", "positive"), ("  ", "negative")], r"line 3: empty text"),
        (
            [(f"p{i}", "positive") for i in range(5)] + [(f"n{i}", "negative") for i in range(4)],
            r"too few examples labelled 'negative': 4 \(need 5; the last is on line 10\)",
        ),
        (
            [("same", "positive")] * 5 + [(f"n{i}", "negative") for i in range(5)],
            r"too few examples labelled 'positive': 1",
        ),
        ([("a", "positive"), ("b", "neutral"), ("a", "negative")], r"line 4: same text as line 2"),
        ([(str(i), "positive") for i in range(6)], r"at least two labels"),
    ],
)
def test_bad_data_names_the_line(tmp_path: Path, rows: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_examples(write_csv(tmp_path / "bad.csv", rows))


def test_header_and_labels_are_forgiving_only_about_case(tmp_path: Path) -> None:
    rows = [(f"good {i}", " Positive ") for i in range(5)] + [
        (f"bad {i}", "NEGATIVE") for i in range(5)
    ]
    path = write_csv(tmp_path / "ok.csv", rows, header=("Text", "Label"))
    assert {e.label for e in read_examples(path)} == {"positive", "negative"}
    with pytest.raises(DataError, match="columns text,label"):
        read_examples(write_csv(tmp_path / "h.csv", rows, header=("sentence", "label")))


def test_names_and_bases_are_checked(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "finance.csv", ROWS)
    for name in ["default", "x-v2", "../x", ""]:
        with pytest.raises(ValueError, match="head name"):
            finetune(data, tmp_path, name=name)
    with pytest.raises(ValueError, match="no sentiment head 'nope'"):
        finetune(data, tmp_path, base="nope")
