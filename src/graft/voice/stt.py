"""Speech to text: faster-whisper (Whisper base, CTranslate2, int8) on one utterance.

Whisper pads every input to a 30 s window, so the standard ``transcribe`` spends ~500 ms
encoding silence for a 2 s question. CTranslate2 accepts a shorter mel input (the idea of
whisper.cpp's ``audio_ctx``): the short path encodes only the utterance rounded up to whole
seconds plus one, then greedy-decodes with ``generate``: ~20-45 ms of encoder instead of
~500 ms, with identical text on the samples measured (docs/voice.md). Whisper was trained
on 30 s windows, so ``short_context=False`` keeps the standard path one setting away. With
silence after the speech the short window can make the decoder repeat the utterance until
its budget runs out: the budget follows the audio's length, and a repeated run is cut to
its first copy (``_one_period``).

The language is detected on the same encoder output, restricted to ``languages`` (en and
zh). Whisper invents sentences on noise, so a result whose no-speech probability is over
``no_speech_threshold`` is dropped (``None``); callers should gate on VAD as well.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graft.voice.audio import Float32
from graft.voice.models import require

__all__ = ["Transcript", "WhisperSTT"]

_TOKENS_AT_LEAST = 16
_TOKENS_PER_SECOND = 10
"""The short path's decoding budget: generous for speech, short for a loop."""

_ZH_PROMPT = "以下是普通话的句子。"
"""Steers Whisper to simplified characters (it otherwise often writes traditional ones)."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said, in which language, and how sure Whisper is that it was speech."""

    text: str
    language: str
    no_speech_prob: float
    seconds: float
    """Wall time the recognition took."""


class WhisperSTT:
    """Whisper base on the CPU: ``transcribe(audio16k)`` → ``Transcript`` or ``None``."""

    def __init__(
        self,
        model_dir: Path,
        *,
        threads: int = 2,
        short_context: bool = True,
        languages: tuple[str, ...] = ("en", "zh"),
        no_speech_threshold: float = 0.6,
        max_length: int = 128,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never needs the hub
        fw = require("faster_whisper", "faster-whisper")
        self._ct2 = require("ctranslate2", "faster-whisper")
        self._tokenizer_cls = require("faster_whisper.tokenizer", "faster-whisper").Tokenizer
        self.model: Any = fw.WhisperModel(
            str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads
        )
        self.short_context = short_context
        self.languages = languages
        self.no_speech_threshold = no_speech_threshold
        self.max_length = max_length

    def warm(self) -> None:
        """Run one recognition on silence: the first encode is several times slower."""
        self.transcribe(np.zeros(16_000, np.float32), language="en")

    def transcribe(self, audio: Float32, language: str | None = None) -> Transcript | None:
        """Recognize one utterance (16 kHz mono float32); ``None`` when it was not speech."""
        started = time.perf_counter()
        if self.short_context:
            text, lang, no_speech = self._short(audio, language)
        else:
            text, lang, no_speech = self._standard(audio, language)
        if no_speech > self.no_speech_threshold or not text:
            return None
        return Transcript(text, lang, no_speech, time.perf_counter() - started)

    def _pick(self, probabilities: dict[str, float]) -> str:
        return max(self.languages, key=lambda lang: probabilities.get(lang, 0.0))

    def _short(self, audio: Float32, language: str | None) -> tuple[str, str, float]:
        model = self.model
        features = model.feature_extractor(audio)
        frames = min(3000, (features.shape[1] // 100 + 1) * 100)  # whole seconds, +1 s
        mel = np.full((1, features.shape[0], frames), features.min(), np.float32)
        mel[0, :, : min(frames, features.shape[1])] = features[:, :frames]
        encoded = model.model.encode(self._ct2.StorageView.from_array(mel), to_cpu=False)
        if language is None:
            scores = model.model.detect_language(encoded)[0]
            language = self._pick({token[2:-2]: p for token, p in scores})
        tokenizer = self._tokenizer_cls(
            model.hf_tokenizer, True, task="transcribe", language=language
        )
        prompt: list[int] = []
        if language == "zh":
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + _ZH_PROMPT)]
        prompt += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        seconds = len(audio) / 16_000
        result = model.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            # Nobody says more than ~6 tokens a second: a longer answer is a loop.
            max_length=min(self.max_length, int(_TOKENS_AT_LEAST + _TOKENS_PER_SECOND * seconds)),
            return_no_speech_prob=True,
        )[0]
        ids = _one_period([i for i in result.sequences_ids[0] if i < tokenizer.eot])
        return tokenizer.decode(ids).strip(), language, float(result.no_speech_prob)

    def _standard(self, audio: Float32, language: str | None) -> tuple[str, str, float]:
        if language is None:
            lang, _, probabilities = self.model.detect_language(audio)
            language = self._pick(dict(probabilities)) if lang not in self.languages else lang
        segments, _ = self.model.transcribe(
            audio,
            language=language,
            beam_size=1,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            initial_prompt=_ZH_PROMPT if language == "zh" else None,
        )
        found = list(segments)
        text = "".join(s.text for s in found).strip()
        no_speech = min((s.no_speech_prob for s in found), default=1.0)
        return text, language, float(no_speech)


def _one_period(ids: list[int]) -> list[int]:
    """``ids`` without a loop: the short window can make Whisper repeat the utterance.

    With silence after the speech and no 30 s context, the decoder may miss the end and
    say the same sentence again and again until its budget runs out ("What is 2 plus 3?
    What is 2 plus 3? What is 2 plus"). When the whole output is one run of tokens
    repeated (the last copy possibly cut short), only the first copy is kept; real speech
    that repeats itself whole, word for word, is rare enough to lose.
    """
    n = len(ids)
    for period in range(1, n // 2 + 1):
        if all(ids[i] == ids[i + period] for i in range(n - period)):
            return ids[:period]
    return ids
