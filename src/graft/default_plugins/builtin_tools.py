"""Registers graft's built-in tools so the offline default has something real to call."""

from __future__ import annotations

from collections.abc import Callable

from graft.config import Settings
from graft.default_plugins.calculator import calculator
from graft.default_plugins.clock import current_time
from graft.default_plugins.look import CameraToolset
from graft.hookspecs import hookimpl


@hookimpl
def register_tools(register: Callable[..., None], settings: Settings) -> None:
    """Register ``calculator``, ``current_time`` and ``look`` (while a camera is on)."""
    register(calculator)
    register(current_time)
    register(CameraToolset())
