"""Telling the assistant's own voice, heard back through the caller's microphone, from speech.

A caller on speakers feeds the assistant's answer back into the microphone. Browsers cancel
most of it (``echoCancellation``), but what is left, or a client without echo cancellation,
would make the VAD "hear" speech while the assistant talks: a false barge-in that cuts the
answer off, or a turn in which the assistant answers itself. Two checks stop that:

* ``EchoReference`` keeps the last seconds of audio actually played out (the transport
  reports it) and says whether a stretch of microphone audio is mostly a delayed, scaled
  copy of it: the peak of the normalized cross-correlation over all delays up to the
  buffer's length, computed with one FFT (~0.2 ms for 2 s). A person speaking over the
  echo lowers that peak, so real barge-in still gets through.
* ``repeats_assistant`` catches what slips past: a transcript that is mostly words the
  assistant has just said is dropped rather than answered.
"""

from __future__ import annotations

import re
import time
from difflib import SequenceMatcher

import numpy as np

from graft.voice.audio import SAMPLE_RATE, Float32

__all__ = ["EchoReference", "repeats_assistant"]


class EchoReference:
    """A ring of the last ``seconds`` of played-out audio (16 kHz) to compare the mic with."""

    def __init__(self, seconds: float = 2.0, *, threshold: float = 0.7) -> None:
        self.size = int(seconds * SAMPLE_RATE)
        self.threshold = threshold
        self._ring = np.zeros(self.size, np.float32)
        self._last_sound = 0.0  # perf_counter() of the last non-silent audio played

    def add(self, samples: Float32) -> None:
        """Record audio that has just been played out to the caller."""
        n = samples.size
        if n == 0:
            return
        if n >= self.size:
            self._ring[:] = samples[-self.size :]
        else:
            self._ring[:-n] = self._ring[n:]
            self._ring[-n:] = samples
        if float(np.max(np.abs(samples))) > 1e-3:
            self._last_sound = time.perf_counter()

    def active(self, within_s: float | None = None) -> bool:
        """Whether sound was played within the buffer's span (so echo is possible now)."""
        span = self.size / SAMPLE_RATE if within_s is None else within_s
        return time.perf_counter() - self._last_sound < span

    def similarity(self, mic: Float32) -> float:
        """Peak normalized cross-correlation (0 to 1) of ``mic`` against the played audio."""
        m = mic.size
        if m == 0 or m > self.size:
            return 0.0
        mic = mic - float(mic.mean())
        mic_norm = float(np.linalg.norm(mic))
        if mic_norm < 1e-4:
            return 0.0
        ref = self._ring
        n = 1 << int(np.ceil(np.log2(self.size + m)))
        corr = np.fft.irfft(np.fft.rfft(ref, n) * np.conj(np.fft.rfft(mic, n)), n)[
            : self.size - m + 1
        ]
        # Energy of each length-m window of the reference, by a running sum of squares.
        squares = np.concatenate([[0.0], np.cumsum(ref.astype(np.float64) ** 2)])
        window_energy = squares[m:] - squares[:-m]
        denominator = np.sqrt(np.maximum(window_energy, 1e-12)) * mic_norm
        scores = np.abs(corr) / denominator
        scores[window_energy < 1e-6 * m] = 0.0  # silent stretches of the reference
        return float(np.max(scores)) if scores.size else 0.0

    def is_echo(self, mic: Float32) -> bool:
        """True when ``mic`` is mostly a copy of what was just played."""
        return self.active() and self.similarity(mic) >= self.threshold


_WORD = re.compile(r"[\w']+|[\u3400-\u9fff]")


def repeats_assistant(heard: str, spoken: str, *, ratio: float = 0.75) -> bool:
    """True when ``heard`` is mostly a stretch of ``spoken`` (the assistant's recent words)."""
    words = _WORD.findall(heard.lower())
    said = _WORD.findall(spoken.lower())
    if not words or not said:
        return False
    matcher = SequenceMatcher(None, said, words, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return matched / len(words) >= ratio
