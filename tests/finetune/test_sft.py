from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graft.finetune.sft import DataError, Row, read_rows, render
from graft.messages import Message, ToolCall
from graft.models import local

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "calculator", "arguments": '{"expression": "2*21"}'},
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "calculator",
            "description": "Evaluate arithmetic.\nMore text.",
            "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
        },
    }
]
TOOL_ROW: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2*21?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"result": 42}'},
        {"role": "assistant", "content": "2*21 is 42."},
    ],
    "tools": TOOLS,
}


def write(path: Path, *rows: Any) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


def test_reads_rows_with_tool_calls_and_drops_repeats(tmp_path: Path) -> None:
    plain = {
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    }
    rows = read_rows(write(tmp_path / "d.jsonl", TOOL_ROW, "", plain, plain))
    assert [r.line for r in rows] == [1, 3]
    assert rows[0].messages[2]["tool_calls"][0]["name"] == "calculator"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", "line 2: not JSON"),
        ({"messages": "hi"}, 'line 2: expected an object with a "messages" list'),
        ({"messages": [{"role": "bot", "content": "x"}]}, "line 2: message 0: unknown role 'bot'"),
        ({"messages": [{"role": "user", "content": "x"}]}, "line 2: no assistant message"),
        (
            {"messages": [{"role": "user", "content": "x"}, {"role": "assistant"}]},
            "message 1: assistant message with neither content nor tool_calls",
        ),
        (
            {"messages": TOOL_ROW["messages"][:3]},
            "message 2: tool call 'call_1' has no tool message answering it",
        ),
        (
            {
                "messages": [
                    TOOL_ROW["messages"][1],
                    TOOL_ROW["messages"][3],
                    TOOL_ROW["messages"][4],
                ]
            },
            "message 1: tool result for 'call_1', which no earlier assistant message called",
        ),
        (
            {
                **TOOL_ROW,
                "tools": [{**TOOLS[0], "function": {**TOOLS[0]["function"], "name": "x"}}],
            },
            "message 2 calls 'calculator', which is not in \"tools\"",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y", "weight": 2},
                ]
            },
            "weight must be 0 or 1",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "content must be text",
        ),
    ],
)
def test_bad_rows_name_their_line(tmp_path: Path, row: Any, message: str) -> None:
    data = write(tmp_path / "d.jsonl", TOOL_ROW, row)
    with pytest.raises(DataError, match="d.jsonl, " if "line" in message else "") as info:
        read_rows(data)
    assert message in str(info.value)
    assert "line 2" in str(info.value)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no rows"):
        read_rows(write(tmp_path / "d.jsonl", ""))


def test_render_matches_what_the_local_model_sees() -> None:
    row = read_row(TOOL_ROW)
    turns = render(row)
    assert [t.role for t in turns] == ["system", "user", "assistant", "user", "assistant"]
    assert [t.train for t in turns] == [False, False, True, False, True]
    assert turns[0].content == "Be brief.\n\nTools:\n- calculator(expression): Evaluate arithmetic."
    assert json.loads(turns[2].content) == {
        "tool": "calculator",
        "arguments": {"expression": "2*21"},
    }
    # the served model renders the same history the same way (graft.models.local)
    call = ToolCall("call_1", "calculator", '{"expression": "2*21"}')
    served = local._chat(
        [
            Message("system", "Be brief."),
            Message("user", "What is 2*21?"),
            Message("assistant", tool_calls=[call]),
            Message("tool", '{"result": 42}', tool_call_id="call_1", name="calculator"),
            Message("assistant", "2*21 is 42."),
        ]
    )
    assert [t.content for t in turns[1:]] == [t["content"] for t in served[1:]]


def test_weight_zero_keeps_a_turn_as_context_only() -> None:
    row = read_row(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "old answer", "weight": 0},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "new answer"},
            ]
        }
    )
    assert [t.train for t in render(row)] == [False, False, False, True]


def read_row(data: dict[str, Any]) -> Row:
    from graft.finetune.sft import _row

    return _row(data, 1)
