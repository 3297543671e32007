"""The ``current_time`` tool: the date and time now, in an IANA timezone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from graft.errors import ToolError
from graft.tools.function import tool

__all__ = ["current_time"]


@tool(read_only=True)
def current_time(
    timezone: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+\-/]*$")] = "UTC",
) -> dict[str, str]:
    """Get the current date and time in a timezone.

    Args:
        timezone: IANA timezone name such as 'UTC', 'Asia/Shanghai' or 'Europe/Paris'.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown timezone {timezone!r}; use an IANA name like 'Asia/Shanghai'"
        ) from None
    now = datetime.now(zone)
    return {
        "timezone": timezone,
        "iso": now.isoformat(timespec="seconds"),
        "date": now.strftime("%Y-%m-%d"),
        "time": now.strftime("%H:%M:%S"),
        "weekday": now.strftime("%A"),
    }
