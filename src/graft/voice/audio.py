"""PCM helpers for the voice stack: WAV in and out, sample formats, resampling.

Everything inside graft.voice works on mono float32 in [-1, 1] at 16 kHz (what the VAD and
Whisper take) and produces PCM16 for output. WAV files are read with the standard library's
``wave`` and resampled with numpy (linear interpolation after a box low-pass), so a WAV of
any rate and channel count works without ffmpeg.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from graft.errors import InvalidRequest

__all__ = [
    "SAMPLE_RATE",
    "Float32",
    "read_wav",
    "resample",
    "to_float32",
    "to_pcm16",
    "wav_bytes",
    "write_wav",
]

SAMPLE_RATE = 16_000
"""The rate the VAD and speech recognition work at."""

Float32 = npt.NDArray[np.float32]


def to_float32(samples: npt.NDArray[np.generic]) -> Float32:
    """Mono samples as float32 in [-1, 1]; PCM16 is scaled, float input is passed through."""
    if samples.dtype == np.int16:
        return (samples.astype(np.float32) / 32768.0).astype(np.float32)
    return np.asarray(samples, dtype=np.float32)


def to_pcm16(samples: npt.NDArray[np.generic]) -> bytes:
    """Float samples in [-1, 1] (clipped) as little-endian PCM16 bytes."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return (clipped * 32767.0).astype("<i2").tobytes()


def resample(samples: Float32, rate: int, target: int = SAMPLE_RATE) -> Float32:
    """``samples`` at ``rate`` Hz converted to ``target`` Hz (linear, box-filtered when down)."""
    if rate == target or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    if rate > target:
        width = int(round(rate / target))
        if width > 1:  # a cheap low-pass: average over one output period against aliasing
            samples = np.convolve(samples, np.full(width, 1.0 / width), mode="same")
    n = int(round(samples.size * target / rate))
    positions = np.arange(n, dtype=np.float64) * (rate / target)
    out = np.interp(positions, np.arange(samples.size, dtype=np.float64), samples)
    return out.astype(np.float32)


def read_wav(source: Path | bytes) -> tuple[Float32, int]:
    """A WAV file (path or bytes) as mono float32 at its own rate, and that rate.

    Raises:
        InvalidRequest: Not a PCM WAV file (8, 16, 24 or 32-bit integer samples).
    """
    name = str(source) if isinstance(source, Path) else "the audio"
    try:
        with wave.open(str(source) if isinstance(source, Path) else io.BytesIO(source)) as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InvalidRequest(
            f"{name} is not a PCM WAV file ({exc})", code="invalid_audio"
        ) from None
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        data = (np.where(ints >= 1 << 23, ints - (1 << 24), ints) / float(1 << 23)).astype(
            np.float32
        )
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:  # pragma: no cover - wave rejects other widths itself
        raise InvalidRequest(f"{name}: unsupported sample width {width}", code="invalid_audio")
    if channels > 1:
        data = data[: data.size - data.size % channels].reshape(-1, channels).mean(axis=1)
    return data.astype(np.float32), rate


def wav_bytes(pcm16: bytes, rate: int) -> bytes:
    """Mono PCM16 as a WAV file's bytes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm16)
    return buffer.getvalue()


def write_wav(path: Path, pcm16: bytes, rate: int) -> None:
    """Write mono PCM16 to ``path`` as a WAV file."""
    path.write_bytes(wav_bytes(pcm16, rate))
