"""The ``translate`` tool: the model asks for a translation on its own initiative.

It goes through the same service as the middleware (``[plugins.translate]``: backend,
deadline, cache). Declared ``read_only``: it changes nothing, so it runs without approval
even after the turn read untrusted content. It does send the text out, but only to the
translation service the admin configured (or to the chat model itself), never to an address
the model or a document could choose, so a prompt injection gains no new channel from it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from graft.context import Context
from graft.errors import ToolArgumentError, ToolError
from graft.tools.function import tool

from .backends import TranslationError
from .detect import adetect
from .languages import normalize
from .service import translator_for

__all__ = ["translate"]


def _language(value: str, argument: str) -> str:
    try:
        return normalize(value)
    except ValueError as exc:
        raise ToolArgumentError(f"{argument}: {exc}") from None


@tool(read_only=True)
async def translate(
    text: Annotated[str, Field(min_length=1, max_length=10_000)],
    target_lang: Annotated[str, Field(min_length=2, max_length=32)],
    ctx: Context,
    source_lang: Annotated[str | None, Field(max_length=32)] = None,
) -> dict[str, Any]:
    """Translate a text into another language.

    Args:
        text: The text to translate.
        target_lang: The language to translate into, as a code: "en", "zh", "zh-Hant", "ja",
            "fr", "pt-BR", ...
        ctx: The turn (graft passes it; the model does not see it).
        source_lang: The language of the text, if known; detected otherwise.
    """
    target = _language(target_lang, "target_lang")
    source = _language(source_lang, "source_lang") if source_lang else await adetect(text)
    try:
        async with translator_for(ctx) as translator:
            (translated,) = await translator.translate([text], target, source)
    except TranslationError as exc:
        raise ToolError(exc.message) from exc
    return {"text": translated, "source_lang": source, "target_lang": target}
