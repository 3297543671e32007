"""``GET /v1/voice/ws``: a voice call over a WebSocket, PCM16 frames in and out.

For clients without WebRTC. The client streams little-endian PCM16 mono frames (binary
messages, at ``?rate=``); the ``Segmenter`` cuts utterances from them as they arrive, and
each one runs through the voice pipeline (``graft.voice.pipeline.VoiceTurn``: the transcript
goes through the same ``run_turn`` as a text chat) in order, one turn at a time, in one
conversation. The server answers with JSON text events (transcript, answer deltas, audio
headers, the turn's timings, errors) and binary PCM16 frames of the spoken answer. The
protocol is documented in docs/voice.md.

Authentication: the ``Authenticate`` middleware only handles HTTP scopes, so the route asks
the same ``Graft.authenticate`` hooks (API key header, or the session cookie with its
same-origin check) before it accepts anything, and records a refusal in the audit log like
the middleware does (``auth_failure``, throttled per client address). A refused client is
accepted only to be told why: the connection is closed at once with 1008 and a reason (a
browser cannot read the body of a refused handshake).

The models (Whisper, the speakers) are loaded once per process, lazily, in a worker thread,
and shared by all connections; each connection has its own ``Segmenter`` (the VAD is
stateful). A missing voice extra is an ``error`` event with code ``voice_unavailable``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.datastructures import Headers

from graft import audit
from graft.errors import GraftError
from graft.events import ErrorEvent, TextDelta
from graft.runtime import Graft
from graft.server.auth import FailureThrottle, auth_failure
from graft.voice.models import load_speaker, load_stt

if TYPE_CHECKING:
    from graft.voice.pipeline import VoiceTurn
    from graft.voice.vad import Segmenter, Utterance

__all__ = ["MAX_FRAME_BYTES", "OUTPUT_RATE", "PATH", "router"]

PATH = "/v1/voice/ws"
MAX_FRAME_BYTES = 64 * 1024
"""The largest binary message a client may send; a bigger one closes the call with 1009."""
OUTPUT_RATE = 22_050
"""Rate of the spoken answer's PCM16 frames (piper's and espeak-ng's own)."""
MIN_RATE, MAX_RATE, DEFAULT_RATE = 8_000, 48_000, 16_000

POLICY_VIOLATION, TOO_BIG, INTERNAL_ERROR = 1008, 1009, 1011

router = APIRouter(tags=["voice"])


class _Call:
    """One connection's state: its sends (serialized) and its voice turn."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._send_lock = anyio.Lock()

    async def event(self, kind: str, **fields: Any) -> None:
        async with self._send_lock:
            await self.websocket.send_text(json.dumps({"type": kind, **fields}))

    async def audio(self, pcm16: bytes) -> None:
        async with self._send_lock:
            await self.websocket.send_bytes(pcm16)

    async def close(self, code: int, reason: str) -> None:
        async with self._send_lock:
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
    call = _Call(websocket)
    if rate is None:
        await call.close(
            POLICY_VIOLATION, f"rate must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}"
        )
        return
    from graft.voice import VoiceUnavailable
    from graft.voice.pipeline import VoiceTurn
    from graft.voice.vad import Segmenter, Utterance

    try:
        stt = await anyio.to_thread.run_sync(load_stt, graft.settings.home / "cache")
        await anyio.to_thread.run_sync(load_speaker, "en")  # before the first turn's clock
        segmenter = Segmenter()
    except VoiceUnavailable as exc:
        await call.event("error", message=exc.message, code=exc.code)
        await call.close(INTERNAL_ERROR, "voice unavailable")
        return
    turn = VoiceTurn(
        graft,
        principal,
        stt,
        load_speaker,
        assistant=assistant,
        metrics=websocket.app.state.metrics,
        output_rate=OUTPUT_RATE,
    )
    send, receive = anyio.create_memory_object_stream[Utterance](100)
    async with anyio.create_task_group() as group:
        group.start_soon(_answer, call, turn, receive)
        await _listen(call, segmenter, rate, send)
        group.cancel_scope.cancel()


async def _listen(
    call: _Call, segmenter: Segmenter, rate: int, utterances: MemoryObjectSendStream[Utterance]
) -> None:
    """Feed the caller's frames to the segmenter until they hang up (or break the rules)."""
    from graft.voice.audio import SAMPLE_RATE, resample, to_float32

    carry = b""  # an odd byte left over: a sample split across two messages
    with utterances:
        while True:
            try:
                message = await call.websocket.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            data: bytes | None = message.get("bytes")
            if data is not None:
                if len(data) > MAX_FRAME_BYTES:
                    await call.close(TOO_BIG, f"frames are at most {MAX_FRAME_BYTES} bytes")
                    return
                data, carry = carry + data, b""
                if len(data) % 2:
                    data, carry = data[:-1], data[-1:]
                samples = resample(to_float32(np.frombuffer(data, "<i2")), rate, SAMPLE_RATE)
                found = await anyio.to_thread.run_sync(segmenter.feed, samples)
            else:
                try:
                    control = json.loads(message.get("text") or "")
                except ValueError:
                    control = None
                if not isinstance(control, dict) or control.get("type") != "end":
                    await call.event(
                        "error",
                        message='text messages must be JSON control messages: {"type": "end"}',
                        code="invalid_message",
                    )
                    continue
                found = await anyio.to_thread.run_sync(segmenter.flush)
            for utterance in found:
                await utterances.send(utterance)


async def _answer(
    call: _Call, turn: VoiceTurn, utterances: MemoryObjectReceiveStream[Utterance]
) -> None:
    """Run the utterances' voice turns one at a time and send what they produce."""
    try:
        async with utterances:
            async for utterance in utterances:
                try:
                    await _turn(call, turn, utterance)
                except GraftError as exc:  # e.g. no speaker for the language heard
                    await call.event("error", message=exc.message, code=exc.code)
    except WebSocketDisconnect:  # the caller hung up mid-answer: the listener ends the call
        return


async def _turn(call: _Call, turn: VoiceTurn, utterance: Utterance) -> None:
    """One voice turn, forwarded: transcript, deltas, errors, audio, then ``turn_done``."""
    from graft.voice.pipeline import AudioChunk
    from graft.voice.stt import Transcript

    sentence: str | None = None
    heard = True
    async for item in turn.stream(utterance):
        if isinstance(item, Transcript):
            await call.event("transcript", text=item.text, language=item.language)
        elif item is None:
            heard = False
        elif isinstance(item, TextDelta):
            if item.text:
                await call.event("delta", text=item.text)
        elif isinstance(item, ErrorEvent):
            await call.event("error", message=item.message, code=item.code)
        elif isinstance(item, AudioChunk):
            if item.sentence != sentence:
                sentence = item.sentence
                await call.event("audio", rate=item.sample_rate, sentence=sentence)
            if item.pcm16:
                await call.audio(item.pcm16)
    await call.event(
        "turn_done",
        speech=heard,
        conversation_id=turn.conversation_id,
        timings=turn.timings.as_dict(),
    )
