"""``graft feedback export`` and ``list`` on conversations rated over HTTP.

ann asks the calculator a question (rated up), then a second one answered vaguely (rated
down with a comment), and regenerates that answer the way the web UI does (a new
conversation with the same history; rated up). bob asks ann's first question and gets a
guess (rated down). The export reads the SQLite file through the command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from click.testing import Result
from sqlalchemy import select
from tests.conftest import invoke
from tests.feedback.conftest import World

from graft.agent import UNTRUSTED_NOTICE
from graft.config import DEFAULT_SYSTEM_PROMPT
from graft.store.schema import t_feedback
from graft.testing import call

QUESTION = "What is 1234 * 5678? Use the calculator. Call me on 13800138000."
SYSTEM = f"{DEFAULT_SYSTEM_PROMPT}\n\n{UNTRUSTED_NOTICE}"


def history(world: World, who: str, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's messages as a client sends them back (regenerate)."""
    read = world.call(who, "GET", f"/v1/conversations/{conversation_id}")
    keep = ("role", "content", "tool_calls", "tool_call_id")
    return [{k: m[k] for k in keep if k in m} for m in read.json()["messages"]]


def rated(world: World) -> dict[str, str]:
    """The scenario of the module docstring; the turn ids by name."""
    world.model.add([call("calculator", expression="1234*5678")], "1234 × 5678 = 7006652.")
    world.model.add("4, I think.", "2 + 2 = 4.", "About 7 million.")
    first_cid, sums = world.chat("ann", [{"role": "user", "content": QUESTION}])
    _, vague = world.chat("ann", [{"role": "user", "content": "And 2+2?"}], first_cid)
    world.rate("ann", sums, "up", "correct, thanks")
    world.rate("ann", vague, "down", "Say it for sure. Mail me: ann@example.com")
    before = history(world, "ann", first_cid)[:-1]  # up to and with "And 2+2?"
    _, regenerated = world.chat("ann", before)
    world.rate("ann", regenerated, "up")
    _, guess = world.chat("bob", [{"role": "user", "content": QUESTION}])
    world.rate("bob", guess, "down", "wrong, use the calculator")
    return {"sums": sums, "vague": vague, "regenerated": regenerated, "guess": guess}


async def graft(*args: str) -> Result:
    """``graft ARGS`` in a thread: the command runs its own event loop."""
    return await anyio.to_thread.run_sync(lambda: invoke(*args))


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def assert_openai_messages(messages: list[dict[str, Any]]) -> None:
    """OpenAI's chat shape: arguments are JSON text; each call's result follows it."""
    waiting: list[str] = []
    for message in messages:
        assert message["role"] in {"system", "user", "assistant", "tool"}, message
        if message["role"] == "tool":
            assert message["tool_call_id"] == waiting.pop(0), message
            assert isinstance(message["content"], str)
            continue
        assert not waiting, f"a call was not answered before {message}"
        for tool_call in message.get("tool_calls", []):
            assert tool_call["type"] == "function"
            assert isinstance(tool_call["function"]["arguments"], str)
            json.loads(tool_call["function"]["arguments"])
            waiting.append(tool_call["id"])
    assert not waiting


async def test_sft_rows_are_thumbs_up_conversations_with_their_tool_calls(
    world: World, tmp_path: Path
) -> None:
    turns = rated(world)
    out = tmp_path / "sft.jsonl"

    exported = await graft(
        "feedback", "export", "--format", "openai-sft", "--tenant", "acme", "--out", str(out)
    )

    assert exported.exit_code == 0, exported.output
    assert exported.stdout == ""
    assert f"wrote 2 openai-sft row(s) to {out}; skipped none" in exported.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    first, second = jsonl(out.read_text())
    for row in (first, second):
        assert set(row) == {"messages", "tools"}
        assert_openai_messages(row["messages"])
        names = [t["function"]["name"] for t in row["tools"]]
        assert "calculator" in names and all(t["type"] == "function" for t in row["tools"])
    # ann's first turn: the question, the call, its result, the answer.
    system, user, calling, result, answer = first["messages"]
    assert system == {"role": "system", "content": SYSTEM}
    assert user == {"role": "user", "content": QUESTION.replace("13800138000", "[phone]")}
    [made] = calling["tool_calls"]
    assert made["function"]["name"] == "calculator"
    assert json.loads(made["function"]["arguments"]) == {"expression": "1234*5678"}
    assert result["tool_call_id"] == made["id"] and "7006652" in result["content"]
    assert result["content"].startswith('<tool-output tool="calculator" trust="untrusted">')
    assert answer == {"role": "assistant", "content": "1234 × 5678 = 7006652."}
    # The regenerated answer: earlier answers are context (weight 0), the rated one is not.
    roles = [(m["role"], m.get("weight")) for m in second["messages"]]
    assert roles == [
        ("system", None),
        ("user", None),
        ("assistant", 0),
        ("tool", None),
        ("assistant", 0),
        ("user", None),
        ("assistant", None),
    ]
    assert second["messages"][-2:] == [
        {"role": "user", "content": "And 2+2?"},
        {"role": "assistant", "content": "2 + 2 = 4."},
    ]
    assert turns["vague"] not in out.read_text()


