"""``/v1/voice/calls``: WebRTC calls (src/graft/server/voice_rtc.py, src/graft/voice/rtc.py).

A real uvicorn server and a real aiortc client on 127.0.0.1 (tests/voice/rtc_support.py):
the client's microphone is a track that speaks piper's recording of a question in real
time, its camera a small test pattern; the server runs the real CallSession (VAD, Whisper,
piper). Only the chat model is scripted. aioice leaves 127.0.0.1 out of its host
candidates, so the tests put it back.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError
from tests.voice.rtc_support import (
    ANN,
    Camera,
    Peer,
    Server,
    auth,
    loopback,
    peers,
    servers,
    spoken,
)

from graft.voice import VOICE_EXTRA_HINT, VoiceUnavailable

QUESTION = "What is two plus three?"
ANSWER = "Two plus three is five. Anything else?"


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback(monkeypatch)


@pytest.fixture(scope="module")
def question_48k() -> bytes:
    """QUESTION spoken by piper, as PCM16 mono at 48 kHz."""
    return spoken(QUESTION)[QUESTION]


@pytest.fixture
async def serve(
    graft_factory: Callable[..., Any], voice_cache: Path
) -> AsyncIterator[Callable[..., Server]]:
    """Start servers (with settings as keywords); all stop after the test."""
    async with servers(graft_factory, voice_cache, ANSWER, "Six.") as start:
        yield start


class Client(Peer):
    """A caller: microphone (and camera) up, speech and events down."""

    def __init__(self, *, camera: bool = False) -> None:
        super().__init__(camera=Camera() if camera else None)
        self.call_id = ""

    async def call(self, server: Server, who: str = "ann", **body: Any) -> httpx.Response:
        """POST the offer; on 201 apply the answer."""
        response, answer = await self.post_offer(server, "/v1/voice/calls", who, body)
        if answer:
            assert answer["call_id"].startswith("call_")
            self.call_id = answer["call_id"]
        return response

    async def connect(self, server: Server) -> dict[str, Any]:
        """Call as ann, wait for the connection, and return the session's ``ready`` event."""
        response = await self.call(server)
        assert response.status_code == 201, response.text
        await self.state("connected")
        return await self.event("ready")

    def kinds(self) -> list[str]:
        return [event["type"] for _, event in self.events]

    async def event(self, kind: str, within: float = 60, after: int = 0) -> dict[str, Any]:
        """The first event of ``kind`` from the ``after``-th on, waiting for it."""
        deadline = time.monotonic() + within
        while True:
            for _, event in self.events[after:]:
                if event["type"] == kind:
                    return event
            assert time.monotonic() < deadline, f"no {kind!r} event; got {self.kinds()}"
            await asyncio.sleep(0.05)


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., Client]]:
    async with peers(Client) as make:
        yield make


