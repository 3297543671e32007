"""Speech to text: faster-whisper (Whisper base, CTranslate2, int8) on one utterance.

Whisper pads every input to a 30 s window, so the standard ``transcribe`` spends ~500 ms
encoding silence for a 2 s question. CTranslate2 accepts a shorter mel input (the idea of
whisper.cpp's ``audio_ctx``): the short path encodes only the utterance rounded up to whole
seconds plus two, then greedy-decodes with ``generate``: ~20-45 ms of encoder instead of
~500 ms. Whisper was trained on 30 s windows, and without them the decoder often misses
the end of the speech. Decoded without timestamps, on synthetic questions resampled 20 ms
frame by frame as a call's are, it repeated the utterance until its budget ran out in 16 of
20 cases ("What is 2 plus 3? What is 2 plus 3? What is"). With timestamp tokens the decoder
predicts where the speech ends and stops there: 3 of 20 went wrong with one second of
padding, none with two, which is what this path uses (docs/voice.md).

The short result is still checked, and a degenerate one is thrown away and the utterance
transcribed again in the full 30 s window (``Transcript.retried``), which was right in
every one of those cases. Degenerate (``_degenerate``) means: the decoder reached its token
cap (more tokens than anyone says in that time); a run of tokens repeated (a block of four
or more twice in a row, a shorter one three times); a compression ratio over 2.4 (Whisper's
own test for repetitive text); or an average log-probability under -0.7 (timestamp tokens
included, which are less certain than words: right transcripts measured went down to -0.63,
"No, no, no" heard as "Liao Nuno Liao" was at -0.77).
A false alarm costs only time. ``short_context=False`` (``[voice] full_window``) always
uses the full window.

The language is detected on the short window's encoder output, restricted to
``languages`` (en and zh). Whisper invents sentences on noise, so a result whose no-speech
probability is over ``no_speech_threshold`` is dropped (``None``); callers should gate on
VAD as well.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from graft.voice.audio import Float32
from graft.voice.models import require

__all__ = ["STT", "Transcript", "WhisperSTT"]

log = logging.getLogger(__name__)

_TOKENS_AT_LEAST = 8
_TOKENS_PER_SECOND = 8
"""The short path's token cap: more than anyone says in the audio's time (fast Chinese is
~5 characters a second, up to ~1.5 tokens each), so reaching it means a loop."""
_LOOP_BLOCK = 4
"""A block of this many tokens said twice in a row, or a shorter one three times, is a loop."""
_COMPRESSION_RATIO = 2.4
"""Whisper's own threshold (``compression_ratio_threshold``) for repetitive text."""
_MIN_AVG_LOGPROB = -0.7
"""Below this average log-probability (over words and timestamps) a short result is redone:
on 26 synthetic utterances the right ones stayed above -0.63, and at -0.5 five of them
were redone for nothing (1.2 s each on two cores)."""

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
    retried: bool = False
    """The short window's result looked degenerate; this is the full 30 s window's."""


class STT(Protocol):
    """Speech to text for one utterance (``WhisperSTT``, ``graft.voice.remote.RemoteSTT``)."""

    def transcribe(self, audio: Float32, language: str | None = None) -> Transcript | None:
        """Recognize 16 kHz mono float32 speech; ``None`` when it was not speech. Blocking."""
        ...


@dataclass(frozen=True, slots=True)
class _Decoded:
    """The short window's raw result, with what ``_degenerate`` judges it by."""

    ids: list[int]
    text: str
    language: str
    no_speech_prob: float
    avg_logprob: float
    cap: int


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
        retried = False
        if self.short_context:
            short = self._short(audio, language)
            text, lang, no_speech = short.text, short.language, short.no_speech_prob
            why = None if no_speech > self.no_speech_threshold else _degenerate(short)
            if why is not None:
                log.info("short Whisper window %s (%r): retrying in the full window", why, text)
                text, lang, no_speech = self._standard(audio, short.language)
                retried = True
        else:
            text, lang, no_speech = self._standard(audio, language)
        if no_speech > self.no_speech_threshold or not text:
            return None
        return Transcript(text, lang, no_speech, time.perf_counter() - started, retried)

    def _pick(self, probabilities: dict[str, float]) -> str:
        return max(self.languages, key=lambda lang: probabilities.get(lang, 0.0))

    def _short(self, audio: Float32, language: str | None) -> _Decoded:
        model = self.model
        features = model.feature_extractor(audio)
        frames = min(3000, (features.shape[1] // 100 + 2) * 100)  # whole seconds, +2 s
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
        # With timestamps the decoder predicts where the speech ends and stops there; without
        # them it looped in 16 of 20 utterances (3 of 20 at +1 s of padding, 0 at +2 s).
        prompt += [*tokenizer.sot_sequence]
        seconds = len(audio) / 16_000
        cap = min(self.max_length, int(_TOKENS_AT_LEAST + _TOKENS_PER_SECOND * seconds))
        result = model.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            # CTranslate2 4.x stops Whisper at half of max_length (measured with 4.8.5):
            # room for the prompt and twice the cap, so that reaching ``cap`` is observable
            # whichever way a later release counts.
            max_length=len(prompt) + 2 * cap,
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        ids = [i for i in result.sequences_ids[0] if i < tokenizer.eot]  # text, no timestamps
        # ``scores`` is the sum of log-probabilities over the length (length_penalty=1);
        # faster-whisper averages over the tokens and the end token, as here.
        avg_logprob = float(result.scores[0]) * len(ids) / (len(ids) + 1)
        text = tokenizer.decode(ids).strip()
        return _Decoded(ids, text, language, float(result.no_speech_prob), avg_logprob, cap)

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


def _degenerate(decoded: _Decoded) -> str | None:
    """Why the short window's ``decoded`` looks wrong, or ``None`` when it looks fine."""
    if len(decoded.ids) >= decoded.cap:
        return f"reached its cap of {decoded.cap} tokens"
    loop = _loop(decoded.ids)
    if loop is not None:
        return loop
    ratio = _compression_ratio(decoded.text)
    if ratio > _COMPRESSION_RATIO:
        return f"has a compression ratio of {ratio:.2f}"
    if decoded.ids and decoded.avg_logprob < _MIN_AVG_LOGPROB:
        return f"has an average log-probability of {decoded.avg_logprob:.2f}"
    return None


def _loop(ids: list[int]) -> str | None:
    """A repeated run in ``ids``: ``_LOOP_BLOCK`` or more tokens twice, fewer three times.

    Without its 30 s context the decoder may miss the end of the speech and say it again
    ("What is 2 plus 3? What is 2 plus 3?") or stick on a few tokens ("1, 2, 2, 2"). Real
    speech repeats a word or two twice ("very, very") but rarely a whole phrase at once; a
    false alarm only costs a second decoding.
    """
    n = len(ids)
    for size in range(1, n // 2 + 1):
        times = 2 if size >= _LOOP_BLOCK else 3
        for start in range(n - size * times + 1):
            block = ids[start : start + size]
            copies = (ids[start + k * size : start + (k + 1) * size] for k in range(1, times))
            if all(copy == block for copy in copies):
                return f"repeats a run of {size} tokens {times} times"
    return None


def _compression_ratio(text: str) -> float:
    """Whisper's repetitiveness measure: how much zlib shrinks the text's UTF-8 bytes."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0