async def test_dpo_pairs_a_regenerated_answer_with_the_one_rated_down(world: World) -> None:
    rated(world)

    exported = await graft("feedback", "export", "--format", "dpo", "--tenant", "acme")

    assert exported.exit_code == 0, exported.output
    [row] = jsonl(exported.stdout)
    assert set(row) == {"input", "preferred_output", "non_preferred_output"}
    assert row["preferred_output"] == [{"role": "assistant", "content": "2 + 2 = 4."}]
    assert row["non_preferred_output"] == [{"role": "assistant", "content": "4, I think."}]
    messages = row["input"]["messages"]
    assert_openai_messages(messages)
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert messages[-1] == {"role": "user", "content": "And 2+2?"}
    assert "calculator" in [t["function"]["name"] for t in row["input"]["tools"]]
    # bob's guess and ann's tool-using answer share a prompt but not a shape: left out, said why.
    assert "wrote 1 dpo row(s); skipped 2:" in exported.stderr
    assert "1 the two answers differ in their tool calls" in exported.stderr
    assert "1 rated up, not paired" in exported.stderr


async def test_no_redact_keeps_personal_data_and_the_audit_log_says_so(world: World) -> None:
    rated(world)

    masked = await graft("feedback", "export", "--format", "openai-sft", "--tenant", "acme")
    raw = await graft(
        "feedback",
        "export",
        "--format",
        "openai-sft",
        "--tenant",
        "acme",
        "--no-redact",
        "--no-tools",
    )

    assert masked.exit_code == 0 and raw.exit_code == 0, (masked.output, raw.output)
    assert "13800138000" not in masked.stdout and "[phone]" in masked.stdout
    assert "13800138000" in raw.stdout and "[phone]" not in raw.stdout
    assert all("tools" not in row for row in jsonl(raw.stdout))
    records = await world.graft.store.list_audit(None, 50, tenant="acme")
    exports = [(r, json.loads(r.details)) for r in records if r.action == "feedback.export"]
    assert [(d["redacted"], d["tools"]) for _, d in exports] == [
        (True, True),
        (False, False),
    ]
    assert all(r.actor.startswith("cli:") and r.target == "tenant:acme" for r, _ in exports)
    assert exports[0][1]["rows"] == 2 and exports[0][1]["format"] == "openai-sft"
    assert "13800138000" not in "".join(r.details for r, _ in exports)


async def test_comments_are_encrypted_at_rest_and_listed_decrypted(world: World) -> None:
    turns = rated(world)

    def stored_comments() -> list[Any]:
        with world.graft.store.engine.connect() as conn:  # type: ignore[attr-defined]
            return list(conn.execute(select(t_feedback.c.comment)).scalars())

    raw = await anyio.to_thread.run_sync(stored_comments)
    assert raw and not any("calculator" in str(c) for c in raw)

    listed = await graft("feedback", "list", "--tenant", "acme", "--rating", "down")

    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert (
        turns["guess"] in lines[0] and "bob" in lines[0] and "wrong, use the calculator" in lines[0]
    )
    assert turns["vague"] in lines[1] and "ann" in lines[1]
    as_json = await graft("feedback", "list", "--tenant", "acme", "--json", "-n", "1")
    [only] = jsonl(as_json.stdout)
    assert only["turn_id"] == turns["guess"] and only["user"] == "bob"
    records = await world.graft.store.list_audit(None, 50, tenant="acme")
    assert [
        json.loads(r.details)["returned"] for r in records if r.action == "feedback.list_tenant"
    ] == [2, 1]


async def test_errors_are_clear(world: World) -> None:
    rated(world)

    nothing = await graft("feedback", "export", "--format", "openai-sft", "--tenant", "globex")
    assert nothing.exit_code == 1
    assert "no thumbs-up ratings in tenant 'globex'" in nothing.stderr
    assert "POST /v1/feedback" in nothing.stderr

    other = await graft(
        "feedback", "export", "--format", "dpo", "--tenant", "acme", "--assistant", "hr"
    )
    assert other.exit_code == 1 and "no ratings in tenant 'acme' (assistant hr)" in other.stderr

    bad = await graft(
        "feedback", "export", "--format", "dpo", "--tenant", "acme", "--since", "yesterday"
    )
    assert bad.exit_code == 2 and "'yesterday': use 7d, 12h, 2w" in bad.stderr

    later = await graft(
        "feedback",
        "export",
        "--format",
        "dpo",
        "--tenant",
        "acme",
        "--since",
        "1d",
        "--until",
        "2d",
    )
    assert later.exit_code == 2 and "is not after --since" in later.stderr

    unknown = await graft("feedback", "export", "--format", "alpaca", "--tenant", "acme")
    assert unknown.exit_code == 2 and "'alpaca' is not one of" in unknown.stderr

    future = await graft(
        "feedback", "export", "--format", "openai-sft", "--tenant", "acme", "--since", "2999-01-01"
    )
    assert future.exit_code == 1 and "since 2999-01-01" in future.stderr
    records = await world.graft.store.list_audit(None, 50, tenant="acme")
    assert not [r for r in records if r.action == "feedback.export"]  # nothing was exported