async def test_a_spoken_question_is_answered_in_speech_and_events(
    serve: Callable[..., Server], clients: Callable[..., Client], question_48k: bytes
) -> None:
    server = serve()
    client = clients(camera=True)
    ready = await client.connect(server)
    assert ready["call_id"] == client.call_id
    # The greeting is heard first; the question is asked once it is over.
    greeting = await client.event("audio")
    assert greeting["sentence"] == server.graft.settings.voice.greeting
    await client.quiet(0.8)
    greeted = len(client.loud)
    assert greeted > 25, greeted  # over half a second of speech
    asked = len(client.events)
    client.mic.say(question_48k)

    done = await client.event("turn_done", after=asked)
    events = [event for _, event in client.events[asked:]]
    kinds = [event["type"] for event in events]
    assert kinds.count("transcript") == 1, kinds
    heard = next(e for e in events if e["type"] == "transcript")["text"].lower()
    assert ("two" in heard or "2" in heard) and ("three" in heard or "3" in heard), heard
    assert str(server.model.requests[0].messages[-1].content).lower() == heard
    assert "".join(e["text"] for e in events if e["type"] == "delta") == ANSWER
    assert done["speech"] is True and done["interrupted"] is False
    assert done["conversation_id"].startswith("conv_")
    timings = done["timings"]
    assert 0 < timings["transcript_ms"] <= timings["first_token_ms"] <= timings["first_audio_ms"]
    # The answer arrives as audio on the track, after the transcript.
    transcribed = next(at for at, e in client.events[asked:] if e["type"] == "transcript")
    await client.speech_after(transcribed)
    await client.quiet(0.8)
    answer_frames = [at for at in client.loud if at > transcribed]
    assert len(answer_frames) > 50, len(answer_frames)  # over a second of the answer
    metrics = (await server.http.get("/metrics")).text
    assert "graft_voice_first_audio_seconds_count 1.0" in metrics
    # The camera's latest frame is kept for the conversation, for the look tool.
    snapshot = server.graft.frames.latest(done["conversation_id"], ANN)
    assert snapshot is not None and (snapshot.width, snapshot.height) == (64, 48)

    # Control messages: anything but hangup/end is refused, so is a message over 16 KiB.
    seen = len(client.events)
    client.channel.send("hello")
    error = await client.event("error", after=seen)
    assert error["code"] == "invalid_message" and '{"type": "hangup"}' in error["message"]
    seen = len(client.events)
    client.channel.send(json.dumps({"type": "end", "pad": "x" * 17_000}))
    error = await client.event("error", after=seen)
    assert error == {
        "type": "error",
        "message": "messages are at most 16384 bytes",
        "code": "message_too_large",
    }
    listed = (await server.http.get("/v1/voice/calls", headers=auth("ann"))).json()["data"]
    assert [c["id"] for c in listed] == [client.call_id]
    assert listed[0]["state"] == "connected" and listed[0]["assistant"] == "default"

    # Hanging up over the data channel ends the call on both sides.
    client.channel.send(json.dumps({"type": "hangup"}))
    await client.state("closed", "failed")
    listed = (await server.http.get("/v1/voice/calls", headers=auth("ann"))).json()["data"]
    assert listed == []
    [start] = await server.audit("voice_call.start")
    [end] = await server.audit("voice_call.end")
    assert start.actor == end.actor == "ann" and start.target == end.target == client.call_id
    details = json.loads(end.details)
    assert details["reason"] == "hangup" and details["assistant"] == "default"
    assert details["duration_s"] > 1 and details["conversation_id"] == done["conversation_id"]
    assert details["turns"] == 1 and details["interrupted"] == 0  # the call log
    assert details["first_audio_ms_p50"] == done["timings"]["first_audio_ms"]
    assert len(server.graft.frames) == 0  # the call's camera frames went with it


async def test_a_call_needs_an_api_key(
    serve: Callable[..., Server], clients: Callable[..., Client]
) -> None:
    server = serve()
    body = {"sdp": await clients().offer(), "type": "offer"}
    for headers in ({}, {"authorization": "Bearer sk-wrong"}):
        response = await server.http.post("/v1/voice/calls", json=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert (await server.http.get("/v1/voice/calls")).status_code == 401
    assert (await server.http.delete("/v1/voice/calls/call_x")).status_code == 401


def _without(sdp: str, prefix: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith(prefix))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda sdp: "hello", "sdp is not an SDP offer: it must start with 'v=0'"),
        (
            lambda sdp: sdp.replace("m=audio ", "m=text "),
            "the offer has no audio (m=audio) section: a call needs the microphone",
        ),
        (
            lambda sdp: _without(sdp, "a=fingerprint:"),
            "the offer has no DTLS fingerprint (a=fingerprint)",
        ),
        (
            lambda sdp: _without(sdp, "a=ice-pwd:"),
            "the offer's SDP was refused: ICE username fragment or password is missing",
        ),
        (
            lambda sdp: _without(sdp, "a=rtcp-mux"),
            "the offer's SDP was refused: RTCP mux is not enabled",
        ),
    ],
)
async def test_a_bad_offer_is_refused_with_the_reason(
    serve: Callable[..., Server],
    clients: Callable[..., Client],
    mangle: Callable[[str], str],
    message: str,
) -> None:
    server = serve()
    sdp = mangle(await clients().offer())
    response = await server.http.post(
        "/v1/voice/calls", json={"sdp": sdp, "type": "offer"}, headers=auth("ann")
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["message"], error["code"], error["param"]) == (message, "invalid_sdp", "sdp")
    assert (await server.http.get("/v1/voice/calls", headers=auth("ann"))).json()["data"] == []
    assert await server.audit("voice_call.start") == []


