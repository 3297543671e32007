"""Rated turns out of the store, as fine-tuning data in OpenAI's chat formats.

People rate the answers of their own conversations (``POST /v1/feedback``, the thumbs of
the web UI). ``gather`` reads a tenant's ratings and, for each, the conversation up to and
including the rated turn, through the store's API (so an encrypted store decrypts as it
always does): the *prompt* (every message the answer answered) and the *answer* (the turn's
assistant and tool messages, tool calls included). Personal data is masked on the way out
(``graft.redaction``) unless the caller asks for the raw text.

Two formats come out of them:

- ``sft_rows``: OpenAI's supervised format, ``{"messages": [...], "tools": [...]}``, one row
  per thumbs-up turn: the assistant's system prompt, the prompt, the answer. Assistant
  messages of earlier turns carry ``"weight": 0``: nobody rated them, so they are context,
  not targets. Tool messages are wrapped as the model saw them (``graft.agent``).
- ``dpo_rows``: OpenAI's preference format, ``{"input": {"messages", "tools"},
  "preferred_output": [msg], "non_preferred_output": [msg]}``, from pairs: a thumbs-down
  answer and a thumbs-up answer *to the same prompt*. The same prompt means the same
  assistant and the same messages (text with whitespace runs made one, tool calls by name
  and arguments, never by id): a regenerated answer (the web UI's regenerate stores a new
  conversation with the same history), or the same first question asked in two
  conversations. Each down-rated answer pairs with the newest up-rated one that fits.
  Messages the two answers share (the same tool call with the same result) move into the
  input; what is left must be one text message on each side, as OpenAI's preference
  format takes text outputs only.

Left out, and counted by reason (``Rows.skipped``): a rating whose conversation was deleted
since, a failed or unfinished turn, a turn with no stored answer, history whose tool calls
and results do not pair up (OpenAI refuses such rows); for SFT the down-rated turns; for
DPO a down-rated answer with no up-rated answer to the same prompt (nothing to prefer), an
up-rated one with no down-rated answer, and pairs that differ in their tool calls.

The system prompt and the tool definitions (``Offered``) are the assistant's as configured
when exporting: graft does not store what each turn was offered, so they are "when known".
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from graft.agent import wrap_untrusted
from graft.context import Principal
from graft.errors import ConversationNotFound
from graft.messages import Message, ToolCall
from graft.redaction import redact
from graft.store.base import FeedbackRating, Store, StoredFeedback, StoredMessage, TurnInfo

__all__ = [
    "FORMATS",
    "PAGE",
    "FeedbackFilter",
    "Format",
    "Gathered",
    "Offered",
    "RatedTurn",
    "Rows",
    "check_tool_pairs",
    "dpo_rows",
    "gather",
    "openai_message",
    "sft_rows",
]

Format = Literal["openai-sft", "dpo"]
FORMATS: tuple[Format, ...] = ("openai-sft", "dpo")

PAGE = 500
"""Ratings read from the store at a time."""


@dataclass(frozen=True, slots=True)
class FeedbackFilter:
    """Which ratings to read: one tenant's, optionally narrowed."""

    tenant: str = "default"
    assistant: str | None = None
    rating: FeedbackRating | None = None
    since: datetime | None = None
    """Ratings last given at or after this (timezone-aware)."""
    until: datetime | None = None
    """Ratings last given before this."""

    def keeps(self, given: StoredFeedback) -> bool:
        """Whether ``given`` passes the filter."""
        return (
            (self.assistant is None or given.assistant == self.assistant)
            and (self.rating is None or given.rating == self.rating)
            and (self.since is None or given.updated_at >= self.since)
            and (self.until is None or given.updated_at < self.until)
        )


@dataclass(frozen=True, slots=True)
class RatedTurn:
    """One rated turn: the rating, what the answer answered, and the answer."""

    feedback: StoredFeedback
    prompt: list[Message]
    """Every message before the answer, oldest first; no system prompt."""
    answer: list[Message]
    """The turn's assistant and tool messages, in order."""
    prompt_key: str
    """The prompt as pairing compares it (taken before redaction)."""


@dataclass(slots=True)
class Gathered:
    """The rated turns that could be read, and why the others could not."""

    turns: list[RatedTurn] = field(default_factory=list)
    matched: int = 0
    """Ratings that passed the filter."""
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Offered:
    """What an assistant gives the model besides the messages, when it is known."""

    system: str | None = None
    """The system message as a turn sends it."""
    tools: list[dict[str, Any]] | None = None
    """Function definitions in the OpenAI ``tools`` shape."""


