"""A turn's citations at rest: the passages its answer cited, so a reloaded answer shows them.

The ``cited`` event of a turn (``graft.knowledge.citations``) lists the passages the answer's
``[n]`` markers name: number, document, title, source, link and the passage's text. The client
shows them as footnotes while the answer streams; ``finish_turn`` stores the list with the
turn, and ``get_conversation`` gives it back on ``TurnInfo.citations``, so a conversation read
later (``GET /v1/conversations/{id}``, the privacy export) shows the same footnotes. A turn
that cited nothing stores ``NULL``, not an empty list.

The list is one JSON text in ``turns.citations``. Titles and passages are document content,
so the column is sealed at rest like the messages (``graft.store.encrypted.TURNS``: bound to
the conversation, re-encrypted by ``graft keys rotate-data-key``). Every store encodes and
decodes through here, so each gives back the same values: what JSON keeps (a tuple comes back
a list), in the order the event had them.
"""

from __future__ import annotations

import json
from typing import Any

from graft.crypto import DataKeys
from graft.store.encrypted import TURNS, reveal, seal

__all__ = ["decode_citations", "encode_citations", "reveal_citations", "seal_citations"]

_CONTEXT = TURNS.context("citations", "")
"""The context of the column's values, less the conversation id that ends it."""


def encode_citations(citations: list[dict[str, Any]] | None) -> str | None:
    """The column's plaintext: the list as JSON, or ``None`` for no citations.

    Raises:
        TypeError: A citation holds a value JSON cannot (checked before any write).
    """
    if not citations:
        return None
    return json.dumps(citations, ensure_ascii=False, separators=(",", ":"))


def decode_citations(text: str | None) -> list[dict[str, Any]]:
    """The list a column's plaintext holds; empty for ``None``."""
    if not text:
        return []
    found = json.loads(text)
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def seal_citations(keys: DataKeys | None, text: str | None, conversation_id: str) -> str | None:
    """``text`` (``encode_citations``) as the column stores it in the conversation's turn."""
    return seal(keys, text, _CONTEXT + conversation_id)


def reveal_citations(
    keys: DataKeys | None, stored: str | None, conversation_id: str
) -> list[dict[str, Any]]:
    """The citations of a stored ``turns.citations`` value (sealed or not).

    Raises:
        DataIntegrityError: The value fails its integrity check, or it is sealed and there
            are no keys.
    """
    return decode_citations(reveal(keys, stored, TURNS.context("citations", conversation_id)))