async def test_a_body_that_is_not_an_offer_is_refused(
    serve: Callable[..., Server], clients: Callable[..., Client]
) -> None:
    server = serve()
    sdp = await clients().offer()
    for body, param in (
        ({"sdp": sdp, "type": "answer"}, "type"),
        ({"sdp": sdp}, "type"),
        ({"sdp": "v=0\r\n" + "a=x\r\n" * 20_000, "type": "offer"}, "sdp"),
        ({"sdp": sdp, "type": "offer", "model": "x"}, "model"),
    ):
        response = await server.http.post("/v1/voice/calls", json=body, headers=auth("ann"))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


async def test_the_assistant_must_exist_and_be_allowed(
    serve: Callable[..., Server], clients: Callable[..., Client]
) -> None:
    server = serve(assistants={"hr": {"roles": ["hr"]}})
    sdp = await clients().offer()
    chat = await server.http.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
        headers=auth("ann"),
    )
    call = await server.http.post(
        "/v1/voice/calls",
        json={"sdp": sdp, "type": "offer", "assistant": "nope"},
        headers=auth("ann"),
    )
    assert call.status_code == chat.status_code == 404
    assert call.json() == chat.json()
    denied = await server.http.post(
        "/v1/voice/calls",
        json={"sdp": sdp, "type": "offer", "assistant": "hr"},
        headers=auth("ann"),
    )
    assert denied.status_code == 403, denied.text
    assert denied.json()["error"]["message"] == "you may not use assistant 'hr'"
    [refusal] = await server.audit("access.denied")
    assert refusal.actor == "ann" and refusal.target == "assistant:hr"
    stranger = await server.http.post(
        "/v1/voice/calls",
        json={"sdp": sdp, "type": "offer", "conversation_id": "conv_nobodys"},
        headers=auth("ann"),
    )
    assert stranger.status_code == 404, stranger.text
    assert stranger.json()["error"]["code"] == "conversation_not_found"


async def test_calls_over_max_calls_get_503_with_retry_after(
    serve: Callable[..., Server], clients: Callable[..., Client]
) -> None:
    server = serve(voice={"max_calls": 1})
    first = await clients().call(server)
    assert first.status_code == 201, first.text
    second = await clients().call(server, who="bob")
    assert second.status_code == 503, second.text
    assert second.headers["retry-after"] == "30"
    assert second.json()["error"]["code"] == "too_many_calls"
    assert "voice.max_calls" in second.json()["error"]["message"]
    deleted = await server.http.delete(
        f"/v1/voice/calls/{first.json()['call_id']}", headers=auth("ann")
    )
    assert deleted.status_code == 204
    third = await clients().call(server, who="bob")
    assert third.status_code == 201, third.text


async def test_only_the_owner_or_an_admin_of_the_tenant_sees_and_hangs_up_a_call(
    serve: Callable[..., Server], clients: Callable[..., Client]
) -> None:
    server = serve()
    client = clients()
    await client.connect(server)
    path = f"/v1/voice/calls/{client.call_id}"

    async def listed(who: str) -> list[str]:
        response = await server.http.get("/v1/voice/calls", headers=auth(who))
        return [call["id"] for call in response.json()["data"]]

    assert await listed("ann") == await listed("root") == [client.call_id]
    assert await listed("bob") == await listed("eve") == []
    for who in ("bob", "eve"):  # another user; an admin of another tenant
        response = await server.http.delete(path, headers=auth(who))
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "call_not_found"
    assert (
        await server.http.delete("/v1/voice/calls/call_0", headers=auth("ann"))
    ).status_code == 404
    seen = len(client.events)
    assert (await server.http.delete(path, headers=auth("root"))).status_code == 204
    assert await client.event("hangup", after=seen) == {
        "type": "hangup",
        "reason": "deleted_by_admin",
    }
    await client.state("closed", "failed")
    assert await listed("ann") == []
    assert (await server.http.delete(path, headers=auth("ann"))).status_code == 404
    [end] = await server.audit("voice_call.end")
    assert end.actor == "ann" and json.loads(end.details)["reason"] == "deleted_by_admin"