@dataclass(slots=True)
class Rows:
    """Fine-tuning rows, and how many rated turns were left out, by reason."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


# --- reading ------------------------------------------------------------------------------


async def gather(store: Store, filters: FeedbackFilter, *, redacted: bool = True) -> Gathered:
    """The tenant's ratings that pass ``filters``, each with its conversation, newest first.

    Conversations are read as their owners would read them, one read per conversation.
    With ``redacted``, personal data in messages, tool arguments and comments is masked.
    """
    found = Gathered()
    read: dict[str, tuple[list[StoredMessage], list[TurnInfo]] | None] = {}
    async for given in _ratings(store, filters):
        found.matched += 1
        if given.conversation_id not in read:
            read[given.conversation_id] = await _conversation(store, given)
        conversation = read[given.conversation_id]
        if conversation is None:
            found.skipped["conversation deleted since it was rated"] += 1
            continue
        turn, why = _rated_turn(given, *conversation)
        if turn is None:
            found.skipped[why] += 1
            continue
        found.turns.append(_redact_turn(turn) if redacted else turn)
    return found


async def _ratings(store: Store, filters: FeedbackFilter) -> AsyncIterator[StoredFeedback]:
    after: str | None = None
    while True:
        page = await store.list_feedback(
            filters.tenant, rating=filters.rating, after=after, limit=PAGE
        )
        for given in page:
            if filters.keeps(given):
                yield given
        if len(page) < PAGE:
            return
        after = page[-1].id


async def _conversation(
    store: Store, given: StoredFeedback
) -> tuple[list[StoredMessage], list[TurnInfo]] | None:
    owner = Principal(given.user_id, tenant=given.tenant)
    try:
        _, messages, turns = await store.get_conversation(given.conversation_id, owner)
    except ConversationNotFound:
        return None
    return messages, turns


def _rated_turn(
    given: StoredFeedback, stored: list[StoredMessage], turns: list[TurnInfo]
) -> tuple[RatedTurn | None, str]:
    info = next((t for t in turns if t.id == given.turn_id), None)
    if info is None:
        return None, "conversation deleted since it was rated"
    if info.status != "done":
        return None, f"turn {info.status}"
    positions = [i for i, s in enumerate(stored) if s.turn_id == given.turn_id]
    own = [stored[i].message for i in positions]
    # A stateless call (the web UI's regenerate) stores the whole history with its turn:
    # the answer starts after the turn's last user message, or after the results of a
    # client's tools that the turn opened with.
    start = max((i + 1 for i, m in enumerate(own) if m.role == "user"), default=0)
    while start < len(own) and own[start].role == "tool":
        start += 1
    answer = own[start:]
    if not answer:
        return None, "no answer stored"
    prompt = [s.message for s in stored[: positions[0]]] + own[:start]
    return RatedTurn(given, prompt, answer, _key(given.assistant, prompt)), ""


def _key(assistant: str, prompt: list[Message]) -> str:
    return json.dumps([assistant, [_shape(m) for m in prompt]], ensure_ascii=False)


def _shape(message: Message) -> list[Any]:
    """What two messages must share to count as the same (ids aside)."""
    text = " ".join((message.content or "").split())
    return [message.role, text, [[c.name, _canonical(c.arguments)] for c in message.tool_calls]]


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return arguments


# --- redaction ----------------------------------------------------------------------------


def _redact_turn(turn: RatedTurn) -> RatedTurn:
    comment = turn.feedback.comment
    return replace(
        turn,
        feedback=replace(turn.feedback, comment=redact(comment).text if comment else comment),
        prompt=[_redact_message(m) for m in turn.prompt],
        answer=[_redact_message(m) for m in turn.answer],
    )


def _redact_message(message: Message) -> Message:
    content = redact(message.content).text if message.content else message.content
    calls = [ToolCall(c.id, c.name, _redact_arguments(c.arguments)) for c in message.tool_calls]
    return replace(message, content=content, tool_calls=calls)


def _redact_arguments(arguments: str) -> str:
    """Mask the strings inside JSON arguments, keeping the JSON valid; else the raw text."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return redact(arguments).text
    masked = _redact_json(parsed)
    return arguments if masked == parsed else json.dumps(masked, ensure_ascii=False)


def _redact_json(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value).text
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _redact_json(item) for key, item in value.items()}
    return value


# --- OpenAI shapes ------------------------------------------------------------------------


def openai_message(message: Message) -> dict[str, Any]:
    """A stored message as a fine-tuning message: tool results wrapped as the model saw them."""
    out: dict[str, Any] = {"role": message.role}
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
        out["content"] = wrap_untrusted(message.name, message.content or "")
        return out
    if message.content is not None or not message.tool_calls:
        out["content"] = message.content or ""
    if message.tool_calls:
        out["tool_calls"] = [call.to_openai() for call in message.tool_calls]
    return out


