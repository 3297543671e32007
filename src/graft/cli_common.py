"""What every ``graft`` command shares: loading the settings and running async code.

Domain errors become ``click.ClickException``: a one-line message and exit code 1, never a
traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from graft.config import Settings, load_settings
from graft.errors import GraftError

__all__ = ["async_command", "run", "settings_of"]

T = TypeVar("T")


def settings_of(ctx: click.Context, **overrides: Any) -> Settings:
    """The settings, from ``--config`` or the default places, with ``overrides`` applied."""
    config: Path | None = ctx.obj.get("config") if ctx.obj else None
    return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})


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
