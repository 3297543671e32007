"""Input and output middleware: steps every message passes on the way in and out.

Input middleware sees the messages that will go to the model (after the user's message is
stored) and returns them, changed or not. Output middleware wraps the event stream as it
flows: it receives the async iterator of events and yields events, so it can rewrite text
deltas one by one, buffer across them (redaction of a pattern split over two deltas), or add
events of its own. Each middleware passes through the event kinds it does not handle.
Middleware is named; an assistant lists the names it uses, in order.

Store middleware (``on_store``) sees the messages a turn is about to store: the caller's new
messages (stored before the model is called) and what the turn produced. It may keep
personal data out of the database, as ``redact_pii`` does with ``store = true``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from graft.context import Context
from graft.events import Event, TextDelta
from graft.messages import Message

__all__ = ["Middleware", "TextMiddleware", "apply_input", "apply_output", "apply_store"]


class Middleware:
    """Base class: override ``on_input``, ``on_output`` or both."""

    name: str = "middleware"

    async def on_input(self, messages: list[Message], ctx: Context) -> list[Message]:
        """Return the messages to send to the model."""
        return messages

    def on_output(self, events: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        """Return the stream of events to send on."""
        return events

    async def on_store(self, messages: list[Message], ctx: Context) -> list[Message]:
        """Return the messages to store (the originals still go to the model)."""
        return messages


class TextMiddleware(Middleware):
    """Output middleware from a per-delta text function (sync or async).

    The function sees each ``TextDelta``'s text on its own; use ``Middleware`` directly for
    transforms that must look across deltas.
    """

    def __init__(
        self, name: str, transform: Callable[[str, Context], str | Awaitable[str]]
    ) -> None:
        self.name = name
        self._transform = transform

    async def on_output(self, events: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        """Rewrite the text of every delta."""
        async for event in events:
            if isinstance(event, TextDelta):
                result = self._transform(event.text, ctx)
                text = result if isinstance(result, str) else await result
                yield TextDelta(text)
            else:
                yield event


async def apply_input(
    chain: Sequence[Middleware], messages: list[Message], ctx: Context
) -> list[Message]:
    """Run input middleware in order."""
    for middleware in chain:
        messages = await middleware.on_input(messages, ctx)
    return messages


def apply_output(
    chain: Sequence[Middleware], events: AsyncIterator[Event], ctx: Context
) -> AsyncIterator[Event]:
    """Wrap the stream so the first middleware in the list sees the agent's events first."""
    for middleware in chain:
        events = middleware.on_output(events, ctx)
    return events


async def apply_store(
    chain: Sequence[Middleware], messages: list[Message], ctx: Context
) -> list[Message]:
    """Run store middleware in order."""
    for middleware in chain:
        messages = await middleware.on_store(messages, ctx)
    return messages
