"""What an OpenAI-compatible upstream's error answer says: how long to wait, and why.

Shared by the chat provider (``graft.models.openai``, aiohttp) and the embeddings client
(``graft.embeddings``, httpx): both read ``Retry-After`` the same way and show the same
masked, shortened message of an error body.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any, Final

from graft.secrets import mask, mask_secrets

__all__ = ["MAX_ERROR_CHARS", "error_text", "retry_after"]

MAX_ERROR_CHARS: Final = 300
"""An error message longer than this is cut (with an ellipsis)."""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asks us to wait (``retry-after-ms`` or ``Retry-After``), if any."""
    millis = headers.get("retry-after-ms")
    value = headers.get("retry-after")
    try:
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        if value is not None:
            return max(0.0, float(value))
    except ValueError:
        pass
    if value is None:
        return None
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def error_text(raw: bytes | dict[str, Any], key: str = "") -> str:
    """The message of an error body: OpenAI's ``{"error": {"message"}}`` and kin, or its text.

    Secrets are masked (``key`` too, even one too short for the registry) before the text is
    cut to length, so that no cut leaves the start of one.
    """
    data: Any = raw
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
    else:
        text = json.dumps(raw, ensure_ascii=False)
    if isinstance(data, dict):
        found = data.get("error", data)
        if isinstance(found, dict):
            found = found.get("message") or found.get("detail") or found.get("msg")
        if isinstance(found, str) and found:
            text = found
    text = " ".join(text.split())
    text = mask_secrets(text.replace(key, mask(key)) if key else text)
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
