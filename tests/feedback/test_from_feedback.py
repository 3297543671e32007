"""``graft eval from-feedback``: one case per thumbs-down answer, in the eval suite format.

The same scenario as ``test_export``: ann's vague answer (rated down with a comment) was
regenerated and the new answer rated up, so its case has a reference; bob's guess at ann's
first question (rated down) has ann's up-rated answer as its reference.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import yaml
from click.testing import CliRunner, Result
from tests.feedback.conftest import World
from tests.feedback.test_export import QUESTION, rated

from graft.cli_feedback import from_feedback
from graft.evals.suite import load_suite

CASE_KEYS = {
    "id",
    "description",
    "tags",
    "user",
    "input",
    "messages",
    "expect",
    "reference",
    "source",
}
CHECKS = {"judge", "contains", "not_contains", "tool_called", "not_tool_called", "matches"}


async def make_cases(*args: str) -> Result:
    """``graft eval from-feedback ARGS`` in a thread: the command runs its own event loop."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(from_feedback, list(args)))


def check_suite(suite: dict[str, Any]) -> None:
    """Our reading of the suite format (/tmp/brief/suite_format.md)."""
    assert set(suite) <= {"name", "assistant", "model", "judge", "threshold", "cases"}
    assert re.fullmatch(r"[a-z0-9_.-]{1,64}", suite["name"])
    ids = [case["id"] for case in suite["cases"]]
    assert len(set(ids)) == len(ids)
    for case in suite["cases"]:
        assert set(case) <= CASE_KEYS, case
        assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", case["id"])
        assert ("input" in case) != ("messages" in case)
        if "messages" in case:
            assert case["messages"][-1]["role"] == "user"
            for message in case["messages"]:
                assert set(message) <= {"role", "content", "tool_calls", "tool_call_id"}
                assert isinstance(message["content"], str)
        for check in case["expect"]:
            assert len(check) == 1 and set(check) <= CHECKS, check


async def test_each_thumbs_down_becomes_a_case_to_review(world: World, tmp_path: Path) -> None:
    turns = rated(world)
    out = tmp_path / "cases.yaml"

    made = await make_cases("--tenant", "acme", "--out", str(out))

    assert made.exit_code == 0, made.output
    assert f"wrote 2 eval case(s) to {out}" in made.stderr
    assert "review" in made.stderr
    text = out.read_text()
    assert "# REVIEW EVERY CASE" in text and text.count("    # REVIEW: ") == 2
    suite = yaml.safe_load(text)
    check_suite(suite)
    assert (suite["name"], suite["assistant"]) == ("from-feedback", "default")
    vague, guess = suite["cases"]  # oldest rating first

    assert vague["id"] == turns["vague"]
    assert [m["role"] for m in vague["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    calling = vague["messages"][1]["tool_calls"][0]
    assert vague["messages"][2]["tool_call_id"] == calling["id"]
    assert vague["messages"][-1]["content"] == "And 2+2?"
    assert vague["reference"] == "2 + 2 = 4."
    [judge] = vague["expect"]
    assert "Say it for sure. Mail me: [email]" in judge["judge"]
    assert vague["source"] == {
        "conversation_id": vague["source"]["conversation_id"],
        "turn_id": turns["vague"],
        "rating": "down",
        "comment": "Say it for sure. Mail me: [email]",
        "answer": "4, I think.",
    }

    assert guess["input"] == QUESTION.replace("13800138000", "[phone]")
    assert guess["reference"] == "1234 × 5678 = 7006652."
    assert guess["source"]["answer"] == "About 7 million."
    assert "wrong, use the calculator" in guess["expect"][0]["judge"]
    assert "ann@example.com" not in text and "13800138000" not in text

    loaded = load_suite(out)  # the eval runner's own loader
    assert [c.id for c in loaded.cases] == [turns["vague"], turns["guess"]]
    assert loaded.cases[0].conversation()[1].tool_calls[0].name == "calculator"
    assert loaded.cases[1].source is not None and loaded.cases[1].source.rating == "down"

    records = await world.graft.store.list_audit(None, 50, tenant="acme")
    assert [r.action for r in records if r.action.startswith("feedback.")] == [
        "feedback.eval_cases"
    ]


async def test_an_existing_file_needs_force_and_errors_are_clear(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "cases.yaml"
    none_yet = await make_cases("--tenant", "acme", "--out", str(out))
    assert none_yet.exit_code == 1 and "no ratings in tenant 'acme'" in none_yet.stderr
    assert not out.exists()

    rated(world)
    out.write_text("# edited by a reviewer\n")
    kept = await make_cases("--tenant", "acme", "--out", str(out))
    assert kept.exit_code == 2 and "exists" in kept.stderr and "--force" in kept.stderr
    assert out.read_text() == "# edited by a reviewer\n"
    replaced = await make_cases("--tenant", "acme", "--out", str(out), "--force", "--no-redact")
    assert replaced.exit_code == 0, replaced.output
    assert "ann@example.com" in out.read_text()

    bad = await make_cases("--tenant", "acme", "--out", str(out), "--force", "--name", "Bad Name")
    assert bad.exit_code == 2 and "'Bad Name': use 1-64 of a-z" in bad.stderr
    since = await make_cases("--tenant", "acme", "--out", str(out), "--since", "soon")
    assert since.exit_code == 2 and "'soon': use 7d" in since.stderr
