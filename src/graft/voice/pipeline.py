"""One voice turn: an utterance in, the same chat turn as text, spoken sentences out.

``VoiceTurn.stream`` transcribes the utterance (``stt``), runs the transcript through
``Graft.run_turn`` for the caller's ``Principal`` (the very path of a text chat: policy,
tools, approvals, middleware, storage), cuts the streamed answer into sentences and speaks
each one as soon as it is complete. It yields the ``Transcript``, every turn ``Event`` and
``AudioChunk``s, so a transport (the CLI now; WebRTC and WebSocket later) only forwards.

The three latencies that matter to a caller are measured per turn from the moment the VAD
decided speech had ended (``Utterance.detected_at``): to the transcript, to the model's
first token and to the first audio byte (``VoiceTimings``), and handed to an optional
``VoiceMetrics`` sink (the server's Prometheus histograms). Recognition and synthesis are
CPU-bound and run in worker threads, off the event loop. A tool call waiting for approval
is denied: nobody can click "allow" in a voice call yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from graft.events import ApprovalRequired, ErrorEvent, Event, TextDelta, TurnStarted
from graft.messages import Message
from graft.turn import TurnRequest
from graft.voice.audio import resample, to_float32
from graft.voice.stt import STT, Transcript
from graft.voice.tts import SentenceSplitter, Speaker
from graft.voice.vad import Utterance

if TYPE_CHECKING:
    from graft.context import Principal
    from graft.runtime import Graft

__all__ = [
    "AudioChunk",
    "TurnGate",
    "VoiceMetrics",
    "VoiceReply",
    "VoiceTimings",
    "VoiceTurn",
    "transcribe_and_answer",
]


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """PCM16 mono audio of the answer, at ``sample_rate``."""

    pcm16: bytes
    sample_rate: int
    sentence: str


@dataclass(slots=True)
class VoiceTimings:
    """Seconds from the end of the caller's speech (as the VAD decided it) to each milestone."""

    transcript: float | None = None
    first_token: float | None = None
    first_audio: float | None = None
    total: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """The timings in milliseconds, rounded, for printing."""
        return {
            f"{name}_ms": None if value is None else round(value * 1000, 1)
            for name, value in (
                ("transcript", self.transcript),
                ("first_token", self.first_token),
                ("first_audio", self.first_audio),
                ("total", self.total),
            )
        }


