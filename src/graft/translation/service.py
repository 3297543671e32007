"""The translation service of one turn: its settings, its backend, a timeout and a cache.

``translator_for(ctx)`` reads ``[plugins.translate]`` (with the assistant's own
``[assistants.NAME.plugins.translate]`` on top), builds the backend it names, and wraps it
in a ``Translator`` that every caller (the ``translate`` tool, the middleware) goes through:

- **a deadline** on every call, ``timeout`` seconds, over whatever the backend does;
- **whitespace kept**: services strip it, so only the text between leading and trailing
  whitespace is sent, and text without a letter (numbers, emoji, blank lines) is not sent;
- **a process-wide cache** of recent translations, keyed by service, languages and text: a
  conversation's history goes to the model with every turn, and is translated once.

HTTP backends reach their service through the network guard with the installation's policy
widened by ``allow_hosts`` and the port of ``url``; refusals are audited as
``network.blocked`` with ``service = "translate"``. The ``model`` backend needs
``Context.get_model`` (how a plugin reaches graft's models); it uses the setting ``model``,
else the assistant's own model.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, get_args

import httpx

from graft.config import setting_value
from graft.context import Context
from graft.errors import ConfigError
from graft.netguard import DEFAULT_PORTS, NetworkPolicy, audit_blocked

from .backends import Backend, DeepLBackend, LibreTranslateBackend, ModelBackend, TranslationError
from .detect import has_letters
from .languages import normalize

__all__ = ["NAME", "BackendName", "TranslateOptions", "Translator", "options", "translator_for"]

NAME: Final = "translate"
BackendName = Literal["model", "libretranslate", "deepl"]
_KEYS: Final = frozenset(
    {"backend", "url", "api_key", "working_language", "timeout", "allow_hosts", "model", "tool"}
)
_CACHE_ENTRIES: Final = 4096
_CACHE_MAX_CHARS: Final = 4000
"""Longer texts are not cached: they rarely come back, and would crowd out the rest."""


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    """``[plugins.translate]``, checked."""

    backend: BackendName = "model"
    url: str | None = None
    api_key: str | None = None
    working_language: str = "en"
    timeout: float = 10.0
    allow_hosts: tuple[str, ...] = ()
    model: str | None = None


def options(ctx: Context) -> TranslateOptions:
    """The turn's translation settings; ``ConfigError`` names the first bad one."""
    config = ctx.plugin_config(NAME, known=_KEYS)
    backend = config.get("backend", "model")
    if backend not in get_args(BackendName):
        raise ConfigError(f"plugins.{NAME}.backend must be one of {list(get_args(BackendName))}")
    strings: dict[str, str | None] = {}
    for key in ("url", "api_key", "model"):
        value = config.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"plugins.{NAME}.{key} must be a non-empty string")
        strings[key] = value
    if backend == "libretranslate" and strings["url"] is None:
        raise ConfigError(f"plugins.{NAME}.url is required for the libretranslate backend")
    if backend == "deepl" and strings["api_key"] is None:
        raise ConfigError(f'plugins.{NAME}.api_key is required for deepl: {{ "$env" = "NAME" }}')
    try:
        working = normalize(str(config.get("working_language", "en")))
    except ValueError as exc:
        raise ConfigError(f"plugins.{NAME}.working_language: {exc}") from None
    timeout = setting_value(config.get("timeout", 10.0))
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 120:
        raise ConfigError(f"plugins.{NAME}.timeout must be a number of seconds, up to 120")
    hosts = setting_value(config.get("allow_hosts", []))
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"plugins.{NAME}.allow_hosts must be a list of host names or CIDRs")
    NetworkPolicy(allow_hosts=hosts)  # ConfigError for a bad entry
    return TranslateOptions(
        backend, strings["url"], strings["api_key"], working, float(timeout), tuple(hosts),
        strings["model"],
    )  # fmt: skip


_cache: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()
_cache_lock = threading.Lock()


