"""The ``translate`` plugin: a translation tool and the translating middleware.

- The middleware (``middleware = ["translate"]``) lets a user write in their own language to
  an assistant that works in another: see ``graft.translation.middleware``.
- The tool ``translate(text, target_lang, source_lang)`` is registered when an assistant
  lists it in its ``tools``, or with ``tool = true`` (an assistant with ``tools`` unset gets
  every tool, and a small model picks worse from a longer list).

Settings, ``[plugins.translate]``, and per assistant ``[assistants.NAME.plugins.translate]``::

    backend = "libretranslate"          # or "deepl", or "model" (the default: the chat model)
    url = "http://translate.corp:5000"  # the service (DeepL: defaults to DeepL's own API)
    api_key = { "$env" = "TRANSLATE_KEY" }   # LibreTranslate's api_key, DeepL's auth key
    working_language = "en"             # the language the assistant works in
    timeout = 10                        # seconds per translation call
    allow_hosts = ["translate.corp"]    # an intranet service the network guard may reach
    model = "openai:gpt-4o-mini"        # the model backend's model (default: the assistant's)
    tool = false                        # offer the tool to every assistant (global only)
"""

from __future__ import annotations

from collections.abc import Callable

from graft.config import Settings
from graft.hookspecs import hookimpl
from graft.translation import TranslateMiddleware, translate
from graft.translation.service import NAME

__all__ = ["register_middleware", "register_tools"]


@hookimpl
def register_tools(register: Callable[..., None], settings: Settings) -> None:
    """Register ``translate`` when an assistant lists it, or ``tool = true``."""
    listed = any(
        a.tools is not None and translate.name in a.tools for a in settings.assistants.values()
    )
    if listed or settings.plugin_config(NAME).get("tool") in (True, "true"):
        register(translate)


@hookimpl
def register_middleware(register: Callable[..., None]) -> None:
    """Register the ``translate`` middleware."""
    register(TranslateMiddleware())