def check_tool_pairs(messages: Iterable[dict[str, Any]], *, open_end: bool = False) -> str | None:
    """Why OpenAI would refuse these messages' tool calls, or ``None`` if they pair up.

    Every call must be answered by a tool message, right after the message that made it,
    before anything else; every tool message must answer such a call; arguments must be JSON.
    With ``open_end``, the last message may be calls with no results yet (a turn that
    handed its calls to the client's tools: the calls are the answer).
    """
    waiting: set[str] = set()
    last: dict[str, Any] | None = None
    for last in messages:
        if last["role"] == "tool":
            if last.get("tool_call_id") not in waiting:
                return "a tool result answers no call"
            waiting.discard(last["tool_call_id"])
            continue
        if waiting:
            return "a tool call has no result"
        for call in last.get("tool_calls", []):
            try:
                json.loads(call["function"]["arguments"])
            except ValueError:
                return "tool call arguments are not JSON"
            waiting.add(call["id"])
    if waiting and not (open_end and last is not None and last["role"] == "assistant"):
        return "a tool call has no result"
    return None


def _context(turn: RatedTurn, offered: Offered) -> list[dict[str, Any]]:
    """The system prompt and the prompt; earlier answers weigh nothing."""
    system = [{"role": "system", "content": offered.system}] if offered.system else []
    prompt = [openai_message(m) for m in turn.prompt]
    return system + prompt


def _with_tools(row: dict[str, Any], offered: Offered) -> dict[str, Any]:
    if offered.tools:
        row["tools"] = offered.tools
    return row


# --- supervised fine-tuning ---------------------------------------------------------------


def sft_rows(turns: Iterable[RatedTurn], offered: Mapping[str, Offered]) -> Rows:
    """One ``{"messages", "tools"}`` row per thumbs-up turn, oldest rating first."""
    out = Rows()
    for turn in sorted(turns, key=lambda t: t.feedback.id):
        if turn.feedback.rating != "up":
            out.skipped["rated down (not SFT data)"] += 1
            continue
        if turn.answer[-1].role != "assistant":
            out.skipped["the answer does not end with an assistant message"] += 1
            continue
        context = _context(turn, offered.get(turn.feedback.assistant, Offered()))
        for message in context:
            if message["role"] == "assistant":
                message["weight"] = 0
        messages = context + [openai_message(m) for m in turn.answer]
        why = check_tool_pairs(messages, open_end=True)
        if why is not None:
            out.skipped[why] += 1
            continue
        row = {"messages": messages}
        out.rows.append(_with_tools(row, offered.get(turn.feedback.assistant, Offered())))
    return out


# --- preference pairs ---------------------------------------------------------------------


def dpo_rows(turns: Iterable[RatedTurn], offered: Mapping[str, Offered]) -> Rows:
    """One preference row per down-rated answer that has an up-rated answer to its prompt."""
    out = Rows()
    groups: dict[str, list[RatedTurn]] = defaultdict(list)
    for turn in turns:
        groups[turn.prompt_key].append(turn)
    for group in groups.values():
        ups = sorted(
            (t for t in group if t.feedback.rating == "up"),
            key=lambda t: t.feedback.updated_at,
            reverse=True,
        )
        downs = sorted(
            (t for t in group if t.feedback.rating == "down"), key=lambda t: t.feedback.id
        )
        if not ups:
            out.skipped["rated down, no up-rated answer to the same prompt"] += len(downs)
            continue
        if not downs:
            out.skipped["rated up, no down-rated answer to the same prompt"] += len(ups)
            continue
        used: set[str] = set()
        for down in downs:
            row, preferred_or_why = _pair(ups, down, offered)
            if row is None:
                out.skipped[preferred_or_why] += 1
                continue
            used.add(preferred_or_why)
            out.rows.append(row)
        unused = sum(1 for t in ups if t.feedback.id not in used)
        if unused:
            out.skipped["rated up, not paired"] += unused
    return out


def _pair(
    ups: list[RatedTurn], down: RatedTurn, offered: Mapping[str, Offered]
) -> tuple[dict[str, Any] | None, str]:
    """The row pairing ``down`` with the first of ``ups`` that fits, and that one's rating id.

    Without a row, the second item says why none fits.
    """
    why = "the two answers differ in their tool calls"
    for up in ups:
        shared = 0
        limit = min(len(up.answer), len(down.answer))
        while shared < limit and _shape(up.answer[shared]) == _shape(down.answer[shared]):
            shared += 1
        good, bad = up.answer[shared:], down.answer[shared:]
        if not good and not bad:
            why = "the up- and down-rated answers are the same"
            continue
        if not (_one_text(good) and _one_text(bad)):
            continue
        known = offered.get(up.feedback.assistant, Offered())
        messages = _context(up, known) + [openai_message(m) for m in up.answer[:shared]]
        broken = check_tool_pairs(messages)
        if broken is not None:
            why = broken
            continue
        row = {
            "input": _with_tools({"messages": messages}, known),
            "preferred_output": [openai_message(good[0])],
            "non_preferred_output": [openai_message(bad[0])],
        }
        return row, up.feedback.id
    return None, why


def _one_text(messages: list[Message]) -> bool:
    return (
        len(messages) == 1
        and messages[0].role == "assistant"
        and not messages[0].tool_calls
        and bool(messages[0].content)
    )
