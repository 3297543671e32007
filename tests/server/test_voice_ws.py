"""``GET /v1/voice/ws``: a voice call over a WebSocket (src/graft/server/voice_ws.py).

A real uvicorn server, a real WebSocket client (websockets), real speech (espeak-ng's
question), the real VAD, Whisper and speaker; only the chat model is scripted.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tests.voice.conftest import question_wav, voice_cache  # noqa: F401 (fixtures)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from graft.default_plugins.api_key_auth import hash_api_key
from graft.testing import FakeModel
from graft.voice import VOICE_EXTRA_HINT, VoiceUnavailable

KEYS = [{"sha256": hash_api_key("sk-good"), "user": "ann", "roles": ["staff"]}]
GOOD = {"authorization": "Bearer sk-good"}
ANSWER = "Two plus three is five. Anything else?"


@pytest.fixture
def server(graft_factory: Any, live_server: Any, voice_cache: Path) -> Any:  # noqa: F811
    """A live server with API keys and a scripted model, its cache holding Whisper base."""
    model = FakeModel(ANSWER, "Six.")
    graft = graft_factory(model, auth={"api_keys": KEYS}, voice={"greeting": ""})
    cache = graft.settings.home / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "whisper-base").symlink_to(voice_cache / "whisper-base")
    live = live_server(graft)
    live.model = model
    live.graft = graft
    return live


def _url(server: Any, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/v1/voice/ws{query}"


def _frames(path: Path) -> tuple[list[bytes], int]:
    """The (16-bit mono) WAV's own bytes as 20 ms PCM16 frames, and its rate."""
    with wave.open(str(path)) as wav:
        assert (wav.getsampwidth(), wav.getnchannels()) == (2, 1)
        rate, pcm = wav.getframerate(), wav.readframes(wav.getnframes())
    step = rate // 50 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)], rate


def _until_done(ws: ClientConnection) -> tuple[list[dict[str, Any]], bytes]:
    events: list[dict[str, Any]] = []
    audio = bytearray()
    while not events or events[-1]["type"] != "turn_done":
        message = ws.recv(timeout=60)
        if isinstance(message, bytes):
            assert events and events[-1]["type"] == "audio", "audio without its header"
            audio += message
        else:
            event = json.loads(message)
            if event["type"] != "ready":
                events.append(event)
    return events, bytes(audio)


def _closed(ws: ClientConnection) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as caught:
        while True:
            ws.recv(timeout=30)
    return caught.value


def test_a_spoken_question_gets_a_transcript_an_answer_and_speech(
    server: Any,
    question_wav: Path,  # noqa: F811
) -> None:
    frames, rate = _frames(question_wav)
    with connect(_url(server, f"?assistant=default&rate={rate}"), additional_headers=GOOD) as ws:
        for frame in frames:
            ws.send(frame)
        ws.send(json.dumps({"type": "end"}))
        events, audio = _until_done(ws)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "transcript" and kinds.count("transcript") == 1, kinds
        heard = events[0]["text"].lower()
        # Each number once: heard, and not looped (Whisper repeats itself on a bad window).
        assert heard.count("two") + heard.count("2") == 1, heard
        assert heard.count("three") + heard.count("3") == 1, heard
        assert events[0]["language"] == "en"
        assert server.model.requests[0].messages[-1].content == events[0]["text"]
        answer = "".join(e["text"] for e in events if e["type"] == "delta")
        assert answer == ANSWER
        headers = [e for e in events if e["type"] == "audio"]
        assert headers and all(h["rate"] == 22_050 for h in headers)
        assert headers[0]["sentence"] == "Two plus three is five."
        assert len(audio) > 22_050 and len(audio) % 2 == 0  # over half a second of PCM16
        done = events[-1]
        assert done["speech"] is True and done["conversation_id"]
        t = done["timings"]
        assert 0 < t["transcript_ms"] <= t["first_token_ms"] <= t["first_audio_ms"]
        assert t["first_audio_ms"] <= t["total_ms"]
        # A second question continues the same conversation.
        for frame in frames:
            ws.send(frame)
        ws.send(json.dumps({"type": "end"}))
        again, _ = _until_done(ws)
        assert again[-1]["conversation_id"] == done["conversation_id"]
        assert "".join(e["text"] for e in again if e["type"] == "delta") == "Six."
        assert len(server.model.requests[1].messages) > len(server.model.requests[0].messages)
    text = httpx.get(f"{server.url}/metrics").text
    assert "graft_voice_first_audio_seconds_count 2.0" in text


