"""Thumbs-down answers as eval cases for a reviewer to finish: ``graft eval from-feedback``.

Each down-rated turn (``graft.feedback_export.gather``) becomes one case of an eval suite
(the format ``graft.evals.suite`` loads): the conversation up to the user's message that got
the bad answer (``input`` when it is that one message, else ``messages``), and in
``source`` where it came from, the user's comment and the bad answer. What a good answer
does is not knowable from a thumbs-down, so ``expect`` starts as one model-graded
``judge`` check written from the comment, and a YAML comment above it asks the reviewer to
replace or sharpen it (``contains``, ``tool_called``...). When someone rated another answer
to the same prompt up, that answer becomes the case's ``reference``.

The file is written here rather than by a YAML library: the structure is fixed, every
value is written as a JSON scalar or flow collection (valid YAML, read back exactly), and
the comments for the reviewer sit where they are needed. Characters YAML may not hold
raw (control characters, line and paragraph separators) are written as escapes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from graft.feedback_export import RatedTurn
from graft.messages import Message

__all__ = ["SUITE_NAME", "Cases", "eval_cases", "judge_stub"]

SUITE_NAME = re.compile(r"[a-z0-9_.-]{1,64}")
"""What a suite's name may be (the eval suite format's rule)."""

# Outside YAML's printable set, or a line break to YAML (NEL, LS, PS), or a byte-order mark.
_NOT_RAW = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
    "\U00010000-\U0010ffff]"
)


@dataclass(slots=True)
class Cases:
    """The suite's YAML text, how many cases it holds, and the rated turns left out, by why."""

    text: str = ""
    count: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def judge_stub(comment: str | None) -> str:
    """A ``judge`` check built from a user's comment on a bad answer."""
    if not comment:
        return "The answer is correct, complete and helpful."
    said = " ".join(comment.split())
    return (
        f"An earlier answer to this was rated down with the comment: {said!r}. "
        "The answer does not have that problem and is correct and helpful."
    )


def eval_cases(
    turns: Iterable[RatedTurn], *, name: str, assistant: str | None, made: datetime
) -> Cases:
    """An eval suite with one case per down-rated turn, oldest rating first.

    ``turns`` may hold up-rated turns too: they give references, never cases.
    """
    rated = sorted(turns, key=lambda t: t.feedback.id)
    references: dict[str, str] = {}
    for turn in rated:
        final = turn.answer[-1]
        if turn.feedback.rating == "up" and final.role == "assistant" and final.content:
            references[turn.prompt_key] = final.content
    out = Cases()
    blocks: list[str] = []
    for turn in rated:
        if turn.feedback.rating != "down":
            continue
        if not turn.prompt or turn.prompt[-1].role != "user":
            out.skipped["the rated answer does not follow a user message"] += 1
            continue
        blocks.append(_case(turn, references.get(turn.prompt_key)))
    out.count = len(blocks)
    out.text = _header(name, assistant, made) + "".join(blocks)
    return out


def _header(name: str, assistant: str | None, made: datetime) -> str:
    lines = [
        f"# Eval cases from thumbs-down answers, written by graft eval from-feedback on "
        f"{made:%Y-%m-%d %H:%M} UTC.",
        "# Each case replays a conversation up to the message that got a bad answer.",
        "# REVIEW EVERY CASE before you rely on it: `expect` holds a model-graded `judge`",
        "# check written from the user's comment. Replace it with checks that say what a",
        "# good answer does (contains, tool_called, cites...), and delete unusable cases.",
        f"name: {_flow(name)}",
    ]
    if assistant is not None:
        lines.append(f"assistant: {_flow(assistant)}")
    lines.append("cases:")
    return "\n".join(lines) + "\n"


def _case(turn: RatedTurn, reference: str | None) -> str:
    given = turn.feedback
    about = " ".join((given.comment or "no comment").split())
    if len(about) > 120:
        about = about[:119] + "…"
    lines = [
        f"  - id: {_flow(given.turn_id)}",
        f"    description: {_flow(f'Rated down on {given.updated_at:%Y-%m-%d}: {about}')}",
        f"    tags: {_flow(['from-feedback', given.assistant])}",
    ]
    if len(turn.prompt) == 1:
        lines.append(f"    input: {_flow(turn.prompt[0].content or '')}")
    else:
        lines.append("    messages:")
        lines += [f"      - {_flow(_suite_message(m))}" for m in turn.prompt]
    for call in (c for m in turn.answer for c in m.tool_calls):
        lines.append(f"    # the bad answer called {call.name} with {_flow(call.arguments)}")
    lines += [
        "    # REVIEW: a starting point built from the comment; say what a good answer does.",
        "    expect:",
        f"      - judge: {_flow(judge_stub(given.comment))}",
    ]
    if reference is not None:
        lines.append(f"    reference: {_flow(reference)}")
    source = {
        "conversation_id": given.conversation_id,
        "turn_id": given.turn_id,
        "rating": given.rating,
        "comment": given.comment,
        "answer": _answer_text(turn.answer),
    }
    lines.append("    source:")
    lines += [f"      {key}: {_flow(value)}" for key, value in source.items()]
    return "\n".join(lines) + "\n"


def _suite_message(message: Message) -> dict[str, Any]:
    """A message in the suite's shape: role, content, and tool calls or the call answered."""
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [call.to_openai() for call in message.tool_calls]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _answer_text(answer: list[Message]) -> str:
    """What the bad answer said: its assistant text, in order."""
    return "\n\n".join(m.content for m in answer if m.role == "assistant" and m.content)


def _flow(value: Any) -> str:
    """``value`` as YAML: a JSON scalar or flow collection, with what YAML cannot hold escaped."""
    text = json.dumps(value, ensure_ascii=False)
    return _NOT_RAW.sub(lambda m: "".join(f"\\u{ord(c):04x}" for c in m.group()), text)
