"""A room: several people and the assistant in one call, over graft's embedded peer.

Each person in a room is a ``Participant``: their own aiortc peer connection (an
``RtcPeer``, as a 1:1 call has), their own ``CallSession`` running as their own principal,
and the audio track they hear. The ``Room`` joins them:

* **Audio.** Every participant hears a ``MixTrack``: the other participants' microphones
  plus the assistant's speech, mixed into one 48 kHz mono stream and paced like a call's
  speech track. Each speaker's audio waits for each listener in a queue of at most
  ``MAX_LAG_S`` (the oldest is dropped beyond it, so a slow moment does not turn into lasting
  delay). The mix is clipped to 16 bits. What a listener's track played is that listener's
  echo reference (``CallSession.played``), as in a call.
* **The assistant** listens to everyone: each participant's session transcribes what they
  say and sends the transcript to the whole room, but answers only when the words call it
  by name (``addressed_only``; its names are the assistant's, "assistant" and "graft"). The
  question then goes to the model with the room's log (the last ``LOG_LINES`` lines,
  "Name: words", of everyone and of the assistant's answers) as context, marked as what
  people said, not instructions. The turn runs as the person who asked: their tools, their
  permissions, their conversation.
* **Who hears what.** A session's speech goes to every listener (tagged with the session,
  so a barge-in clears only that answer); its events go to everyone with ``participant``
  (the speaker's display name) added, except ``ready`` and ``error``, which only its owner
  gets. Joins and leaves are announced to everyone (``joined``, ``left``).
* **Video.** A participant's camera feeds their own frame store entry (``look`` sees only
  the asker's camera) and is relayed to the others: a client that offers up to
  ``MAX_SLOTS`` ``recvonly`` video transceivers gets one other participant's camera in each
  (``SlotTrack``), and a ``video`` event says which one is in which slot. Slots switch
  without renegotiation.

Mixing and relaying happen on graft's CPU, which suits a handful of people; docs/voice.md
("Large rooms: an SFU") says how a large deployment would put an SFU in front instead.
"""

from __future__ import annotations

import asyncio
import fractions
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc import MediaStreamTrack, sdp
from aiortc.mediastreams import MediaStreamError

from graft.voice.call import CallSession
from graft.voice.rtc import (
    FRAME_SAMPLES,
    OUTPUT_RATE,
    PacedAudioTrack,
    RtcPeer,
    Upsampler,
    consume_audio,
    drain,
)

if TYPE_CHECKING:
    from graft.context import Principal
    from graft.runtime import Graft
    from graft.voice.audio import Float32
    from graft.voice.pipeline import TurnGate, VoiceMetrics

__all__ = [
    "ASSISTANT_LABEL",
    "LOG_LINES",
    "MAX_LAG_S",
    "MAX_PARTICIPANTS",
    "MAX_SLOTS",
    "MixTrack",
    "Participant",
    "Room",
    "SlotTrack",
]

MAX_PARTICIPANTS = 6
"""People in one room at once (each costs a session, a mix and an Opus encoder)."""
MAX_SLOTS = 4
"""Other participants' cameras one client can receive."""
MAX_LAG_S = 0.2
"""The most of one speaker's audio that waits for a listener; older audio is dropped."""
LOG_LINES = 30
"""Lines of the room's log the assistant is shown."""
LOG_LINE_CHARS = 400
"""A longer line of the log is cut."""
ASSISTANT_LABEL = "Assistant"
"""How the assistant's answers appear in the room's log."""

_OWNER_ONLY = frozenset({"ready", "error"})
_FRAME_BYTES = FRAME_SAMPLES * 2
_MAX_LAG_BYTES = int(MAX_LAG_S * OUTPUT_RATE) * 2
_PRIME_BYTES = 2 * _FRAME_BYTES  # a little jitter buffer before a speaker is heard
_VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)


