"""Chinese speech through Kokoro, heard back by graft's own Whisper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graft.voice import VoiceUnavailable
from graft.voice.audio import SAMPLE_RATE, resample
from graft.voice.kokoro import KOKORO_RATE, KokoroSpeaker, _pieces
from graft.voice.models import KOKORO_SHA256, kokoro_model
from graft.voice.stt import WhisperSTT
from graft.voice.tts import EspeakSpeaker, PiperSpeaker, speaker_for


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def kokoro(cache: Path) -> KokoroSpeaker:
    return KokoroSpeaker(cache)


def _spoken(speaker: KokoroSpeaker, text: str) -> np.ndarray:
    pcm = b"".join(speaker.speak(text))
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768


@pytest.mark.parametrize(
    ("sentence", "keys"),
    [
        ("今天北京的天气怎么样？", ["今天", "北京", "天气", "怎么样"]),
        ("谢谢你的帮助，再见！", ["谢谢", "帮助", "再见"]),
    ],
)
def test_kokoro_speaks_mandarin_that_whisper_understands(
    kokoro: KokoroSpeaker, stt: WhisperSTT, sentence: str, keys: list[str]
) -> None:
    samples = _spoken(kokoro, sentence)
    assert kokoro.sample_rate == KOKORO_RATE
    assert 1.0 < samples.size / KOKORO_RATE < 8 and np.abs(samples).max() > 0.05
    transcript = stt.transcribe(resample(samples, KOKORO_RATE, SAMPLE_RATE))
    assert transcript is not None, "Whisper heard no speech"
    assert transcript.language == "zh", transcript
    missing = [key for key in keys if key not in transcript.text]
    assert not missing, (missing, transcript)


def test_chinese_gets_kokoro_and_other_languages_espeak(cache: Path) -> None:
    assert isinstance(speaker_for("zh", cache), KokoroSpeaker)
    assert isinstance(speaker_for("en", cache), PiperSpeaker)  # piper still works beside it
    assert isinstance(speaker_for("fr", cache), EspeakSpeaker)


def test_without_misaki_chinese_falls_back_to_espeak(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "misaki.zh", None)
    with pytest.raises(VoiceUnavailable, match=r"misaki\[zh\] is not installed"):
        KokoroSpeaker(cache)
    assert isinstance(speaker_for("zh", cache), EspeakSpeaker)


def test_the_model_is_joined_once_and_pinned(kokoro: KokoroSpeaker, cache: Path) -> None:
    model = kokoro_model(cache)
    assert model == cache / "kokoro" / "kokoro-v1.0.int8.onnx"
    assert (cache / "kokoro" / "kokoro-v1.0.int8.onnx.ok").read_text().startswith(KOKORO_SHA256)
    before = model.stat().st_mtime_ns
    assert kokoro_model(cache) == model and model.stat().st_mtime_ns == before


def test_jieba_caches_its_dictionary_in_graft_s_cache(tmp_path: Path) -> None:
    """In a fresh process: jieba's dictionary is process-wide, made by the first speaker."""
    cache, temp = tmp_path / "cache", tmp_path / "tmp"
    temp.mkdir()
    code = "import sys, pathlib; from graft.voice.kokoro import KokoroSpeaker; "
    code += "KokoroSpeaker(pathlib.Path(sys.argv[1]))"
    env = {**os.environ, "TMPDIR": str(temp)}
    subprocess.run([sys.executable, "-c", code, str(cache)], check=True, env=env, timeout=120)
    assert (cache / "jieba" / "jieba.cache").stat().st_size > 1_000_000
    assert not list(temp.glob("jieba*")), "nothing of jieba's in the system's temp folder"


def test_numbers_are_read_as_chinese_numerals(kokoro: KokoroSpeaker) -> None:
    assert kokoro.phonemes("2加3等于5。") == kokoro.phonemes("二加三等于五。")
    assert "↘" in kokoro.phonemes("二") and list(kokoro.speak(" ")) == []


def test_an_unknown_voice_is_refused(cache: Path) -> None:
    with pytest.raises(VoiceUnavailable, match=r"no voice 'zf_xiaobei' \(it has jf_alpha"):
        KokoroSpeaker(cache, voice="zf_xiaobei")


def test_long_phoneme_strings_are_cut_at_words_within_the_context() -> None:
    words = ["ni↓xau↓"] * 200
    pieces = _pieces(" ".join(words))
    assert all(len(piece) <= 510 for piece in pieces) and len(pieces) == 4
    assert " ".join(pieces).split() == words
    assert _pieces("a" * 1200) == ["a" * 510, "a" * 510, "a" * 180]
    assert _pieces("  ") == []
