"""The ``redact_pii`` middleware: personal data is masked before text leaves for the model.

An assistant turns it on with ``middleware = ["redact_pii"]``. On input it runs
``graft.redaction.redact`` over every message about to go to the model: the system prompt,
the history and the new messages, tool results and the string values of tool-call arguments
included (ids, names and the JSON shape stay as they are). The conversation is stored before
input middleware runs, so the store keeps what the user wrote. On output, only when
configured, it redacts the answer too, holding back the end of the text that a later delta
could still turn into (or out of) an item; the answer is then stored as redacted.

Settings, ``[plugins.redact_pii]``::

    kinds = ["email", "phone", "cn_id", "bank_card"]   # the default: all of them
    output = false                                     # also redact the model's answer

A bad setting fails the turn rather than letting text through unredacted.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from graft.config import setting_value
from graft.context import Context
from graft.errors import ConfigError
from graft.events import Event, TextDelta
from graft.hookspecs import hookimpl
from graft.messages import Message, ToolCall
from graft.middleware import Middleware
from graft.redaction import KINDS, redact

__all__ = ["RedactPII", "register_middleware"]

log = logging.getLogger(__name__)

NAME = "redact_pii"

_TOKEN = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._%+-@()（）[]")
"""Characters that can be part of an item, or decide whether one starts or ends next to them."""
_BEFORE_GAP = frozenset("0123456789)）")
_AFTER_GAP = frozenset("0123456789(（")
_MAX_HELD = 512
"""Never hold back more than this: a longer token is no single item anyway."""


@dataclass(frozen=True, slots=True)
class _Options:
    kinds: frozenset[str]
    output: bool
    store: bool


def _options(ctx: Context) -> _Options:
    config = ctx.plugin_config(NAME, known=("kinds", "output", "store"))
    kinds = setting_value(config.get("kinds", sorted(KINDS)))
    if not isinstance(kinds, list) or not set(kinds) <= KINDS:
        raise ConfigError(f"plugins.{NAME}.kinds must be a list of {sorted(KINDS)}, not {kinds!r}")
    switches = []
    for switch in ("output", "store"):
        value = setting_value(config.get(switch, False))
        if not isinstance(value, bool):
            raise ConfigError(f"plugins.{NAME}.{switch} must be true or false, not {value!r}")
        switches.append(value)
    return _Options(frozenset(kinds), *switches)


class RedactPII(Middleware):
    """Mask e-mail addresses, phone numbers, ID and card numbers on their way to the model."""

    name = NAME

    async def on_input(self, messages: list[Message], ctx: Context) -> list[Message]:
        """Return copies of ``messages`` with their text redacted; the originals stay."""
        kinds = _options(ctx).kinds
        counts: Counter[str] = Counter()
        redacted = [_redact_message(message, kinds, counts) for message in messages]
        if counts:
            log.debug("turn %s: redacted %s", ctx.turn_id, dict(counts))
        return redacted

    def on_output(self, events: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        """Redact the answer's text when ``output = true``; pass everything else on."""
        options = _options(ctx)
        return _redact_stream(events, options.kinds) if options.output else events

    async def on_store(self, messages: list[Message], ctx: Context) -> list[Message]:
        """With ``store = true``, what the database keeps of the turn is redacted too."""
        options = _options(ctx)
        if not options.store:
            return messages
        counts: Counter[str] = Counter()
        return [_redact_message(message, options.kinds, counts) for message in messages]


def _redact_message(message: Message, kinds: frozenset[str], counts: Counter[str]) -> Message:
    def text(value: str) -> str:
        result = redact(value, kinds)
        counts.update(result.counts)
        return result.text

    content = text(message.content) if message.content else message.content
    calls = [
        ToolCall(call.id, call.name, _redact_arguments(call.arguments, text))
        for call in message.tool_calls
    ]
    if content == message.content and all(
        new.arguments == old.arguments for new, old in zip(calls, message.tool_calls, strict=True)
    ):
        return message
    return replace(message, content=content, tool_calls=calls)


def _redact_arguments(arguments: str, text: Callable[[str], str]) -> str:
    """Redact the strings inside JSON arguments, keeping the JSON valid; else the raw text."""
    try:
        parsed = json.loads(arguments)
        redacted = _redact_json(parsed, text)
    except (ValueError, RecursionError):
        return text(arguments)
    return arguments if redacted == parsed else json.dumps(redacted, ensure_ascii=False)


def _redact_json(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, list):
        return [_redact_json(item, text) for item in value]
    if isinstance(value, dict):
        return {key: _redact_json(item, text) for key, item in value.items()}
    return value


def _settled(text: str) -> int:
    """How much of ``text`` no later delta can change: up to the start of its last token.

    An item is made of ``_TOKEN`` characters and of spaces between two groups of digits
    (``138 0013 8000``, ``+1 (415) 555``), so it never spans any other character: text up to
    such a character is redacted the same now as it would be with what comes after it.
    """
    end = len(text)
    start = end
    while start > 0 and end - start < _MAX_HELD:
        char = text[start - 1]
        gap = (
            char == " "
            and start >= 2
            and text[start - 2] in _BEFORE_GAP
            and (start == end or text[start] in _AFTER_GAP)
        )
        if char not in _TOKEN and not gap:
            break
        start -= 1
    return start


async def _redact_stream(
    events: AsyncIterator[Event], kinds: frozenset[str]
) -> AsyncIterator[Event]:
    pending = ""
    async for event in events:
        if isinstance(event, TextDelta):
            pending += event.text
            cut = _settled(pending)
            if cut:
                yield TextDelta(redact(pending[:cut], kinds).text)
                pending = pending[cut:]
            continue
        if pending:  # flushed before any other event, so text runs keep their boundaries
            yield TextDelta(redact(pending, kinds).text)
            pending = ""
        yield event
    if pending:
        yield TextDelta(redact(pending, kinds).text)


@hookimpl
def register_middleware(register: Callable[..., None]) -> None:
    """Register ``redact_pii``."""
    register(RedactPII())
