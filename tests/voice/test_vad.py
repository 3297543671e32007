from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from graft.voice.audio import SAMPLE_RATE, read_wav, resample
from graft.voice.vad import Segmenter


def _speech(path: Path) -> np.ndarray:
    samples, rate = read_wav(path)
    return resample(samples, rate, SAMPLE_RATE)


def test_one_question_is_one_utterance_ended_by_the_silence(question_wav: Path) -> None:
    audio = _speech(question_wav)
    segmenter = Segmenter(silence_ms=400)
    before = time.perf_counter()
    found = []
    for start in range(0, audio.size, 320):  # 20 ms frames, as a call delivers them
        found += segmenter.feed(audio[start : start + 320])
    assert len(found) == 1 and segmenter.flush() == []
    utterance = found[0]
    assert 0.35 <= utterance.start_s <= 0.7  # the speech starts after 0.5 s of silence
    assert 0.9 <= utterance.end_s - utterance.start_s <= 2.0  # espeak says it in ~1.3 s
    assert utterance.detected_at >= before
    assert utterance.duration_s >= utterance.end_s - utterance.start_s


def test_pcm16_frames_and_float_frames_agree(question_wav: Path) -> None:
    audio = _speech(question_wav)
    pcm16 = (audio * 32767).astype(np.int16)
    as_float = Segmenter().feed(audio)
    as_pcm = Segmenter().feed(pcm16)
    assert [(u.start_s, u.end_s) for u in as_float] == [(u.start_s, u.end_s) for u in as_pcm]


def test_silence_and_short_clicks_are_not_utterances() -> None:
    segmenter = Segmenter(min_speech_ms=250)
    assert segmenter.feed(np.zeros(SAMPLE_RATE * 2, np.float32)) == []
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[8000:8100] = 0.9
    assert segmenter.feed(click) + segmenter.flush() == []


def test_speech_still_open_at_the_end_of_the_stream_is_flushed(question_wav: Path) -> None:
    audio = _speech(question_wav)[: int(SAMPLE_RATE * 1.6)]  # cut mid-sentence
    segmenter = Segmenter()
    assert segmenter.feed(audio) == []
    [utterance] = segmenter.flush()
    assert utterance.end_s > utterance.start_s
