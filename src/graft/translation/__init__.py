"""Translation between the user's language and the model's: backends, detection, streaming.

- ``backends``: LibreTranslate, DeepL and the chat model itself, behind one protocol;
- ``languages``: one canonical language code, and each backend's own;
- ``detect``: the language of a text, offline (script, then optionally ``py3langid``);
- ``stream``: streamed text cut into whole sentences;
- ``service``: ``[plugins.translate]``, a deadline and a cache over a backend;
- ``middleware`` and ``tool``: what the ``translate`` default plugin registers.
"""

from __future__ import annotations

from .backends import (
    Backend,
    DeepLBackend,
    LibreTranslateBackend,
    ModelBackend,
    Translation,
    TranslationError,
)
from .middleware import TranslateMiddleware, TurnLanguages
from .service import TranslateOptions, Translator, translator_for
from .stream import Segment, SentenceSplitter
from .tool import translate

__all__ = [
    "Backend",
    "DeepLBackend",
    "LibreTranslateBackend",
    "ModelBackend",
    "Segment",
    "SentenceSplitter",
    "TranslateMiddleware",
    "TranslateOptions",
    "Translation",
    "TranslationError",
    "Translator",
    "TurnLanguages",
    "translate",
    "translator_for",
]
