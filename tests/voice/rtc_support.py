"""What the WebRTC tests share (test_rtc.py: calls; test_rooms.py: rooms).

Live uvicorn servers on 127.0.0.1 with a scripted chat model and the joined Whisper model
(``servers``); aiortc peers (``Peer``) whose microphone plays queued PCM16 in real time and
whose camera sends a small test picture, which record the events, the sound and the
pictures they receive; piper's recordings of lines at 48 kHz (``spoken``). aioice leaves
127.0.0.1 out of its host candidates: ``loopback`` puts it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import aioice.ice
import av
import httpx
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from tests.conftest import LiveServer

from graft.context import Principal
from graft.default_plugins.api_key_auth import hash_api_key
from graft.server import create_app
from graft.testing import FakeModel
from graft.voice.audio import resample, to_float32

PEOPLE = {  # name: (tenant, roles)
    "ann": ("acme", ["user"]),
    "bob": ("acme", ["user"]),
    "root": ("acme", ["admin", "user"]),
    "eve": ("globex", ["admin", "user"]),
}
KEYS = [
    {"sha256": hash_api_key(f"sk-{name}"), "user": name, "tenant": tenant, "roles": roles}
    for name, (tenant, roles) in PEOPLE.items()
]
ANN = Principal("ann", frozenset({"user"}), tenant="acme")
RATE = 48_000
FRAME = RATE // 50
LOUD = 300.0  # RMS of a PCM16 frame above which it counts as sound, not silence


def auth(who: str) -> dict[str, str]:
    return {"authorization": f"Bearer sk-{who}"}


def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice skips 127.0.0.1; both peers (and nothing else) use it here."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


def spoken(*lines: str) -> dict[str, bytes]:
    """Each line spoken by piper, as PCM16 mono at 48 kHz."""
    from graft.voice.models import load_speaker

    speaker = load_speaker("en")
    said = {}
    for line in lines:
        pcm = b"".join(speaker.speak(line))
        samples = resample(to_float32(np.frombuffer(pcm, "<i2")), speaker.sample_rate, RATE)
        said[line] = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return said


class Server:
    """A live server, its Graft and scripted model."""

    def __init__(self, live: LiveServer, graft: Any, model: FakeModel) -> None:
        self.live, self.graft, self.model = live, graft, model
        self.http = httpx.AsyncClient(base_url=live.url, timeout=60)

    async def audit(self, action: str) -> list[Any]:
        records = await self.graft.store.list_audit(None, 500)
        return [r for r in records if r.action == action]

    async def rooms(self, who: str) -> list[dict[str, Any]]:
        response = await self.http.get("/v1/voice/rooms", headers=auth(who))
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data


@contextlib.asynccontextmanager
async def servers(
    graft_factory: Callable[..., Any], voice_cache: Path, *answers: str
) -> AsyncIterator[Callable[..., Server]]:
    """Start servers (with settings as keywords) whose model answers ``answers``; all stop
    on the way out."""
    started: list[Server] = []

    def start(**settings: Any) -> Server:
        model = FakeModel(*answers)
        graft = graft_factory(model, auth={"api_keys": KEYS}, **settings)
        cache = graft.settings.home / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "whisper-base").symlink_to(voice_cache / "whisper-base")
        server = Server(LiveServer(create_app(graft)).__enter__(), graft, model)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.http.aclose()
        await asyncio.to_thread(server.live.__exit__, None, None, None)


class Microphone(MediaStreamTrack):
    """Paced 20 ms frames of whatever ``say`` queued, silence otherwise."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.queue = bytearray()
        self.start: float | None = None
        self.pts = 0

    def say(self, pcm16: bytes) -> None:
        self.queue += pcm16

    async def recv(self) -> av.AudioFrame:
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.pts += FRAME
            await asyncio.sleep(max(0.0, self.start + self.pts / RATE - time.monotonic()))
        chunk = bytes(self.queue[: FRAME * 2]).ljust(FRAME * 2, b"\0")
        del self.queue[: FRAME * 2]
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(chunk)
        frame.pts, frame.sample_rate = self.pts, RATE
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class Camera(MediaStreamTrack):
    """A 64x48 test picture at 10 frames a second: flat grey ``level``, or (None) moving."""

    kind = "video"

    def __init__(self, level: int | None = None) -> None:
        super().__init__()
        self.level = level
        self.n = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(0.1)
        self.n += 1
        grey = (self.n * 7) % 255 if self.level is None else self.level
        picture = np.full((48, 64, 3), grey, np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = self.n * 9000, fractions.Fraction(1, 90_000)
        return frame


class Peer:
    """An aiortc client: microphone (camera, video slots) up; sound, pictures, events down."""

    def __init__(
        self,
        *,
        camera: Camera | None = None,
        slots: int = 0,
        bundle: RTCBundlePolicy = RTCBundlePolicy.BALANCED,
    ) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=bundle))
        self.mic = Microphone()
        self.pc.addTrack(self.mic)
        if camera is not None:
            self.pc.addTrack(camera)
        for _ in range(slots):
            self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("events")
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.loud: list[float] = []  # when each non-silent frame of sound arrived
        self.pictures: dict[str, list[tuple[float, int, float]]] = {}  # mid: (at, width, grey)
        self._tasks: list[asyncio.Task[None]] = []
        self.channel.on("message", lambda m: self.events.append((time.monotonic(), json.loads(m))))
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.ensure_future(self._listen(track)))

    async def _listen(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.VideoFrame):
                mid = next(t.mid for t in self.pc.getTransceivers() if t.receiver.track is track)
                grey = float(frame.to_ndarray(format="rgb24").mean())
                self.pictures.setdefault(str(mid), []).append((time.monotonic(), frame.width, grey))
                continue
            assert isinstance(frame, av.AudioFrame)
            samples = frame.to_ndarray().astype(np.float64)
            if float(np.sqrt(np.mean(samples**2))) > LOUD:
                self.loud.append(time.monotonic())

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def post_offer(
        self, server: Server, path: str, who: str, body: dict[str, Any]
    ) -> tuple[httpx.Response, dict[str, Any]]:
        """POST the offer (with ``body``) to ``path``; on 201 apply the answer.

        Returns the response and, on 201, its JSON (``{}`` otherwise).
        """
        payload = {"sdp": await self.offer(), "type": "offer", **body}
        response = await server.http.post(path, json=payload, headers=auth(who))
        if response.status_code != 201:
            return response, {}
        answer: dict[str, Any] = response.json()
        assert answer["type"] == "answer"
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        return response, answer

    async def speech_after(self, moment: float, within: float = 30) -> None:
        """Wait until something is heard after ``moment``."""
        deadline = time.monotonic() + within
        while not self.loud or self.loud[-1] <= moment:
            assert time.monotonic() < deadline, "nothing was heard"
            await asyncio.sleep(0.05)

    async def quiet(self, seconds: float, within: float = 30) -> None:
        """Wait until something was heard, then nothing for ``seconds``."""
        deadline = time.monotonic() + within
        while not self.loud or time.monotonic() - self.loud[-1] < seconds:
            assert time.monotonic() < deadline, "the sound did not stop"
            await asyncio.sleep(0.05)

    async def state(self, *states: str, within: float = 20) -> None:
        """Wait until the connection is in one of ``states``."""
        deadline = time.monotonic() + within
        while self.pc.connectionState not in states:
            assert time.monotonic() < deadline, f"still {self.pc.connectionState}"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


P = TypeVar("P", bound=Peer)


@contextlib.asynccontextmanager
async def peers(kind: Callable[..., P]) -> AsyncIterator[Callable[..., P]]:
    """Make peers of ``kind`` (with its keywords); all close on the way out."""
    made: list[P] = []

    def make(**kwargs: Any) -> P:
        made.append(kind(**kwargs))
        return made[-1]

    yield make
    for peer in made:
        await peer.close()
