"""The configured speech engines: what ``[voice] stt`` and ``tts`` name, made once.

A call session asks for "the STT" and "a speaker for this language" without knowing which
engine that is:

- ``stt_for(settings)``: ``local`` is the process's Whisper (``graft.voice.models.load_stt``,
  the short window unless ``voice.full_window``); ``provider:model`` a ``RemoteSTT``.
- ``speaker_factory(settings)``: a ``Callable[[str], Speaker]``. ``local`` gives the
  process's speaker per language (``load_speaker``: piper for English, Kokoro for Chinese
  when installed, espeak-ng otherwise), with Kokoro's model joined into the cache under
  ``settings.home``; ``provider:model`` one ``RemoteSpeaker`` for every language (the hosted
  voices are multilingual).

Both block while loading (call them in a worker thread) and raise ``VoiceUnavailable`` when
the engine cannot be had: a missing package, or a remote engine that is not configured.
Remote engines are made once per settings object, so calls share their connection pools.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from graft.voice.models import load_speaker, load_stt

if TYPE_CHECKING:
    from graft.config import Settings
    from graft.voice.remote import RemoteSpeaker, RemoteSTT
    from graft.voice.stt import STT
    from graft.voice.tts import Speaker

__all__ = ["speaker_factory", "stt_for"]

_remote: dict[int, dict[str, RemoteSTT | RemoteSpeaker]] = {}
"""By ``id(settings)`` (settings compare by value, so they cannot be weak keys), then by
``stt:<spec>`` / ``tts:<spec>:<voice>``."""
_lock = threading.Lock()


def stt_for(settings: Settings) -> STT:
    """The speech recognizer ``settings.voice.stt`` names, loaded (and warmed) once."""
    voice = settings.voice
    if voice.stt == "local":
        return load_stt(settings.home / "cache", short_context=not voice.full_window)
    from graft.voice.remote import RemoteSTT

    found = _made(settings, f"stt:{voice.stt}", lambda: RemoteSTT.from_settings(settings))
    assert isinstance(found, RemoteSTT)
    return found


def speaker_factory(settings: Settings) -> Callable[[str], Speaker]:
    """``language → Speaker`` for ``settings.voice.tts``; a remote one is made (checked) now."""
    voice = settings.voice
    if voice.tts == "local":
        return functools.partial(load_speaker, cache=settings.home / "cache")
    from graft.voice.remote import RemoteSpeaker

    key = f"tts:{voice.tts}:{voice.tts_voice}"
    speaker = _made(settings, key, lambda: RemoteSpeaker.from_settings(settings))
    assert isinstance(speaker, RemoteSpeaker)

    def speaker_for(language: str) -> Speaker:
        return speaker

    return speaker_for


def _made(
    settings: Settings, key: str, make: Callable[[], RemoteSTT | RemoteSpeaker]
) -> RemoteSTT | RemoteSpeaker:
    with _lock:
        made = _remote.get(id(settings))
        if made is None:
            made = _remote[id(settings)] = {}
            weakref.finalize(settings, _remote.pop, id(settings), None)
        if key not in made:
            made[key] = make()
        return made[key]
