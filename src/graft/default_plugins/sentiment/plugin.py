"""The ``sentiment`` plugin: a tool, a middleware and the tags stored with each message.

- The tool ``analyze_sentiment(text)`` gives any assistant the analyzer on demand.
- The middleware (``middleware = ["sentiment"]``) reads every user message before the model
  sees it: the tag (label, score, emotion) is stored with the turn, shown in the stream as a
  ``graft`` event, and, unless turned off, a short instruction on how to answer is added to
  the system prompt ("the user seems frustrated: acknowledge it and be concise").
- An escalation rule: ``escalate_after = N`` negative messages in a row emits an
  ``escalation`` event, records it in the audit log, changes the instruction and, when a
  ``webhook`` is set, POSTs it there in the background through the network guard
  (``graft.netguard``; the delivery and any refusal are audited too).

Settings, ``[plugins.sentiment]``, and per assistant ``[assistants.NAME.plugins.sentiment]``::

    backend = "e5"            # or "e5:<fine-tuned head>", "transformers:<dir>", "lexicon"
    instructions = true       # add the tone instruction to the model's context
    escalate_after = 0        # N negative user messages in a row -> escalation (0: never)
    webhook = "https://..."   # POST each escalation there (through the network guard)
    webhook_secret = "$env:ESCALATION_SECRET"   # signs the body: X-Graft-Signature
    tool = false              # offer analyze_sentiment to every assistant (global only)

An assistant that lists ``analyze_sentiment`` in its ``tools`` gets the tool too.

Every backend is loaded once per process, on first use, and runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft import audit
from graft.config import Settings, setting_value
from graft.context import Context
from graft.errors import ConfigError, NetworkBlocked
from graft.events import Escalated, Event, SentimentTagged
from graft.hookspecs import hookimpl
from graft.messages import Message
from graft.middleware import Middleware
from graft.netguard import audit_blocked
from graft.store.base import SentimentTag
from graft.tools.function import tool
from graft.webhooks import deliver

from .analyzer import Analyzer
from .backends import load_backend
from .base import Sentiment

__all__ = ["SentimentMiddleware", "analyze_sentiment", "analyzer_for", "instruction_for"]

log = logging.getLogger(__name__)

NAME = "sentiment"
DEFAULT_BACKEND = "e5"

_INSTRUCTIONS = {
    "angry": "The user seems angry: stay calm, acknowledge the problem and focus on fixing it.",
    "frustrated": "The user seems frustrated: acknowledge it and be concise.",
    "sad": "The user seems sad: be warm and gentle.",
    "confused": "The user seems confused: explain step by step, in plain words.",
}
_NEGATIVE = "The user seems unhappy: acknowledge it and be concise."
_ESCALATION = (
    "The user has been unhappy for {n} messages in a row: apologise once, keep it short, "
    "and offer to hand the conversation over to a person."
)


@dataclass(frozen=True, slots=True)
class _Options:
    backend: str
    instructions: bool
    escalate_after: int
    webhook: str | None
    webhook_secret: str | None


_KEYS = {"backend", "instructions", "escalate_after", "tool", "webhook", "webhook_secret"}


def _options(ctx: Context) -> _Options:
    config = ctx.plugin_config(NAME, known=_KEYS)
    backend = config.get("backend", DEFAULT_BACKEND)
    instructions = setting_value(config.get("instructions", True))
    escalate_after = setting_value(config.get("escalate_after", 0))
    if not isinstance(backend, str) or not backend.strip():
        raise ConfigError(f"plugins.{NAME}.backend must be a backend spec such as 'e5'")
    if not isinstance(instructions, bool):
        raise ConfigError(f"plugins.{NAME}.instructions must be true or false")
    if isinstance(escalate_after, bool) or not isinstance(escalate_after, int):
        raise ConfigError(f"plugins.{NAME}.escalate_after must be a whole number")
    if not 0 <= escalate_after <= 100:
        raise ConfigError(f"plugins.{NAME}.escalate_after must be between 0 and 100")
    webhook, secret = config.get("webhook"), config.get("webhook_secret")
    for key, value in (("webhook", webhook), ("webhook_secret", secret)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"plugins.{NAME}.{key} must be a non-empty string")
    return _Options(backend.strip(), instructions, escalate_after, webhook, secret)


def heads_dir(settings: Settings) -> Path:
    """Where fine-tuned heads are saved and looked up: ``HOME/sentiment/heads``."""
    return settings.home / "sentiment" / "heads"


_analyzers: dict[tuple[str, Path], Analyzer] = {}
_analyzers_lock = threading.Lock()


def analyzer_for(settings: Settings, spec: str = DEFAULT_BACKEND) -> Analyzer:
    """The process's ``Analyzer`` for a backend spec, built on first use.

    A bad spec raises ``ConfigError`` naming the valid forms.
    """
    key = (spec, heads_dir(settings))
    with _analyzers_lock:
        found = _analyzers.get(key)
        if found is None:
            try:
                backend = load_backend(spec, heads_dir=key[1])
            except ValueError as exc:
                raise ConfigError(f"plugins.{NAME}.backend: {exc}") from None
            found = _analyzers[key] = Analyzer(backend)
    return found


def instruction_for(result: Sentiment, negative_in_a_row: int = 0, threshold: int = 0) -> str:
    """The tone instruction for the model, or ``""`` when the message calls for none."""
    if threshold and negative_in_a_row >= threshold:
        return _ESCALATION.format(n=negative_in_a_row)
    if result.emotion in _INSTRUCTIONS:
        return _INSTRUCTIONS[result.emotion]
    return _NEGATIVE if result.label == "negative" else ""


@tool(read_only=True)
async def analyze_sentiment(text: str, ctx: Context) -> dict[str, Any]:
    """Tell whether a text is negative, neutral or positive, with a confidence score.

    Works for Chinese and English. Also names an emotion (angry, frustrated, sad, confused,
    happy, grateful) when the text clearly shows one.

    Args:
        text: The text to analyze.
        ctx: The turn (graft passes it; the model does not see it).
    """
    spec = _options(ctx).backend
    result = await analyzer_for(ctx.settings, spec).aanalyze(text)
    return result.to_dict()


class SentimentMiddleware(Middleware):
    """Tags the user's message, instructs the model, and escalates by rule."""

    name = NAME

    async def on_input(self, messages: list[Message], ctx: Context) -> list[Message]:
        """Read the message this turn answers; add the tone instruction to the system prompt."""
        if not messages or messages[-1].role != "user":
            return messages  # a turn that answers a tool call: no new user message
        options = _options(ctx)
        analyzer = analyzer_for(ctx.settings, options.backend)
        users = [m.content or "" for m in messages if m.role == "user"]
        result = await analyzer.aanalyze(users[-1])
        in_a_row = await self._negative_in_a_row(result, users, analyzer, ctx, options)
        escalated = bool(options.escalate_after) and in_a_row >= options.escalate_after
        notes: list[Event] = [
            SentimentTagged(result.label, result.score, result.emotion, result.backend)
        ]
        if ctx.store is not None and ctx.turn_id is not None:
            tag = SentimentTag(result.label, result.score, result.backend, result.emotion)
            await ctx.store.tag_sentiment(ctx.turn_id, tag)
        if escalated:
            notes.append(Escalated(f"{in_a_row} negative messages in a row", in_a_row))
            await _audit_escalation(ctx, in_a_row)
            if options.webhook is not None:
                _send_later(_notify(ctx, options, in_a_row, result))
        ctx.state[NAME] = notes
        text = instruction_for(result, in_a_row, options.escalate_after)
        if not options.instructions or not text:
            return messages
        if messages[0].role == "system":
            system = messages[0]
            head = Message("system", f"{system.content or ''}\n\n{text}".strip())
            return [head, *messages[1:]]
        return [Message("system", text), *messages]

    async def on_output(self, events: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        """Send the tag (and an escalation) before the model's first event."""
        for note in ctx.state.get(NAME, ()):
            yield note
        async for event in events:
            yield event

    @staticmethod
    async def _negative_in_a_row(
        result: Sentiment,
        users: list[str],
        analyzer: Analyzer,
        ctx: Context,
        options: _Options,
    ) -> int:
        """How many user messages in a row, this one included, were negative (up to N)."""
        limit = options.escalate_after
        if result.label != "negative" or limit <= 1:
            return int(result.label == "negative")
        labels: list[str] = []
        if ctx.store is not None and ctx.conversation_id is not None:
            stored = await ctx.store.recent_sentiments(ctx.conversation_id, limit - 1)
            labels = [t.label for t in stored]  # earlier turns: this one is not tagged yet
        earlier = users[:-1][-(limit - 1) :]
        if len(labels) < len(earlier):
            # A stateless call sends its history each time: read it (cached by the analyzer).
            labels = [r.label for r in reversed(await analyzer.aanalyze_many(earlier))]
        count = 1
        for label in labels:
            if label != "negative":
                break
            count += 1
        return count


_sending: set[asyncio.Task[None]] = set()


def _send_later(delivery: Coroutine[Any, Any, None]) -> None:
    """Deliver in the background: a slow receiver never holds up the answer."""
    task = asyncio.ensure_future(delivery)
    _sending.add(task)
    task.add_done_callback(_sending.discard)


async def _notify(ctx: Context, options: _Options, in_a_row: int, result: Sentiment) -> None:
    """POST the escalation to the webhook through the network guard; audit the outcome."""
    assert options.webhook is not None
    payload = {
        "event": "escalation",
        "assistant": ctx.assistant_name,
        "conversation_id": ctx.conversation_id,
        "turn_id": ctx.turn_id,
        "user": ctx.principal.user_id,
        "tenant": ctx.principal.tenant,
        "negative_in_a_row": in_a_row,
        "sentiment": {"label": result.label, "score": result.score, "emotion": result.emotion},
    }
    store = ctx.store
    on_blocked = None
    if store is not None:
        on_blocked = audit_blocked(
            store, actor=ctx.principal.user_id, tenant=ctx.principal.tenant, service=NAME
        )
    try:
        delivered = await deliver(
            options.webhook,
            payload,
            policy=ctx.settings.network.policy(),
            secret=options.webhook_secret,
            event="sentiment.escalation",
            on_blocked=on_blocked,
        )
    except NetworkBlocked:
        return  # recorded by on_blocked, and the log says why
    except Exception:
        log.exception("the escalation webhook of %s failed", ctx.assistant_name)
        return
    if store is not None:
        event = audit.AuditEvent(
            "webhook.deliver",
            ctx.principal.user_id,
            ctx.principal.tenant,
            f"conversation:{ctx.conversation_id}",
            "ok" if delivered.ok else "error",
            {
                "event": "sentiment.escalation",
                "delivery_id": delivered.delivery_id,
                "status": delivered.status,
                "attempts": delivered.attempts,
                "error": delivered.error,
            },
        )
        await audit.record(store, event)


async def _audit_escalation(ctx: Context, in_a_row: int) -> None:
    if ctx.store is None:
        return
    event = audit.AuditEvent(
        "sentiment.escalation",
        ctx.principal.user_id,
        ctx.principal.tenant,
        f"conversation:{ctx.conversation_id}",
        details={"assistant": ctx.assistant_name, "negative_in_a_row": in_a_row},
    )
    await audit.record(ctx.store, event)


@hookimpl
def register_tools(register: Callable[..., None], settings: Settings) -> None:
    """Register ``analyze_sentiment`` when asked for.

    That is when an assistant lists it, or ``[plugins.sentiment] tool = true``: an assistant
    with ``tools`` unset gets every tool, and a small model picks worse from a longer list.
    """
    listed = any(
        a.tools is not None and analyze_sentiment.name in a.tools
        for a in settings.assistants.values()
    )
    if listed or settings.plugin_config(NAME).get("tool") is True:
        register(analyze_sentiment)


@hookimpl
def register_middleware(register: Callable[..., None]) -> None:
    """Register the ``sentiment`` middleware."""
    register(SentimentMiddleware())