async def test_a_call_ends_when_the_peer_goes_away(
    serve: Callable[..., Server], clients: Callable[..., Client]
) -> None:
    server = serve()
    client = clients()
    await client.connect(server)
    await client.close()
    deadline = time.monotonic() + 30
    while not await server.audit("voice_call.end"):
        assert time.monotonic() < deadline, "the server kept the call"
        await asyncio.sleep(0.1)
    [end] = await server.audit("voice_call.end")
    assert json.loads(end.details)["reason"] in ("connection_closed", "connection_failed")
    assert (await server.http.get("/v1/voice/calls", headers=auth("ann"))).json()["data"] == []


async def test_a_call_is_hung_up_at_max_call_s(
    serve: Callable[..., Server], clients: Callable[..., Client]
) -> None:
    server = serve()
    server.graft.settings.voice.max_call_s = 2  # the setting's floor is 10 s: too slow here
    client = clients()
    assert (await client.call(server)).status_code == 201
    await client.state("connected")
    hangup = await client.event("hangup", within=20)
    assert hangup == {"type": "hangup", "reason": "max_duration"}
    await client.state("closed", "failed")
    [end] = await server.audit("voice_call.end")
    details = json.loads(end.details)
    assert details["reason"] == "max_duration" and 2 <= details["duration_s"] < 5


async def test_shutting_down_hangs_up_every_call(
    serve: Callable[..., Server], clients: Callable[..., Client]
) -> None:
    server = serve()
    client = clients()
    await client.connect(server)
    await asyncio.to_thread(server.live.__exit__, None, None, None)
    assert await client.event("hangup") == {"type": "hangup", "reason": "shutdown"}
    [end] = await server.audit("voice_call.end")
    assert json.loads(end.details)["reason"] == "shutdown"


async def test_a_missing_voice_extra_is_503(
    serve: Callable[..., Server], clients: Callable[..., Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import graft.voice.engines

    server = serve()

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise VoiceUnavailable(f"faster-whisper is not installed; {VOICE_EXTRA_HINT}")

    monkeypatch.setattr(graft.voice.engines, "load_stt", missing)
    response = await clients().call(server)
    assert response.status_code == 503, response.text
    assert response.json()["error"] == {
        "message": f"faster-whisper is not installed; {VOICE_EXTRA_HINT}",
        "type": "server_error",
        "param": None,
        "code": "voice_unavailable",
    }
    monkeypatch.setitem(sys.modules, "graft.voice.rtc", None)  # as if aiortc were missing
    response = await clients().call(server)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["message"].startswith("aiortc is not installed; install")
    assert (await server.http.get("/v1/voice/calls", headers=auth("ann"))).json()["data"] == []
    assert await server.audit("voice_call.start") == []


async def test_the_speech_track_sends_paced_20_ms_frames_and_reports_them() -> None:
    from graft.voice.rtc import SpeechTrack

    played: list[np.ndarray[Any, Any]] = []
    track = SpeechTrack(on_played=played.append)
    t = np.arange(22_050) / 22_050
    tone = (np.sin(2 * np.pi * 440 * t) * 0.5 * 32767).astype("<i2").tobytes()  # 1 s
    track.play(tone, 22_050)
    assert 0.95 < track.pending_s() <= 1.0
    began = time.monotonic()
    frames = [await track.recv() for _ in range(10)]
    assert 0.17 < time.monotonic() - began < 0.5  # nine 20 ms steps after the first
    for i, frame in enumerate(frames):
        assert (frame.samples, frame.sample_rate, frame.pts) == (960, 48_000, i * 960)
        assert (frame.format.name, frame.layout.name) == ("s16", "mono")
        assert frame.time_base == fractions.Fraction(1, 48_000)
    assert 0.75 < track.pending_s() < 0.8
    assert len(played) == 10 and all(p.dtype == np.float32 and p.size == 320 for p in played)
    assert 0.3 < float(np.sqrt(np.mean(played[5] ** 2))) < 0.4  # the tone, at 16 kHz
    track.clear()
    assert track.pending_s() == 0
    silent = await track.recv()
    assert not silent.to_ndarray().any() and not played[-1].any()
    track.stop()
    with pytest.raises(MediaStreamError):
        await track.recv()
