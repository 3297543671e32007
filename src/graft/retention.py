"""Retention: conversations go once their assistant's ``retention_days`` have passed.

An assistant with ``retention_days = N`` keeps a conversation for N days after its latest
turn began (the conversation's ``updated_at``); then the conversation is deleted with its
messages, turns and tool runs, in every tenant. ``purge_expired`` makes one pass over the
assistants that set it. ``graft serve`` runs a pass shortly after it starts and then every
hour (``purging``, entered by the app's lifespan); ``graft privacy purge`` runs one from the
command line. With several workers each one purges: a pass deletes only what is expired, so
two passes at once delete nothing twice.

Conversations of an assistant that is no longer configured are kept: nothing says for how
long. Each pass that removed something is logged and recorded in the audit log
(``conversations.purge``, with the count, never what was in them).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial

import anyio

from graft import audit
from graft.config import Settings
from graft.store.base import Store

__all__ = [
    "ACTOR",
    "FIRST_DELAY",
    "INTERVAL",
    "purge_expired",
    "purging",
    "retention_configured",
    "run_retention",
]

log = logging.getLogger(__name__)

FIRST_DELAY = 30.0
"""Seconds after the server starts before the first pass (start-up work goes first)."""

INTERVAL = 3600.0
"""Seconds between two passes."""

ACTOR = "graft:retention"
"""Who the audit log says purged: the server's retention task."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def retention_configured(settings: Settings) -> bool:
    """Whether any assistant sets ``retention_days``."""
    return any(
        (assistant := settings.assistant(name)) is not None and assistant.retention_days is not None
        for name in settings.assistant_names()
    )


async def purge_expired(
    store: Store, settings: Settings, *, now: datetime | None = None, actor: str = ACTOR
) -> dict[str, int]:
    """Delete every conversation past its assistant's retention period: one pass.

    Args:
        store: Where the conversations are.
        settings: Which assistants set ``retention_days``.
        now: The time to count back from (tests pass one); default: now.
        actor: Who purges, for the audit log.

    Returns:
        How many conversations went, by assistant, for each assistant that sets
        ``retention_days`` (0 included).
    """
    now = now or _utcnow()
    removed: dict[str, int] = {}
    for name in settings.assistant_names():
        assistant = settings.assistant(name)
        if assistant is None or assistant.retention_days is None:
            continue
        cutoff = now - timedelta(days=assistant.retention_days)
        count = removed[name] = await store.purge_conversations(name, cutoff)
        if not count:
            log.debug("retention: nothing of assistant %r to remove", name)
            continue
        log.info(
            "retention: removed %d conversation(s) of assistant %r not updated since %s",
            count,
            name,
            cutoff.isoformat(timespec="seconds"),
        )
        event = audit.AuditEvent(
            "conversations.purge",
            actor,
            target=f"assistant:{name}",
            details={
                "conversations": count,
                "retention_days": assistant.retention_days,
                "older_than": cutoff.isoformat(),
            },
        )
        await audit.record(store, event)
    return removed


async def run_retention(
    store: Store,
    settings: Settings,
    *,
    first_delay: float | None = None,
    interval: float | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> None:
    """Purge after ``first_delay`` seconds, then every ``interval``, until cancelled.

    Returns at once when no assistant sets ``retention_days``. A pass that fails (the
    database is away) is logged and tried again at the next interval.

    Args:
        store: Where the conversations are.
        settings: Which assistants set ``retention_days``.
        first_delay: Seconds before the first pass; default ``FIRST_DELAY``.
        interval: Seconds between passes; default ``INTERVAL``.
        clock: What time it is (tests pass a clock that runs ahead).
    """
    if not retention_configured(settings):
        return
    every = INTERVAL if interval is None else interval
    await anyio.sleep(FIRST_DELAY if first_delay is None else first_delay)
    while True:
        try:
            await purge_expired(store, settings, now=clock())
        except Exception:
            log.exception("retention: the purge failed; trying again in %.0f s", every)
        await anyio.sleep(every)


@asynccontextmanager
async def purging(
    store: Store,
    settings: Settings,
    *,
    first_delay: float | None = None,
    interval: float | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> AsyncIterator[None]:
    """Run ``run_retention`` in the background while the block runs; stop it on the way out."""
    task = partial(
        run_retention, store, settings, first_delay=first_delay, interval=interval, clock=clock
    )
    async with anyio.create_task_group() as group:
        group.start_soon(task)
        try:
            yield
        finally:
            group.cancel_scope.cancel()