def test_an_unauthenticated_client_is_refused_and_audited(server: Any) -> None:
    for headers, reason in (
        ({}, "invalid_api_key: missing API key"),
        ({"authorization": "Bearer sk-bad"}, "invalid_api_key: invalid API key"),
    ):
        with connect(_url(server), additional_headers=headers) as ws:
            closed = _closed(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 1008
        assert closed.rcvd.reason.startswith(reason), closed.rcvd.reason
    records = anyio.run(server.graft.store.list_audit, None, 100)
    failures = [r for r in records if r.action == "auth.failure"]
    assert len(failures) == 2 and all(r.target == "/v1/voice/ws" for r in failures)
    assert all("sk-bad" not in r.details for r in failures)
    assert not server.model.requests


def test_an_oversized_frame_closes_the_call(server: Any) -> None:
    with connect(_url(server), additional_headers=GOOD, max_size=None) as ws:
        ws.send(b"\0" * (64 * 1024 + 2))
        closed = _closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1009
    assert "65536" in closed.rcvd.reason


@pytest.mark.parametrize("rate", ["7999", "48001", "fast", ""])
def test_a_bad_rate_closes_with_a_reason(server: Any, rate: str) -> None:
    with connect(_url(server, f"?rate={rate}"), additional_headers=GOOD) as ws:
        closed = _closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == 1008
    assert "rate must be a whole number of Hz from 8000 to 48000" in closed.rcvd.reason


def test_a_text_message_that_is_not_a_control_message_is_an_error(server: Any) -> None:
    with connect(_url(server), additional_headers=GOOD) as ws:
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        ws.send("hello")
        event = json.loads(ws.recv(timeout=60))
    assert event == {
        "type": "error",
        "message": 'text messages must be JSON control messages: {"type": "end"}',
        "code": "invalid_message",
    }


def test_a_missing_voice_extra_is_a_clear_error(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(cache: Path, **options: Any) -> Any:
        raise VoiceUnavailable(f"faster-whisper is not installed; {VOICE_EXTRA_HINT}")

    monkeypatch.setattr("graft.voice.engines.load_stt", missing)
    with connect(_url(server), additional_headers=GOOD) as ws:
        event = json.loads(ws.recv(timeout=30))
        closed = _closed(ws)
    assert event == {
        "type": "error",
        "message": "faster-whisper is not installed; "
        'install the voice extra: pip install "graft[voice]"',
        "code": "voice_unavailable",
    }
    assert closed.rcvd is not None and closed.rcvd.code == 1011


def test_the_greeting_and_the_days_token_budget(
    graft_factory: Any,
    live_server: Any,
    voice_cache: Path,  # noqa: F811
    question_wav: Path,  # noqa: F811
) -> None:
    """A call starts with the spoken greeting; its turns count against the day's budget."""
    model = FakeModel(ANSWER, "never said")
    graft = graft_factory(model, auth={"api_keys": KEYS}, limits={"tokens_per_day": 5})
    cache = graft.settings.home / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "whisper-base").symlink_to(voice_cache / "whisper-base")
    server = live_server(graft)
    frames, rate = _frames(question_wav)
    with connect(_url(server, f"?rate={rate}"), additional_headers=GOOD) as ws:
        assert json.loads(ws.recv(timeout=60))["type"] == "ready"
        greeting = json.loads(ws.recv(timeout=60))
        assert greeting == {
            "type": "audio",
            "rate": 22_050,
            "sentence": "Hello! How can I help?",
            "source": "greeting",
        }
        spoken = 0
        with pytest.raises(TimeoutError):  # the greeting's PCM, then nothing until asked
            while True:
                message = ws.recv(timeout=2)
                assert isinstance(message, bytes)
                spoken += len(message)
        assert spoken > 22_050  # over half a second
        turns = []
        for _ in range(2):  # the first turn spends the budget; the second is refused
            for frame in frames:
                ws.send(frame)
            ws.send(json.dumps({"type": "end"}))
            turns.append(_until_done(ws)[0])
        first, second = turns
        assert "".join(e["text"] for e in first if e["type"] == "delta") == ANSWER
    [refused] = [e for e in second if e["type"] == "error"]
    assert refused["code"] == "budget_exceeded" and "Token budget reached" in refused["message"]
    assert len(model.requests) == 1