class TurnGate(Protocol):
    """The caller's limits, per voice turn (``graft.server.ratelimit.TurnLimits`` is one)."""

    async def start_turn(self, *, stream: bool) -> None:
        """Refuse the turn (a ``GraftError``) when the caller's day's budget is spent."""
        ...

    def metered(self, events: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
        """``events``, counting the turn's tokens into the caller's budget."""
        ...


class VoiceMetrics(Protocol):
    """Where finished turns' timings go (``graft.server.metrics.Metrics`` is one)."""

    def observe_voice(self, timings: VoiceTimings) -> None:
        """Record one turn's timings."""
        ...


@dataclass(slots=True)
class VoiceReply:
    """A whole voice turn, collected: what was heard, answered and spoken, and how fast."""

    transcript: Transcript | None
    text: str = ""
    pcm16: bytes = b""
    sample_rate: int = 0
    conversation_id: str | None = None
    error: str | None = None
    timings: VoiceTimings = field(default_factory=VoiceTimings)


class VoiceTurn:
    """Runs voice turns for one caller (``principal``) with one assistant."""

    def __init__(
        self,
        graft: Graft,
        principal: Principal,
        stt: STT,
        speakers: Callable[[str], Speaker],
        *,
        assistant: str = "default",
        conversation_id: str | None = None,
        metrics: VoiceMetrics | None = None,
        output_rate: int | None = None,
        gate: TurnGate | None = None,
    ) -> None:
        self.graft = graft
        self.principal = principal
        self.stt = stt
        self.speakers = speakers
        self.assistant = assistant
        self.conversation_id = conversation_id
        self.metrics = metrics
        self.output_rate = output_rate
        self.gate = gate
        self.timings = VoiceTimings()
        self._voices: dict[str, Speaker] = {}

    def speaker(self, language: str) -> Speaker:
        """The speaker for ``language`` in this call (made on first use; may load a model)."""
        if language not in self._voices:
            self._voices[language] = self.speakers(language)
        return self._voices[language]

    async def stream(
        self, utterance: Utterance
    ) -> AsyncIterator[Transcript | None | Event | AudioChunk]:
        """Yield the transcript (``None``: not speech, and the turn ends), events, audio."""
        transcript = await self.transcribe(utterance)
        yield transcript
        if transcript is None:
            return
        async for item in self.answer(transcript, utterance.detected_at):
            yield item

    async def transcribe(
        self, utterance: Utterance, early: Awaitable[Transcript | None] | None = None
    ) -> Transcript | None:
        """Recognize ``utterance`` in a worker thread; starts this turn's ``timings``.

        ``early`` is a recognition of the same audio started before the end of speech was
        decided; the transcript's timing is then when it was ready, at least 0.
        """
        self.timings = VoiceTimings()
        if early is not None:
            transcript = await early
        else:
            transcript = await asyncio.to_thread(self.stt.transcribe, utterance.audio)
        self.timings.transcript = max(0.0, time.perf_counter() - utterance.detected_at)
        return transcript

    async def answer(
        self, transcript: Transcript, heard: float
    ) -> AsyncGenerator[Event | AudioChunk, None]:
        """Run ``transcript`` as a chat turn; yield its events and the spoken sentences.

        ``heard`` is the ``perf_counter`` moment the end of speech was detected: the
        timings' origin. Call ``transcribe`` first (it resets the timings).
        """
        timings = self.timings
        speaker = await asyncio.to_thread(self.speaker, transcript.language)
        splitter = SentenceSplitter()
        request = TurnRequest(
            self.assistant, [Message("user", transcript.text)], self.conversation_id
        )
        if self.gate is not None:
            await self.gate.start_turn(stream=False)
        events = self.graft.run_turn(request, self.principal)
        if self.gate is not None:
            events = self.gate.metered(events)
        # aclosing: a turn cancelled while it speaks (barge-in, hang-up) must still end in
        # the store now, not when the suspended generator is collected.
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                if isinstance(event, TurnStarted):
                    self.conversation_id = event.conversation_id
                elif isinstance(event, ApprovalRequired):
                    self.graft.approvals.decide(
                        event.approval_id,
                        self.principal,
                        False,
                        "no one can approve in a voice call",
                    )
                yield event
                if isinstance(event, TextDelta) and event.text:
                    if timings.first_token is None:
                        timings.first_token = time.perf_counter() - heard
                    for sentence in splitter.feed(event.text):
                        async for chunk in self._say(speaker, sentence, heard):
                            yield chunk
        for sentence in splitter.flush():
            async for chunk in self._say(speaker, sentence, heard):
                yield chunk
        timings.total = time.perf_counter() - heard
        if self.metrics is not None:
            self.metrics.observe_voice(timings)

    async def say(self, text: str, language: str = "en") -> AsyncIterator[AudioChunk]:
        """Speak ``text`` outside any turn (a greeting, a filler); no timings."""
        speaker = await asyncio.to_thread(self.speaker, language)
        async for chunk in self._say(speaker, text, None):
            yield chunk

    async def _say(
        self, speaker: Speaker, sentence: str, heard: float | None
    ) -> AsyncIterator[AudioChunk]:
        chunks = await asyncio.to_thread(lambda: list(speaker.speak(sentence)))
        rate = speaker.sample_rate
        for pcm in chunks:
            if self.output_rate is not None and rate != self.output_rate:
                samples = resample(to_float32(np.frombuffer(pcm, "<i2")), rate, self.output_rate)
                pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
            if heard is not None and self.timings.first_audio is None and pcm:
                self.timings.first_audio = time.perf_counter() - heard
            yield AudioChunk(pcm, self.output_rate or rate, sentence)


async def transcribe_and_answer(turn: VoiceTurn, utterance: Utterance) -> VoiceReply:
    """Run ``turn`` on ``utterance`` and collect everything it produced."""
    reply = VoiceReply(None)
    audio = bytearray()
    async for item in turn.stream(utterance):
        if isinstance(item, Transcript):
            reply.transcript = item
        elif isinstance(item, TextDelta):
            reply.text += item.text
        elif isinstance(item, ErrorEvent):
            reply.error = item.message
        elif isinstance(item, AudioChunk):
            audio += item.pcm16
            reply.sample_rate = item.sample_rate
    reply.pcm16 = bytes(audio)
    reply.conversation_id = turn.conversation_id
    reply.timings = turn.timings
    return reply