# -- audio ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Voice:
    """One speaker's audio waiting for one listener."""

    pcm: bytearray = field(default_factory=bytearray)
    primed: bool = False

    def add(self, pcm48: bytes) -> None:
        self.pcm += pcm48
        if len(self.pcm) > _MAX_LAG_BYTES:
            del self.pcm[: len(self.pcm) - _MAX_LAG_BYTES]

    def take(self) -> bytes:
        """The next frame's worth; nothing until two frames wait (network jitter)."""
        if not self.primed:
            if len(self.pcm) < _PRIME_BYTES:
                return b""
            self.primed = True
        chunk = bytes(self.pcm[:_FRAME_BYTES])
        del self.pcm[:_FRAME_BYTES]
        if not self.pcm:
            self.primed = False
        return chunk


@dataclass(slots=True)
class _Speech:
    """Queued speech of one session (``tag``)."""

    tag: str
    pcm: bytearray


class MixTrack(PacedAudioTrack):
    """What one participant hears: the others' microphones and the assistant, mixed.

    ``hear`` adds a speaker's audio (PCM16 mono at 48 kHz); ``say`` queues the assistant's
    speech of one session, played in order with the other sessions' speech; ``clear``
    drops one session's. ``on_played`` receives every frame sent (the echo reference).
    """

    def __init__(self, on_played: Callable[[Float32], None] | None = None) -> None:
        super().__init__(on_played)
        self._voices: dict[str, _Voice] = {}
        self._speech: deque[_Speech] = deque()

    def hear(self, speaker: str, pcm48: bytes) -> None:
        """Add ``speaker``'s audio; beyond ``MAX_LAG_S`` waiting, the oldest is dropped."""
        if self.readyState != "live":
            return
        voice = self._voices.get(speaker)
        if voice is None:
            voice = self._voices[speaker] = _Voice()
        voice.add(pcm48)

    def forget(self, speaker: str) -> None:
        """Drop ``speaker`` (they left)."""
        self._voices.pop(speaker, None)

    def say(self, tag: str, pcm48: bytes) -> None:
        """Queue speech of the session ``tag``."""
        if not pcm48 or self.readyState != "live":
            return
        if self._speech and self._speech[-1].tag == tag:
            self._speech[-1].pcm += pcm48
        else:
            self._speech.append(_Speech(tag, bytearray(pcm48)))

    def clear(self, tag: str) -> None:
        """Drop the queued speech of the session ``tag``."""
        self._speech = deque(s for s in self._speech if s.tag != tag)

    def pending_s(self, tag: str) -> float:
        """Seconds of the session ``tag``'s speech not yet sent."""
        return sum(len(s.pcm) for s in self._speech if s.tag == tag) / 2 / OUTPUT_RATE

    def next_chunk(self) -> bytes:
        """The next 20 ms: each waiting voice and the assistant, summed and clipped."""
        parts = [chunk for voice in self._voices.values() if (chunk := voice.take())]
        speech = self._take_speech()
        if speech:
            parts.append(speech)
        if len(parts) <= 1:
            return parts[0] if parts else b""
        mix = np.zeros(FRAME_SAMPLES, np.int32)
        for part in parts:
            mix[: len(part) // 2] += np.frombuffer(part, "<i2")
        return np.clip(mix, -32768, 32767).astype("<i2").tobytes()

    def _take_speech(self) -> bytes:
        chunk = bytearray()
        while self._speech and len(chunk) < _FRAME_BYTES:
            head = self._speech[0].pcm
            need = _FRAME_BYTES - len(chunk)
            chunk += head[:need]
            del head[:need]
            if not head:
                self._speech.popleft()
        return bytes(chunk)


# -- video ------------------------------------------------------------------------------


class SlotTrack(MediaStreamTrack):
    """One of a listener's video slots: the camera of the participant assigned to it.

    The slot is the only track its sender ever has; switching the participant behind it
    needs no renegotiation, and a participant leaving does not end it. Frames are copied
    (each slot's encoder runs in a worker thread) and restamped on the slot's own clock,
    so the RTP timestamps stay continuous across a switch. With nobody assigned, ``recv``
    waits (nothing is sent).
    """

    kind = "video"

    def __init__(self, index: int, mid: str | None) -> None:
        super().__init__()
        self.index = index
        self.mid = mid
        self.source: str | None = None
        """The participant id whose camera this slot shows."""
        self._frame: av.VideoFrame | None = None
        self._fresh = asyncio.Event()
        self._start: float | None = None

    def switch(self, source: str | None) -> None:
        """Show ``source``'s camera from its next frame on (None: nobody)."""
        self.source = source
        self._frame = None

    def show(self, frame: av.VideoFrame) -> None:
        """A new frame of the camera this slot shows."""
        self._frame = frame
        self._fresh.set()

    async def recv(self) -> av.VideoFrame:
        """The next frame of the assigned camera, once there is one."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            await self._fresh.wait()
            self._fresh.clear()
            frame, self._frame = self._frame, None
            if frame is not None and self.readyState == "live":
                break
        copy = _copy(frame)
        now = time.monotonic()
        if self._start is None:
            self._start = now
        copy.pts = int((now - self._start) * 90_000)
        copy.time_base = _VIDEO_TIME_BASE
        return copy

    def stop(self) -> None:
        """End the slot (its participant left); a waiting ``recv`` raises."""
        super().stop()
        self._fresh.set()


def _copy(frame: av.VideoFrame) -> av.VideoFrame:
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        return av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")  # as decoded
    return av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")


def _recvonly_video(offer_sdp: str) -> list[str]:
    """The mids of the offer's ``recvonly`` video sections, in order."""
    description = sdp.SessionDescription.parse(offer_sdp)
    return [
        str(media.rtp.muxId)
        for media in description.media
        if media.kind == "video" and media.direction == "recvonly" and media.rtp.muxId
    ]


# -- a participant ----------------------------------------------------------------------


class Participant(RtcPeer):
    """One person in a room: their peer, their session (as them), the mix they hear.

    It is its session's ``CallSink``, and passes everything to the room: events to all
    (``Room.broadcast``), speech to every listener's mix (``Room.say``). ``on_closed`` is
    awaited once it has left (the server audits it, and drops the room once empty).
    """

    def __init__(
        self,
        room: Room,
        graft: Graft,
        principal: Principal,
        name: str,
        *,
        metrics: VoiceMetrics | None = None,
        gate: TurnGate | None = None,
        greet: bool = False,
        on_closed: Callable[[Participant], Awaitable[None]] | None = None,
    ) -> None:
        self.mix = MixTrack(on_played=self._played)
        super().__init__(graft, principal, self.mix)
        self.room = room
        self.name = name
        self.id = f"part_{secrets.token_hex(8)}"
        self.joined = False
        """Answered and announced; until then the room's audio and events skip it."""
        self.camera = False
        """Its camera is sending frames."""
        self.slots: list[SlotTrack] = []
        self.on_closed = on_closed
        self._upsampler = Upsampler()
        self._to_mix = av.AudioResampler(format="s16", layout="mono", rate=OUTPUT_RATE)
        self._heard: int | None = None  # the room log's line of its latest transcript
        self._answer: list[str] = []  # the assistant's answer to it, as it streams
        self._watching = False
        self.session = CallSession(
            graft,
            principal,
            self,
            assistant=room.assistant,
            metrics=metrics,
            gate=gate,
            addressed_only=True,
            names=(room.assistant, "assistant", "graft"),
            speaker_name=name,
            room_context=self._context,
            greet=greet,
        )

    # -- CallSink ---------------------------------------------------------------------

    async def send_event(self, event: dict[str, Any]) -> None:
        """Note it in the room's log, and send it to the room."""
        self._remember(event)
        self.room.broadcast(self, event)

    def play(self, pcm16: bytes, sample_rate: int) -> None:
        """Queue the assistant's speech for everyone in the room."""
        if pcm16 and self.mix.readyState == "live":
            self.room.say(self, self._upsampler.convert(pcm16, sample_rate))

    def clear(self) -> None:
        """Drop this session's queued speech, for every listener."""
        self._upsampler.reset()
        self.room.hush(self)

    def pending_s(self) -> float:
        """Seconds of this session's speech its own participant has yet to hear."""
        return self.mix.pending_s(self.id)

    def _played(self, samples: Float32) -> None:
        self.session.played(samples)

    def _remember(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "transcript":
            self._heard = self.room.note(self.name, str(event.get("text", "")))
            self._answer.clear()
        elif kind == "delta":
            self._answer.append(str(event.get("text", "")))
        elif kind == "turn_done" and self._answer:
            self.room.note(ASSISTANT_LABEL, "".join(self._answer))
            self._answer.clear()

    def _context(self) -> str:
        """The room's log for the question being answered (without the question itself)."""
        return self.room.log_text(exclude=self._heard)

    # -- media ------------------------------------------------------------------------

    def _negotiate(self, offer_sdp: str) -> None:
        super()._negotiate(offer_sdp)
        transceivers = {t.mid: t for t in self.pc.getTransceivers() if t.kind == "video"}
        for mid in _recvonly_video(offer_sdp)[:MAX_SLOTS]:
            transceiver = transceivers.get(mid)
            if transceiver is None:
                continue
            slot = SlotTrack(len(self.slots), mid)
            transceiver.direction = "sendonly"
            transceiver.sender.replaceTrack(slot)
            self.slots.append(slot)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self._listening:
            self._listening = True
            self._spawn(consume_audio(track, self.session.feed, tap=self._tap))
        elif track.kind == "video" and not self._watching:
            self._watching = True  # one camera
            self._spawn(self._watch(track))
        else:
            self._spawn(drain(track))

    def _tap(self, frame: av.AudioFrame) -> None:
        """The microphone's frame, for the others' mixes (48 kHz mono)."""
        pcm = b"".join(out.to_ndarray().tobytes() for out in self._to_mix.resample(frame))
        if pcm:
            self.room.hear(self, pcm)

    async def _watch(self, track: MediaStreamTrack) -> None:
        try:
            await super()._watch(track)
        finally:
            if self.camera:
                self.camera = False
                self.room.assign_video()

    def _keep_frame(self, frame: av.VideoFrame) -> None:
        super()._keep_frame(frame)  # for look: this participant's own camera
        if not self.camera:
            self.camera = True
            self.room.assign_video()
        self.room.show(self, frame)

    async def _closed(self) -> None:
        for slot in self.slots:
            slot.stop()
        self.room.leave(self)
        if self.on_closed is not None:
            await self.on_closed(self)


# -- the room ---------------------------------------------------------------------------


class Room:
    """A named room of one tenant: its assistant (fixed), participants and log."""

    def __init__(
        self, name: str, tenant: str, assistant: str, *, capacity: int = MAX_PARTICIPANTS
    ) -> None:
        self.name = name
        self.tenant = tenant
        self.assistant = assistant
        self.capacity = capacity
        self.created_at = time.time()
        self.members: dict[str, Participant] = {}
        """Everyone in the room, in the order they came, those still negotiating included."""
        self._log: deque[tuple[int, str]] = deque(maxlen=LOG_LINES)
        self._lines = 0

    @property
    def participants(self) -> list[Participant]:
        """Those who have joined (answered), in the order they came."""
        return [p for p in self.members.values() if p.joined]

    def names(self) -> list[str]:
        """The joined participants' display names."""
        return [p.name for p in self.participants]

    def full(self) -> bool:
        """No seat left (those negotiating hold one)."""
        return len(self.members) >= self.capacity

    def unique_name(self, wanted: str) -> str:
        """``wanted``, or ``wanted (2)``... when someone in the room has that name already."""
        taken = {p.name for p in self.members.values()}
        name, n = wanted, 1
        while name in taken:
            n += 1
            name = f"{wanted} ({n})"
        return name

    # -- coming and going -------------------------------------------------------------

    def reserve(self, participant: Participant) -> None:
        """Hold a seat for ``participant`` while its offer is answered."""
        self.members[participant.id] = participant

    def join(self, participant: Participant) -> None:
        """``participant``'s offer is answered: announce it, give it the cameras."""
        participant.joined = True
        self._announce("joined", participant)
        self.assign_video()

    def leave(self, participant: Participant) -> None:
        """``participant`` is gone (or never made it): free its seat, tell the others."""
        if self.members.pop(participant.id, None) is None:
            return
        for other in self.members.values():
            other.mix.forget(participant.id)
        if participant.joined:
            self._announce("left", participant)
            self.assign_video()

    def _announce(self, kind: str, participant: Participant) -> None:
        event = {"type": kind, "participant": participant.name, "participants": self.names()}
        for p in self.participants:
            p.deliver(event)

    # -- audio and events -------------------------------------------------------------

    def _audience(self, sender: Participant) -> list[Participant]:
        """Who gets what ``sender``'s session says: everyone, and itself before it joined."""
        audience = self.participants
        return audience if sender in audience else [*audience, sender]

    def broadcast(self, sender: Participant, event: dict[str, Any]) -> None:
        """``sender``'s session's event to everyone, with ``participant``; see module doc."""
        if event.get("type") in _OWNER_ONLY:
            sender.deliver(event)
            return
        tagged = {**event, "participant": sender.name}
        for p in self._audience(sender):
            p.deliver(tagged)

    def say(self, sender: Participant, pcm48: bytes) -> None:
        """Speech of ``sender``'s session, into every listener's mix."""
        for p in self._audience(sender):
            p.mix.say(sender.id, pcm48)

    def hush(self, sender: Participant) -> None:
        """Drop ``sender``'s session's queued speech from every mix."""
        for p in self.members.values():
            p.mix.clear(sender.id)

    def hear(self, speaker: Participant, pcm48: bytes) -> None:
        """``speaker``'s microphone, into everyone else's mix."""
        if not speaker.joined:
            return
        for p in self.participants:
            if p is not speaker:
                p.mix.hear(speaker.id, pcm48)

    # -- the log ----------------------------------------------------------------------

    def note(self, who: str, text: str) -> int:
        """Add ``who: text`` to the log; returns the line's number."""
        words = " ".join(text.split())
        if len(words) > LOG_LINE_CHARS:
            words = words[: LOG_LINE_CHARS - 1] + "…"
        self._lines += 1
        self._log.append((self._lines, f"{who}: {words}"))
        return self._lines

    def log_text(self, exclude: int | None = None) -> str:
        """The last ``LOG_LINES`` lines, oldest first (without line ``exclude``)."""
        return "\n".join(line for number, line in self._log if number != exclude)

    # -- video ------------------------------------------------------------------------

    def assign_video(self) -> None:
        """Fill each listener's slots with the others' cameras; tell those whose changed.

        A camera keeps its slot while it is on; freed slots take the cameras waiting, in
        the order their owners came.
        """
        joined = self.participants
        names = {p.id: p.name for p in joined}
        for listener in joined:
            if not listener.slots:
                continue
            cameras = [p.id for p in joined if p is not listener and p.camera]
            current = [slot.source for slot in listener.slots]
            wanted = [source if source in cameras else None for source in current]
            waiting = [c for c in cameras if c not in wanted]
            for i, source in enumerate(wanted):
                if source is None and waiting:
                    wanted[i] = waiting.pop(0)
            if wanted == current:
                continue
            for slot, source in zip(listener.slots, wanted, strict=True):
                if slot.source != source:
                    slot.switch(source)
            slots = [
                {"index": s.index, "mid": s.mid, "participant": names.get(s.source or "")}
                for s in listener.slots
            ]
            listener.deliver({"type": "video", "slots": slots})

    def show(self, speaker: Participant, frame: av.VideoFrame) -> None:
        """A frame of ``speaker``'s camera, to the slots that show it."""
        for p in self.participants:
            for slot in p.slots:
                if slot.source == speaker.id:
                    slot.show(frame)
