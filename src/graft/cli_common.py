"""What every ``graft`` command shares: loading the settings, the store, running async code.

Domain errors become ``click.ClickException``: a one-line message and exit code 1, never a
traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from graft.config import Settings, load_settings
from graft.context import Principal
from graft.errors import ConfigError, GraftError
from graft.identity import ROLES

if TYPE_CHECKING:
    from graft.store import Store

__all__ = [
    "async_command",
    "opened_store",
    "operator",
    "run",
    "settings_of",
    "time_window",
    "write_private",
]

T = TypeVar("T")

_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def time_window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` as aware datetimes; ``--until`` must come after ``--since``.

    Each is ``7d``, ``12h``, ``2w`` ago, or an ISO date or time (UTC when no zone is given);
    a bad value is a usage error naming its option.
    """
    start, end = _when(since, "--since"), _when(until, "--until")
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(f"{until!r} is not after --since {since!r}", param_hint="--until")
    return start, end


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    if value[:-1].isdigit() and value[-1:] in _UNITS:
        return datetime.now(UTC) - timedelta(**{_UNITS[value[-1]]: int(value[:-1])})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use 7d, 12h, 2w or a date such as 2026-11-01", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings, from ``--config`` or the default places, with ``overrides`` applied."""
    config: Path | None = ctx.obj.get("config") if ctx.obj else None
    return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})


@contextlib.asynccontextmanager
async def opened_store(settings: Settings, *, if_memory: str) -> AsyncIterator[Store]:
    """The store the settings point at, started, and closed after.

    Raises:
        ConfigError: The store is ``memory://``, which a command's process would take with it
            (``if_memory`` says what would be lost).
    """
    from graft.crypto import KeySource
    from graft.store import open_store

    if settings.sqlalchemy_url == "memory://":
        raise ConfigError(f"the store is memory://: {if_memory}")
    store = open_store(settings.sqlalchemy_url, data_keys=KeySource.from_settings(settings))
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def operator() -> Principal:
    """Who acts from the command line: the installation's operator, with every right.

    The command line reads the database the settings point at, so it may do what an admin
    may; the audit log names it ``cli:<login name>``.
    """
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        name = "operator"
    return Principal(f"cli:{name}", frozenset(ROLES))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end; a ``GraftError`` becomes a one-line ``ClickException``."""
    try:
        return asyncio.run(coro)
    except GraftError as exc:
        raise click.ClickException(exc.message) from None


def async_command(func: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Make an ``async def`` click command callable as a plain one."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        run(func(*args, **kwargs))  # type: ignore[arg-type]

    return wrapper


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (exports hold people's chats)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # an existing file keeps its mode otherwise
        file.write(text)
