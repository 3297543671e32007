from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from graft.voice.audio import SAMPLE_RATE, read_wav, resample
from graft.voice.stt import WhisperSTT, _one_period
from graft.voice.vad import Segmenter


def _utterance(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    segmenter = Segmenter()
    [utterance] = segmenter.feed(resample(samples, rate, SAMPLE_RATE)) + segmenter.flush()
    return utterance.audio


def _heard(text: str) -> bool:
    words = text.lower()
    return ("two" in words or "2" in words) and ("three" in words or "3" in words)


def test_the_short_window_transcribes_the_question(stt: Any, question_wav: Path) -> None:
    transcript = stt.transcribe(_utterance(question_wav))
    assert transcript is not None, "the question was taken for silence"
    assert _heard(transcript.text), transcript.text
    assert transcript.text.lower().count("what") == 1, transcript.text  # said once, no loop
    assert transcript.language == "en" and transcript.no_speech_prob < 0.6
    assert transcript.seconds < 5


def test_silence_around_the_speech_does_not_make_the_short_window_loop(
    stt: Any, question_wav: Path
) -> None:
    # Half a second of silence each side, as a live call's utterance carries: without its
    # 30 s context the decoder then repeated the question until its budget ran out.
    samples, rate = read_wav(question_wav)
    quiet = np.zeros(SAMPLE_RATE // 2, np.float32)
    padded = np.concatenate([quiet, resample(samples, rate, SAMPLE_RATE), quiet])
    transcript = stt.transcribe(padded)
    assert transcript is not None and _heard(transcript.text), transcript
    assert transcript.text.lower().count("what") == 1, transcript.text


def test_a_repeated_run_is_cut_to_its_first_copy() -> None:
    assert _one_period([1, 2, 3, 1, 2, 3, 1, 2]) == [1, 2, 3]
    assert _one_period([1, 2, 3, 4]) == [1, 2, 3, 4]
    assert _one_period([1, 2, 1]) == [1, 2, 1]
    assert _one_period([]) == []


def test_the_standard_30s_window_agrees(stt: Any, voice_cache: Path, question_wav: Path) -> None:
    standard = WhisperSTT(voice_cache / "whisper-base", short_context=False)
    transcript = standard.transcribe(_utterance(question_wav))
    assert transcript is not None and _heard(transcript.text), transcript
    assert transcript.language == "en"


def test_noise_is_dropped_not_transcribed(stt: Any) -> None:
    assert stt.transcribe(np.zeros(SAMPLE_RATE * 2, np.float32)) is None
