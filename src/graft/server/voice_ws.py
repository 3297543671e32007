"""``GET /v1/voice/ws``: a voice call over a WebSocket, PCM16 frames in and out.

For clients without WebRTC. The client streams little-endian PCM16 mono frames (binary
messages, at ``?rate=``), resampled to 16 kHz and fed to a ``CallSession``
(``graft.voice.call``: the VAD, turn-taking, barge-in, greeting, filler, and the same
``run_turn`` as a text chat, in one conversation). The server answers with the session's
JSON text events and binary PCM16 frames of the spoken answer, each sentence's after its
``audio`` event; on barge-in a ``clear`` event tells the client to drop the speech it has
buffered. The protocol is documented in docs/voice.md.

Authentication: the ``Authenticate`` middleware only handles HTTP scopes, so the route asks
the same ``Graft.authenticate`` hooks (API key header, or the session cookie with its
same-origin check) before it accepts anything, and records a refusal in the audit log like
the middleware does (``auth_failure``, throttled per client address). A refused client is
accepted only to be told why: the connection is closed at once with 1008 and a reason (a
browser cannot read the body of a refused handshake).

The models (Whisper, the speakers) are loaded once per process, lazily, in a worker thread,
and shared by all connections; each connection has its own session and VAD. A missing
voice extra is an ``error`` event with code ``voice_unavailable``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.datastructures import Headers

from graft import audit
from graft.errors import GraftError
from graft.runtime import Graft
from graft.server.auth import FailureThrottle, auth_failure
from graft.server.ratelimit import call_limits
from graft.voice.audio import SAMPLE_RATE, resample, to_float32

if TYPE_CHECKING:
    from graft.voice.call import CallSession

__all__ = ["MAX_FRAME_BYTES", "PATH", "router"]

PATH = "/v1/voice/ws"
MAX_FRAME_BYTES = 64 * 1024
"""The largest binary message a client may send; a bigger one closes the call with 1009."""
MIN_RATE, MAX_RATE, DEFAULT_RATE = 8_000, 48_000, 16_000

POLICY_VIOLATION, TOO_BIG, INTERNAL_ERROR = 1008, 1009, 1011

router = APIRouter(tags=["voice"])


class _Sink:
    """The socket as a ``CallSink``: one ordered queue of events and audio, one sender.

    Events and audio share the queue so that each ``audio`` event precedes its PCM. The
    server cannot see the client's playback, so ``pending_s`` is estimated from the audio
    sent and the wall clock; ``clear`` drops the audio not yet sent and tells the client to
    drop what it has buffered (a ``clear`` event).
    """

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.session: CallSession | None = None
        self._queue: deque[str | bytes] = deque()
        self._ready = anyio.Event()
        self._playing_until = 0.0

    async def send_event(self, event: dict[str, Any]) -> None:
        self._put(json.dumps(event, ensure_ascii=False))

    def play(self, pcm16: bytes, sample_rate: int) -> None:
        now = time.monotonic()
        self._playing_until = max(now, self._playing_until) + len(pcm16) / 2 / sample_rate
        self._put(pcm16)
        if self.session is not None:  # the echo reference, as well as the server knows it
            self.session.played(resample(to_float32(np.frombuffer(pcm16, "<i2")), sample_rate))

    def clear(self) -> None:
        self._queue = deque(item for item in self._queue if isinstance(item, str))
        self._playing_until = 0.0
        self._put(json.dumps({"type": "clear"}))

    def pending_s(self) -> float:
        return max(0.0, self._playing_until - time.monotonic())

    def _put(self, item: str | bytes) -> None:
        self._queue.append(item)
        self._ready.set()

    async def run(self) -> None:
        """Send what is queued, in order, until cancelled or the client is gone."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # closed under us
            await self._send_all()

    async def _send_all(self) -> None:
        while True:
            await self._ready.wait()
            self._ready = anyio.Event()
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, str):
                    await self.websocket.send_text(item)
                else:
                    await self.websocket.send_bytes(item)

    async def close(self, code: int, reason: str) -> None:
        await self.websocket.close(code, reason[:120])


