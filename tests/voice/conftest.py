"""Real speech for the voice tests: a question spoken by espeak-ng, the joined Whisper model
and the loaded engines, each made once per session (loading costs about a second)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

QUESTION = "What is two plus three?"


@pytest.fixture(scope="session")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QUESTION spoken by espeak-ng (22 050 Hz mono), with a second of silence after it."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: apt-get install espeak-ng (scripts/test does)"
    folder = tmp_path_factory.mktemp("speech")
    raw = folder / "raw.wav"
    subprocess.run([espeak, "-v", "en-us", "-w", str(raw), QUESTION], check=True)
    from graft.voice.audio import read_wav, to_pcm16, write_wav

    samples, rate = read_wav(raw)
    import numpy as np

    padded = np.concatenate([np.zeros(rate // 2), samples, np.zeros(rate)]).astype(np.float32)
    path = folder / "question.wav"
    write_wav(path, to_pcm16(padded), rate)
    return path


@pytest.fixture(scope="session")
def voice_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder with Whisper base joined into it."""
    from graft.voice.models import whisper_base_dir

    cache = tmp_path_factory.mktemp("cache")
    whisper_base_dir(cache)
    return cache


@pytest.fixture(scope="session")
def stt(voice_cache: Path) -> Any:
    from graft.voice.models import whisper_base_dir
    from graft.voice.stt import WhisperSTT

    model = WhisperSTT(whisper_base_dir(voice_cache))
    model.warm()
    return model
