"""The row builders on their own: tool-call pairing rules and DPO's shared prefix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from graft.feedback_export import RatedTurn, check_tool_pairs, dpo_rows, sft_rows
from graft.messages import Message, ToolCall
from graft.store.base import FeedbackRating, StoredFeedback

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def calling(call_id: str, arguments: str = '{"expression": "2+2"}') -> dict[str, Any]:
    function = {"name": "calculator", "arguments": arguments}
    return {
        "role": "assistant",
        "tool_calls": [{"id": call_id, "type": "function", "function": function}],
    }


def result(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "4"}


def test_tool_calls_and_results_must_pair_up() -> None:
    user = {"role": "user", "content": "2+2?"}
    done = {"role": "assistant", "content": "4"}
    assert check_tool_pairs([user, calling("a"), result("a"), done]) is None
    assert check_tool_pairs([user, result("a")]) == "a tool result answers no call"
    assert check_tool_pairs([user, calling("a"), done]) == "a tool call has no result"
    assert check_tool_pairs([user, calling("a")]) == "a tool call has no result"
    assert check_tool_pairs([user, calling("a")], open_end=True) is None  # client tools
    assert check_tool_pairs([user, calling("a", "{oops")]) == "tool call arguments are not JSON"


def rated(n: int, rating: FeedbackRating, answer: list[Message]) -> RatedTurn:
    given = StoredFeedback(
        f"fb_{n}",
        "acme",
        "ann",
        f"conv_{n}",
        f"turn_{n}",
        "default",
        rating,
        None,
        T0 + timedelta(minutes=n),
        T0 + timedelta(minutes=n),
    )
    return RatedTurn(given, [Message("user", "2+2?")], answer, '["default", "2+2?"]')


def test_a_shared_tool_call_moves_into_the_input_of_a_pair() -> None:
    def answer(n: int, text: str) -> list[Message]:
        call = ToolCall(f"call_{n}", "calculator", '{"expression": "2+2"}')
        return [
            Message("assistant", None, [call]),
            Message("tool", "4", tool_call_id=call.id, name="calculator"),
            Message("assistant", text),
        ]

    made = dpo_rows([rated(1, "down", answer(1, "4?")), rated(2, "up", answer(2, "4."))], {})

    [row] = made.rows
    assert not made.skipped
    assert [m["role"] for m in row["input"]["messages"]] == ["user", "assistant", "tool"]
    assert row["input"]["messages"][2]["tool_call_id"] == "call_2"  # the preferred side's ids
    assert row["preferred_output"] == [{"role": "assistant", "content": "4."}]
    assert row["non_preferred_output"] == [{"role": "assistant", "content": "4?"}]


def test_the_same_answer_rated_both_ways_is_no_pair_and_sft_keeps_ups_only() -> None:
    same = [
        rated(1, "up", [Message("assistant", "4")]),
        rated(2, "down", [Message("assistant", "4")]),
    ]

    assert dpo_rows(same, {}).skipped == {
        "the up- and down-rated answers are the same": 1,
        "rated up, not paired": 1,
    }
    sft = sft_rows(same, {})
    assert [row["messages"][-1]["content"] for row in sft.rows] == ["4"]
    assert sft.skipped == {"rated down (not SFT data)": 1}