class Translator:
    """A backend with a deadline, whitespace handling and the shared cache."""

    def __init__(self, backend: Backend, *, timeout: float = 10.0, cache_key: str = "") -> None:
        self.backend = backend
        self.timeout = timeout
        self._cache_key = cache_key or backend.name

    async def translate(
        self, texts: Sequence[str], target: str, source: str | None = None
    ) -> list[str]:
        """The translations of ``texts`` into ``target``, in order.

        Raises ``TranslationError`` when the backend fails or the deadline passes.
        """
        out = list(texts)
        todo: dict[str, list[int]] = {}
        for index, text in enumerate(texts):
            core = text.strip()
            if not has_letters(core):
                continue
            cached = self._cached(core, target, source)
            if cached is None:
                todo.setdefault(core, []).append(index)
            else:
                out[index] = _rewrap(text, cached)
        if todo:
            cores = list(todo)
            try:
                async with asyncio.timeout(self.timeout):
                    done = await self.backend.translate(cores, target, source)
            except TimeoutError:
                why = f"{self.backend.name} did not answer within {self.timeout:g} s"
                raise TranslationError(why) from None
            for core, translation in zip(cores, done, strict=True):
                self._remember(core, target, source, translation.text)
                for index in todo[core]:
                    out[index] = _rewrap(texts[index], translation.text)
        return out

    def _cached(self, text: str, target: str, source: str | None) -> str | None:
        key = (self._cache_key, source or "", target, text)
        with _cache_lock:
            found = _cache.get(key)
            if found is not None:
                _cache.move_to_end(key)
            return found

    def _remember(self, text: str, target: str, source: str | None, translated: str) -> None:
        if len(text) > _CACHE_MAX_CHARS:
            return
        with _cache_lock:
            _cache[(self._cache_key, source or "", target, text)] = translated
            while len(_cache) > _CACHE_ENTRIES:
                _cache.popitem(last=False)

    async def aclose(self) -> None:
        """Release the backend's connections."""
        await self.backend.aclose()

    async def __aenter__(self) -> Translator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _rewrap(original: str, translated: str) -> str:
    """``translated`` with the whitespace around ``original`` put back."""
    core = original.strip()
    if not core:
        return original
    start = original.index(core)
    return original[:start] + translated.strip() + original[start + len(core) :]


def translator_for(ctx: Context, settings: TranslateOptions | None = None) -> Translator:
    """The turn's translator, from ``[plugins.translate]`` (or ``settings``).

    Raises ``ConfigError`` for bad settings and ``TranslationError`` when the model backend
    cannot reach a model.
    """
    opts = settings or options(ctx)
    on_blocked = None
    if ctx.store is not None:
        on_blocked = audit_blocked(
            ctx.store, actor=ctx.principal.user_id, tenant=ctx.principal.tenant, service=NAME
        )
    if opts.backend == "model":
        model_id = opts.model or ctx.assistant.model or ctx.settings.model
        get_model = getattr(ctx, "get_model", None)
        if get_model is None:
            raise TranslationError("the model backend needs Context.get_model, which is unset")
        model = ModelBackend(get_model(model_id), on_blocked=on_blocked)
        return Translator(model, timeout=opts.timeout)
    url = opts.url
    policy = ctx.settings.network.policy()
    if url is not None:
        parsed = httpx.URL(url)
        port = parsed.port or DEFAULT_PORTS.get(parsed.scheme, 443)
        policy = policy.allowing(*opts.allow_hosts, ports=[port])
    else:
        policy = policy.allowing(*opts.allow_hosts)
    common: dict[str, Any] = {"policy": policy, "on_blocked": on_blocked, "timeout": opts.timeout}
    backend: Backend
    if opts.backend == "deepl":
        assert opts.api_key is not None
        backend = DeepLBackend(url, opts.api_key, **common)
    else:
        assert url is not None
        backend = LibreTranslateBackend(url, opts.api_key, **common)
    return Translator(backend, timeout=opts.timeout, cache_key=f"{opts.backend}:{url}")
