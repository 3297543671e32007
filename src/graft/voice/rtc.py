"""The WebRTC side of a call (aiortc): audio in and out, video in, events on a data channel.

A ``CallSession`` (``graft.voice.call``) decides who speaks when; this module only moves
what it hears and says over one ``RTCPeerConnection``:

* **Speech out.** ``SpeechTrack`` is the audio track the caller hears. The session's
  ``play`` queues PCM16, resampled once to 48 kHz mono (PyAV's resampler); ``recv`` hands
  aiortc a 20 ms frame at a time, paced in real time as aiortc's own tracks are, with
  silence when nothing is queued. Each frame sent is reported to the session as played
  audio at 16 kHz (``CallSession.played``): its echo reference, timed by what actually left.
  ``clear`` (barge-in) drops the queue at once.
* **Speech in.** The caller's track (Opus decoded by aiortc: s16, usually stereo, 48 kHz)
  is converted to 16 kHz mono and fed to the session frame by frame.
* **Video in.** Only the latest camera frame is kept (``graft.voice.video.FrameStore``),
  for the ``look`` tool; nothing is decoded or encoded beyond what aiortc already does.
* **Events.** The client opens a data channel labelled ``events``; the session's events go
  out on it as JSON text (held back until it opens), and the client may send
  ``{"type": "hangup"}`` or ``{"type": "end"}`` (done speaking). Anything else, or a message
  over 16 KiB, is answered with an ``error`` event.

``RtcPeer`` owns one client's peer connection, its session and their tasks; ``RtcCall`` is
the 1:1 call on it, a room's ``Participant`` (``graft.voice.room``) another. The speech
track's paced 20 ms clock is ``PacedAudioTrack``, which a room's mix shares. Negotiation is
non-trickle: ``answer`` applies the offer, starts the session and returns the answer with
every ICE candidate gathered. The peer uses only the ICE servers of ``voice.ice_servers``
(none by default: host candidates, a LAN, and nobody outside is ever contacted; aiortc's own
default would ask Google's STUN server). The call ends on ``close``: a hangup from either
side, a failed or closed connection, no connection within ``CONNECT_TIMEOUT_S``, or
``voice.max_call_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcicetransport import parse_stun_turn_uri

from graft.errors import ConfigError, InvalidRequest
from graft.voice.audio import SAMPLE_RATE
from graft.voice.call import CallSession

if TYPE_CHECKING:
    from graft.context import Principal
    from graft.runtime import Graft
    from graft.voice.audio import Float32
    from graft.voice.pipeline import TurnGate, VoiceMetrics

__all__ = [
    "CHANNEL_LABEL",
    "CONNECT_TIMEOUT_S",
    "MAX_MESSAGE_BYTES",
    "OUTPUT_RATE",
    "PacedAudioTrack",
    "RtcCall",
    "RtcPeer",
    "SpeechTrack",
    "Upsampler",
    "consume_audio",
    "peer_connection",
]

log = logging.getLogger("graft.voice.rtc")

OUTPUT_RATE = 48_000
"""The rate of the speech track (Opus's own)."""
FRAME_SAMPLES = OUTPUT_RATE // 50
"""One 20 ms frame at ``OUTPUT_RATE``."""
_FRAME_BYTES = FRAME_SAMPLES * 2
_TIME_BASE = fractions.Fraction(1, OUTPUT_RATE)
_DECIMATION = OUTPUT_RATE // SAMPLE_RATE

CHANNEL_LABEL = "events"
"""The label of the data channel the client opens for events."""
MAX_MESSAGE_BYTES = 16 * 1024
"""The largest data-channel message a client may send."""
MAX_BACKLOG = 1000
"""Events held back until the data channel opens; older ones are dropped past this."""
CONNECT_TIMEOUT_S = 30.0
"""A call whose peer has not connected this long after the answer is hung up."""

_CONTROL_HINT = 'data channel messages are JSON: {"type": "hangup"} or {"type": "end"}'


def peer_connection(ice_servers: list[str]) -> RTCPeerConnection:
    """A peer connection that uses exactly ``ice_servers`` (never aiortc's default STUN).

    Raises:
        ConfigError: A URL aiortc cannot parse (it would otherwise fail in the middle of
            applying the offer, as if the offer were at fault).
    """
    for url in ice_servers:
        try:
            parse_stun_turn_uri(url)
        except ValueError as exc:
            raise ConfigError(f"voice.ice_servers: {url!r} is not usable: {exc}") from None
    # max-bundle: every browser bundles all media, and under aiortc's default (balanced) a
    # second m-line of one kind (a room's second video slot) stays on a transport that the
    # BUNDLE negotiation then drops: it never sends.
    return RTCPeerConnection(
        RTCConfiguration(
            iceServers=[RTCIceServer(urls=url) for url in ice_servers],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        )
    )


class PacedAudioTrack(MediaStreamTrack):
    """An outgoing audio track: 20 ms frames of 48 kHz mono s16, paced in real time.

    Subclasses say what each frame holds (``next_chunk``); this class keeps the clock, as
    aiortc's own tracks do, and reports each frame sent to ``on_played`` as 16 kHz float32
    (silence included, so an echo reference keeps the timeline of what the listener hears).
    """

    kind = "audio"

    def __init__(self, on_played: Callable[[Float32], None] | None = None) -> None:
        super().__init__()
        self.on_played = on_played
        self._start: float | None = None
        self._pts = 0

    def next_chunk(self) -> bytes:
        """Up to one frame (``FRAME_SAMPLES`` PCM16 samples) to send now; the rest is silence."""
        raise NotImplementedError

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms frame, once its time has come."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME_SAMPLES
            wait = self._start + self._pts / OUTPUT_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        chunk = self.next_chunk()
        if len(chunk) < _FRAME_BYTES:
            chunk += bytes(_FRAME_BYTES - len(chunk))
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(chunk)
        frame.pts = self._pts
        frame.sample_rate = OUTPUT_RATE
        frame.time_base = _TIME_BASE
        if self.on_played is not None:
            played = np.frombuffer(chunk, "<i2").astype(np.float32) / 32768.0
            # 48 kHz to 16 kHz: the mean of each three samples (a box low-pass, then every third).
            self.on_played(played.reshape(-1, _DECIMATION).mean(axis=1, dtype=np.float32))
        return frame


class Upsampler:
    """PCM16 mono at any rate to ``OUTPUT_RATE`` (PyAV's resampler).

    Stateful across chunks, so the pieces of a sentence join without clicks; ``reset`` when
    what was queued is dropped.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._rate = 0

    def convert(self, pcm16: bytes, sample_rate: int) -> bytes:
        """``pcm16`` (mono at ``sample_rate``) as PCM16 mono at ``OUTPUT_RATE``."""
        samples = np.frombuffer(pcm16[: len(pcm16) - len(pcm16) % 2], "<i2")
        if sample_rate == OUTPUT_RATE or not samples.size:
            return samples.tobytes()
        if self._resampler is None or self._rate != sample_rate:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=OUTPUT_RATE)
            self._rate = sample_rate
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = sample_rate
        return b"".join(out.to_ndarray().tobytes() for out in self._resampler.resample(frame))

    def reset(self) -> None:
        """Forget what the resampler holds."""
        self._resampler = None


class SpeechTrack(PacedAudioTrack):
    """The assistant's voice: queued PCM16 out as paced 20 ms frames, 48 kHz mono s16.

    ``on_played`` receives each frame sent, as 16 kHz float32 (silence included, so the
    echo reference keeps the timeline of what the caller hears).
    """

    def __init__(self, on_played: Callable[[Float32], None] | None = None) -> None:
        super().__init__(on_played)
        self._queue = bytearray()
        self._upsampler = Upsampler()

    def play(self, pcm16: bytes, sample_rate: int) -> None:
        """Queue PCM16 mono speech at ``sample_rate``; returns at once."""
        if not pcm16 or self.readyState != "live":
            return
        self._queue += self._upsampler.convert(pcm16, sample_rate)

    def clear(self) -> None:
        """Drop everything queued (and what the resampler holds) at once."""
        self._queue.clear()
        self._upsampler.reset()

    def pending_s(self) -> float:
        """Seconds of queued speech not yet sent."""
        return len(self._queue) / 2 / OUTPUT_RATE

    def next_chunk(self) -> bytes:
        """The next 20 ms of queued speech (silence when nothing is queued)."""
        chunk = bytes(self._queue[:_FRAME_BYTES])
        del self._queue[:_FRAME_BYTES]
        return chunk


async def consume_audio(
    track: MediaStreamTrack,
    feed: Callable[[Float32], Awaitable[None]],
    tap: Callable[[av.AudioFrame], None] | None = None,
) -> None:
    """Feed ``track``'s audio to ``feed`` as 16 kHz mono float32 until the track ends.

    ``tap`` sees each frame as aiortc decoded it first (a room mixes it for the others).
    """
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.AudioFrame):
            continue
        if tap is not None:
            tap(frame)
        for out in resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0
            await feed(samples)


class RtcPeer:
    """One client's peer connection around its ``CallSession``: what WebRTC transports share.

    Negotiation, the ``events`` data channel (``deliver``), the client's tracks (microphone
    to the session, camera to the frame store), the watchdog and the end. A subclass makes
    ``session`` in its ``__init__``, gives the track the client hears (``output``), and may
    extend ``_negotiate`` (the offer is applied, the answer not made yet), ``_on_track`` and
    ``_closed`` (awaited once, when everything has stopped).
    """

    session: CallSession

    def __init__(self, graft: Graft, principal: Principal, output: MediaStreamTrack) -> None:
        self.graft = graft
        self.principal = principal
        self.settings = graft.settings.voice
        self.pc = peer_connection(self.settings.ice_servers)
        self.output = output
        self.started_at = time.time()
        self.end_reason: str | None = None
        """Why the call ended (``hangup``, ``connection_failed``, ``max_duration``...)."""
        self._began = time.monotonic()
        self._ended: float | None = None
        self._channel: RTCDataChannel | None = None
        self._backlog: list[str] = []
        self._listening = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: asyncio.Future[None] | None = None
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)

    @property
    def call_id(self) -> str:
        """The session's id (``call_...``)."""
        return self.session.call_id

    @property
    def conversation_id(self) -> str | None:
        """The call's conversation, once its first turn has started."""
        return self.session.conversation_id

    @property
    def state(self) -> str:
        """The peer connection's state: ``new``, ``connecting``, ``connected``, ``closed``..."""
        return str(self.pc.connectionState)

    def duration_s(self) -> float:
        """Seconds since the offer was answered (until the end, once ended)."""
        return (self._ended or time.monotonic()) - self._began

    # -- negotiation ------------------------------------------------------------------

    async def answer(self, offer_sdp: str) -> str:
        """Apply the client's offer, start the session, and return the answer's SDP.

        The answer carries every ICE candidate (gathering is complete when it returns).

        Raises:
            InvalidRequest: The offer is not usable SDP (``invalid_sdp``, ``param`` ``sdp``).
            VoiceUnavailable: The voice extra or a model is missing.
        """
        _check_offer(offer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:  # aiortc's parser raises ValueError, IndexError, KeyError...
            reason = str(exc) or type(exc).__name__
            raise InvalidRequest(
                f"the offer's SDP was refused: {reason}", param="sdp", code="invalid_sdp"
            ) from None
        self._negotiate(offer_sdp)
        await self.session.start()
        await self.pc.setLocalDescription(await self.pc.createAnswer())  # gathers candidates
        self._spawn(self._watchdog())
        return str(self.pc.localDescription.sdp)

    def _negotiate(self, offer_sdp: str) -> None:
        """The offer is applied: attach what graft sends (here: the output track)."""
        self.pc.addTrack(self.output)

    def deliver(self, event: dict[str, Any]) -> None:
        """Send ``event`` on the data channel as JSON, or hold it until the channel opens."""
        text = json.dumps(event, ensure_ascii=False)
        channel = self._channel
        if channel is not None and channel.readyState == "open":
            channel.send(text)
        elif self._closing is None:
            self._backlog.append(text)
            del self._backlog[:-MAX_BACKLOG]

    # -- the peer's events ------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self._listening:
            self._listening = True  # one microphone: a second track would garble the VAD
            self._spawn(consume_audio(track, self.session.feed))
        elif track.kind == "video":
            self._spawn(self._watch(track))
        else:  # frames nobody reads would pile up in aiortc's queue
            self._spawn(drain(track))

    async def _watch(self, track: MediaStreamTrack) -> None:
        """Keep only the latest camera frame, as aiortc decoded it."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.VideoFrame):
                self._keep_frame(frame)

    def _keep_frame(self, frame: av.VideoFrame) -> None:
        """Hand the frame to the process's ``FrameStore`` (the ``look`` tool reads it there).

        Frames are kept per conversation, which exists once the first turn has started;
        until then nothing is stored (the camera sends many frames a second, so the turn
        that creates the conversation already finds one when its tool runs).
        """
        conversation_id = self.session.conversation_id
        if conversation_id:
            self.graft.frames.set_frame(conversation_id, self.principal, frame)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL_LABEL or self._channel is not None:
            channel.close()
            return
        self._channel = channel
        channel.on("message", self._on_message)
        backlog, self._backlog = self._backlog, []
        for text in backlog:
            channel.send(text)

    def _on_message(self, message: str | bytes) -> None:
        size = len(message.encode() if isinstance(message, str) else message)
        if size > MAX_MESSAGE_BYTES:
            self._error(f"messages are at most {MAX_MESSAGE_BYTES} bytes", "message_too_large")
            return
        try:
            control = json.loads(message)
        except ValueError:
            control = None
        kind = control.get("type") if isinstance(control, dict) else None
        if kind == "hangup":
            self._spawn(self.close("hangup"))
        elif kind == "end":
            self._spawn(self.session.end_of_input())
        else:
            self._error(_CONTROL_HINT, "invalid_message")

    def _error(self, message: str, code: str) -> None:
        self.deliver({"type": "error", "message": message, "code": code})

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self._spawn(self.close(f"connection_{state}"))

    async def _watchdog(self) -> None:
        """Hang up when the peer never connects, and at ``voice.max_call_s``."""
        deadline = self._began + CONNECT_TIMEOUT_S
        while self.pc.connectionState != "connected":
            if time.monotonic() >= deadline:
                await self.close("no_connection")
                return
            await asyncio.sleep(0.25)
        await asyncio.sleep(max(0.0, self._began + self.settings.max_call_s - time.monotonic()))
        await self.close("max_duration")

    # -- the end ----------------------------------------------------------------------

    async def close(self, reason: str = "hangup") -> None:
        """End the call (once; later calls wait for the first): session, tasks, peer."""
        if self._closing is not None:
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        self.end_reason = reason
        self._ended = time.monotonic()
        try:
            if reason != "hangup" and not reason.startswith("connection_"):
                await self._say_goodbye(reason)
            await self.session.close()
        finally:
            try:
                current = asyncio.current_task()
                tasks = [t for t in self._tasks if t is not current and not t.done()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.output.stop()
                await self.pc.close()
                if self.conversation_id:
                    self.graft.frames.drop(self.conversation_id, self.principal)
                await self._closed()
            finally:
                self._closing.set_result(None)

    async def _closed(self) -> None:
        """Everything has stopped (called once)."""

    async def _say_goodbye(self, reason: str) -> None:
        """Tell the client why the server hangs up, and let the message leave first."""
        channel = self._channel
        if channel is None or channel.readyState != "open":
            return
        with contextlib.suppress(Exception):
            channel.send(json.dumps({"type": "hangup", "reason": reason}))
            for _ in range(50):  # the peer's close aborts SCTP: what is unsent is lost
                if channel.bufferedAmount == 0:
                    break
                await asyncio.sleep(0.01)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s: a task failed", self.call_id, exc_info=task.exception())


class RtcCall(RtcPeer):
    """One call over WebRTC: the peer connection, its ``CallSession`` and their tasks.

    It is the session's ``CallSink``: events go to the data channel, speech to the track.
    ``on_closed`` is awaited once the call has ended (the server unregisters and audits it).
    """

    def __init__(
        self,
        graft: Graft,
        principal: Principal,
        *,
        assistant: str = "default",
        conversation_id: str | None = None,
        metrics: VoiceMetrics | None = None,
        gate: TurnGate | None = None,
        on_closed: Callable[[RtcCall], Awaitable[None]] | None = None,
    ) -> None:
        self.speech = SpeechTrack(on_played=self._played)
        super().__init__(graft, principal, self.speech)
        self.assistant = assistant
        self.on_closed = on_closed
        self.session = CallSession(
            graft,
            principal,
            self,
            assistant=assistant,
            conversation_id=conversation_id,
            metrics=metrics,
            gate=gate,
        )

    # -- CallSink ---------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> None:
        """Send ``event`` on the data channel as JSON, or hold it until the channel opens."""
        self.deliver(event)

    def play(self, pcm16: bytes, sample_rate: int) -> None:
        """Queue speech on the audio track."""
        self.speech.play(pcm16, sample_rate)

    def clear(self) -> None:
        """Drop the queued speech (barge-in)."""
        self.speech.clear()

    def pending_s(self) -> float:
        """Seconds of speech queued and not yet sent."""
        return self.speech.pending_s()

    def _played(self, samples: Float32) -> None:
        self.session.played(samples)

    async def _closed(self) -> None:
        if self.on_closed is not None:
            await self.on_closed(self)


async def drain(track: MediaStreamTrack) -> None:
    """Read and drop a track's frames (nobody wants them, and aiortc would queue them)."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


def _check_offer(sdp: str) -> None:
    """What aiortc would accept silently but a call cannot work without."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    if not lines[0].startswith("v="):
        raise InvalidRequest(
            "sdp is not an SDP offer: it must start with 'v=0'", param="sdp", code="invalid_sdp"
        )
    if not any(line.startswith("m=audio ") for line in lines):
        raise InvalidRequest(
            "the offer has no audio (m=audio) section: a call needs the microphone",
            param="sdp",
            code="invalid_sdp",
        )
    if not any(line.startswith("a=fingerprint:") for line in lines):
        raise InvalidRequest(
            "the offer has no DTLS fingerprint (a=fingerprint)", param="sdp", code="invalid_sdp"
        )
