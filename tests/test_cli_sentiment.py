from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from graft.cli import cli


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))  # heads and the store go there


def invoke(*args: str, input: str | None = None):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_analyze_one_text() -> None:
    result = invoke("sentiment", "analyze", "这个产品太差了，完全不能用")
    assert result.exit_code == 0
    assert result.output.startswith("negative 0.")
    as_json = json.loads(invoke("sentiment", "analyze", "I love it!", "--json").output)
    assert as_json["text"] == "I love it!" and as_json["label"] == "positive"


def test_analyze_reads_stdin_one_json_object_per_line() -> None:
    lines = ["Great service, thank you!", "", "太糟糕了", "😡😡", "x" * 9000]
    result = invoke("sentiment", "analyze", input="\n".join(lines) + "\n")
    assert result.exit_code == 0
    out = [json.loads(line) for line in result.output.splitlines()]
    assert [o["text"] for o in out] == lines
    assert [o["label"] for o in out[:4]] == ["positive", "neutral", "negative", "negative"]
    assert out[1]["note"] == "empty text"
    assert all(0 <= o["score"] <= 1 for o in out)


def test_a_lexicon_backend_says_it_is_the_fallback() -> None:
    out = json.loads(invoke("sentiment", "analyze", "--backend", "lexicon", "bad", "--json").output)
    assert out["backend"] == "lexicon (fallback)"
    bad = CliRunner().invoke(cli, ["sentiment", "analyze", "--backend", "bert", "x"])
    assert bad.exit_code == 1 and "e5" in bad.output


def test_finetune_saves_versioned_heads_that_an_assistant_can_select(tmp_path: Path) -> None:
    rows = ["text,label"]
    for i in range(8):
        rows += [
            f"the ledger reconciled cleanly in batch {i},positive",
            f"batch {i} failed reconciliation again,negative",
            f"batch {i} is scheduled for Tuesday,neutral",
        ]
    data = tmp_path / "labelled.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    first = invoke("finetune", "sentiment", "--data", str(data), "--name", "ledger")
    assert first.exit_code == 0, first.output
    assert "before" in first.output and "after" in first.output
    assert "ledger-v1" in first.output
    second = invoke("finetune", "sentiment", "--data", str(data), "--name", "ledger")
    assert "ledger-v2" in second.output
    heads = invoke("sentiment", "heads").output
    assert "ledger-v1" in heads and "ledger-v2" in heads
    picked = invoke("sentiment", "analyze", "--backend", "e5:ledger", "--json", "batch 3 failed")
    assert json.loads(picked.output)["label"] == "negative"


def test_finetune_names_the_bad_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("text,label\nfine,positive\nmeh,so-so\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["finetune", "sentiment", "--data", str(data)])
    assert result.exit_code == 1
    assert "line 3" in result.output


def test_report_needs_a_store_that_persists() -> None:
    result = CliRunner().invoke(
        cli, ["sentiment", "report"], env={"GRAFT_DATABASE_URL": "memory://"}
    )
    assert result.exit_code == 1 and "memory://" in result.output
    empty = CliRunner().invoke(cli, ["sentiment", "report", "--since", "7d"])
    assert empty.exit_code == 0 and "no tagged messages" in empty.output
    bad = CliRunner().invoke(cli, ["sentiment", "report", "--since", "last tuesday"])
    assert bad.exit_code == 2 and "--since" in bad.output
    bounded = CliRunner().invoke(
        cli, ["sentiment", "report", "--since", "2026-11-01", "--until", "2026-11-08"]
    )
    assert bounded.exit_code == 0, bounded.output
    backwards = CliRunner().invoke(
        cli, ["sentiment", "report", "--since", "2026-11-08", "--until", "2026-11-01"]
    )
    assert backwards.exit_code == 2 and "is not after --since" in backwards.output
    unreadable = CliRunner().invoke(cli, ["sentiment", "report", "--until", "soon"])
    assert unreadable.exit_code == 2 and "--until" in unreadable.output


def test_ask_and_chat_show_the_tag(capsys: pytest.CaptureFixture[str]) -> None:
    from graft.cli import _record, _show
    from graft.events import Escalated, SentimentTagged

    result: dict[str, object] = {}
    tagged = SentimentTagged("negative", 0.91234, "frustrated", "e5")
    _record(result, tagged)
    _record(result, Escalated("3 negative messages in a row", 3))
    assert result == {
        "sentiment": {"label": "negative", "score": 0.9123, "emotion": "frustrated"},
        "escalation": {"reason": "3 negative messages in a row"},
    }
    _show(tagged)
    assert "(you: negative 0.91, frustrated)" in capsys.readouterr().err