def _rate(value: str | None) -> int | None:
    """The ``rate`` query parameter, or ``None`` when it is not a whole number in range."""
    if value is None:
        return DEFAULT_RATE
    try:
        rate = int(value)
    except ValueError:
        return None
    return rate if MIN_RATE <= rate <= MAX_RATE else None


async def _refuse(websocket: WebSocket, graft: Graft, exc: GraftError) -> None:
    """Audit the refused client (throttled, like the middleware) and close with 1008."""
    state = websocket.app.state
    throttle = getattr(state, "voice_ws_throttle", None)
    if throttle is None:
        throttle = state.voice_ws_throttle = FailureThrottle()
    client = websocket.scope.get("client")
    suppressed = throttle.admit(client[0] if client else "")
    if suppressed is not None:
        event = auth_failure(
            websocket.scope, Headers(scope=websocket.scope), exc, not_recorded_before=suppressed
        )
        await audit.record(graft.store, event)
    await websocket.accept()
    await websocket.close(POLICY_VIOLATION, f"{exc.code or 'unauthorized'}: {exc.message}"[:120])


@router.websocket(PATH)
async def voice_call(websocket: WebSocket) -> None:
    """A voice call: PCM16 frames in, transcript, answer and PCM16 speech out."""
    graft: Graft = websocket.app.state.graft
    try:
        principal = await graft.authenticate(websocket.headers, "GET")
    except GraftError as exc:
        await _refuse(websocket, graft, exc)
        return
    rate = _rate(websocket.query_params.get("rate"))
    assistant = websocket.query_params.get("assistant") or "default"
    await websocket.accept()
    sink = _Sink(websocket)
    if rate is None:
        await sink.close(
            POLICY_VIOLATION, f"rate must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}"
        )
        return
    from graft.voice import VoiceUnavailable
    from graft.voice.call import CallSession

    session = sink.session = CallSession(
        graft,
        principal,
        sink,
        assistant=assistant,
        metrics=websocket.app.state.metrics,
        gate=call_limits(websocket.scope, principal),  # the day's token budget, per turn
    )
    async with anyio.create_task_group() as group:
        group.start_soon(sink.run)
        try:
            await session.start()
        except VoiceUnavailable as exc:
            await websocket.send_text(
                json.dumps({"type": "error", "message": exc.message, "code": exc.code})
            )
            await sink.close(INTERNAL_ERROR, "voice unavailable")
            group.cancel_scope.cancel()
            return
        try:
            await _listen(websocket, sink, session, rate)
        finally:
            await session.close()
            group.cancel_scope.cancel()


async def _listen(websocket: WebSocket, sink: _Sink, session: CallSession, rate: int) -> None:
    """Feed the caller's frames to the session until they hang up (or break the rules)."""
    carry = b""  # an odd byte left over: a sample split across two messages
    while True:
        try:
            message = await websocket.receive()
        except WebSocketDisconnect:
            return
        if message["type"] == "websocket.disconnect":
            return
        data: bytes | None = message.get("bytes")
        if data is not None:
            if len(data) > MAX_FRAME_BYTES:
                await sink.close(TOO_BIG, f"frames are at most {MAX_FRAME_BYTES} bytes")
                return
            data, carry = carry + data, b""
            if len(data) % 2:
                data, carry = data[:-1], data[-1:]
            await session.feed(resample(to_float32(np.frombuffer(data, "<i2")), rate, SAMPLE_RATE))
            continue
        try:
            control = json.loads(message.get("text") or "")
        except ValueError:
            control = None
        if isinstance(control, dict) and control.get("type") == "end":
            await session.end_of_input()
        else:
            await sink.send_event(
                {
                    "type": "error",
                    "message": 'text messages must be JSON control messages: {"type": "end"}',
                    "code": "invalid_message",
                }
            )
