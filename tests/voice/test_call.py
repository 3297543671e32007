"""CallSession with the real VAD, Whisper and piper: turns, barge-in, echo, hold, filler.

The transport is a recording sink whose queued speech only "plays" when a test says so, so
each test decides whether the assistant is still talking. Audio is fed in 20 ms frames;
where timing matters (the end-of-turn hold) it is fed at the pace of a live call.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from graft.hookspecs import hookimpl
from graft.testing import FakeModel, call
from graft.tools.function import tool
from graft.voice.audio import SAMPLE_RATE, Float32, read_wav, resample, to_float32
from graft.voice.call import CallSession, addressed, sounds_unfinished
from graft.voice.echo import EchoReference, repeats_assistant

FRAME = SAMPLE_RATE // 50  # 20 ms


def spoken(text: str) -> Float32:
    """``text`` said by espeak-ng, at 16 kHz."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: apt-get install espeak-ng (scripts/test does)"
    wav = subprocess.run(
        [espeak, "-v", "en-us", "--stdout", "--", text], capture_output=True, check=True
    ).stdout
    samples, rate = read_wav(wav)
    return resample(samples, rate, SAMPLE_RATE)


def spoken_by_piper(text: str) -> Float32:
    """``text`` said by piper's joe voice, at 16 kHz (Whisper hears espeak-ng's names badly)."""
    from graft.voice.models import load_speaker

    speaker = load_speaker("en")
    pcm = b"".join(speaker.speak(text))
    return resample(to_float32(np.frombuffer(pcm, "<i2")), speaker.sample_rate)


def _samples(pcm16: bytes, rate: int) -> Float32:
    """Speech the sink was given, as 16 kHz float32."""
    return resample(to_float32(np.frombuffer(pcm16, "<i2")), rate)


def silence(seconds: float) -> Float32:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


class Sink:
    """Records events and speech; queued speech stays "playing" until ``drain``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.audio: list[tuple[bytes, int]] = []
        self.queued_s = 0.0
        self.cleared = 0

    async def send_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def play(self, pcm16: bytes, sample_rate: int) -> None:
        self.audio.append((pcm16, sample_rate))
        self.queued_s += len(pcm16) / 2 / sample_rate

    def clear(self) -> None:
        self.queued_s = 0.0
        self.cleared += 1

    def pending_s(self) -> float:
        return self.queued_s

    def drain(self) -> None:
        self.queued_s = 0.0

    def kinds(self) -> list[str]:
        return [e["type"] for e in self.events]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def wait_for(self, kind: str, count: int = 1, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while len(self.of(kind)) < count:
            assert time.monotonic() < deadline, f"no {kind!r} event; got {self.events}"
            await asyncio.sleep(0.02)


async def feed(session: CallSession, samples: Float32, *, live: bool = False) -> None:
    for start in range(0, samples.size, FRAME):
        await session.feed(samples[start : start + FRAME])
        await asyncio.sleep(FRAME / SAMPLE_RATE if live else 0)


async def call_with(
    started: Callable[..., Any], model: FakeModel, sink: Sink, **voice: Any
) -> CallSession:
    graft = await started(model, voice=voice, plugins=voice.pop("_plugins", ()))
    session = CallSession(graft, graft.principal_for("ann"), sink)
    await session.start()
    return session


async def test_greeting_then_a_spoken_turn(started: Callable[..., Any]) -> None:
    sink = Sink()
    session = await call_with(started, FakeModel("Two plus three is five."), sink)
    try:
        await sink.wait_for("audio")
        ready, greeting = sink.of("ready")[0], sink.of("audio")[0]
        assert ready["call_id"] == session.call_id
        assert (greeting["source"], greeting["sentence"]) == ("greeting", "Hello! How can I help?")
        assert sink.audio, "the greeting is spoken"
        sink.drain()
        await feed(session, np.concatenate([spoken("What is two plus three?"), silence(1)]))
        await sink.wait_for("turn_done")
        [heard] = sink.of("transcript")
        assert "plus" in heard["text"].lower()
        assert "".join(e["text"] for e in sink.of("delta")) == "Two plus three is five."
        assert sink.of("audio")[-1]["sentence"] == "Two plus three is five."
        [done] = sink.of("turn_done")
        assert done["interrupted"] is False and done["conversation_id"].startswith("conv_")
        assert done["timings"]["first_audio_ms"] > 0
        assert session.turns[0]["first_audio_ms"] == done["timings"]["first_audio_ms"]
    finally:
        await session.close()


async def test_barge_in_stops_speech_and_cancels_the_answer_within_200_ms(
    started: Callable[..., Any],
) -> None:
    sink = Sink()
    long_answer = " ".join(f"This is sentence number {n} of a long answer." for n in range(40))
    model = FakeModel(long_answer, "Sure, I stopped.")
    session = await call_with(started, model, sink, greeting="")
    try:
        await feed(session, np.concatenate([spoken("Tell me a long story."), silence(1)]))
        await sink.wait_for("audio")
        assert sink.pending_s() > 0  # the assistant is talking
        interruption = spoken_by_piper("Please be quiet for a moment.")
        onset = int(np.argmax(np.abs(interruption) > 0.02))
        # The assistant (the same piper voice) is heard back faintly, as through speakers
        # with the browser's echo cancellation: the echo check must not swallow this.
        playing = np.concatenate([_samples(pcm, rate) for pcm, rate in sink.audio])
        fed = 0
        for start in range(0, interruption.size, FRAME):
            session.played(playing[start : start + FRAME])
            echo = np.zeros(FRAME, np.float32)
            if start >= 1280:
                back = 0.2 * playing[start - 1280 : start - 1280 + FRAME]
                echo[: back.size] = back
            heard = interruption[start : start + FRAME]
            await session.feed((np.pad(heard, (0, FRAME - heard.size)) + echo).astype(np.float32))
            fed = start + FRAME
            if sink.of("barge_in"):
                break
        assert sink.of("barge_in"), "speaking over the assistant interrupts it"
        reaction_ms = (fed - onset) / SAMPLE_RATE * 1000
        assert reaction_ms <= 200, f"barge-in took {reaction_ms:.0f} ms of speech"
        assert sink.cleared >= 1 and sink.pending_s() == 0
        await feed(session, np.concatenate([interruption[fed:], silence(1)]))
        await sink.wait_for("turn_done", 2)
        first, second = sink.of("turn_done")
        assert first["interrupted"] is True
        # The interrupted answer is stored at once, cut where it was (not when collected).
        history = await session.graft.store.load_history(
            first["conversation_id"], session.principal
        )
        said = [m.content or "" for m in history if m.role == "assistant"]
        assert (
            said
            and said[0].startswith("This is sentence number 0")
            and len(said[0]) < len(long_answer)
        )
        assert second["interrupted"] is False
        assert "moment" in sink.of("transcript")[-1]["text"].lower()  # ("quiet" or "quite")
        assert len(sink.of("barge_in")) == 1
        assert len(model.requests) == 2
    finally:
        await session.close()


async def test_the_assistants_own_voice_coming_back_is_not_an_interruption(
    started: Callable[..., Any],
) -> None:
    sink = Sink()
    model = FakeModel("I can tell you about the weather, the time, and many other things.")
    session = await call_with(started, model, sink, greeting="")
    try:
        await feed(session, np.concatenate([spoken("What can you do?"), silence(1)]))
        await sink.wait_for("turn_done")
        played = np.concatenate([_samples(pcm, rate) for pcm, rate in sink.audio])
        sink.queued_s = played.size / SAMPLE_RATE  # still playing
        delay = int(0.08 * SAMPLE_RATE)
        rng = np.random.default_rng(0)
        heard_back = 0.5 * np.concatenate([np.zeros(delay, np.float32), played])  # 80 ms late
        for start in range(0, played.size - FRAME, FRAME):
            session.played(played[start : start + FRAME])
            echo = heard_back[start : start + FRAME] + rng.normal(0, 0.002, FRAME)
            await session.feed(echo.astype(np.float32))
        sink.drain()
        await feed(session, silence(1.5))
        await asyncio.sleep(1.0)
        assert not sink.of("barge_in")
        assert len(sink.of("transcript")) == 1, "the assistant did not answer itself"
        assert len(model.requests) == 1
    finally:
        await session.close()


async def test_an_unfinished_sentence_waits_for_the_rest(started: Callable[..., Any]) -> None:
    sink = Sink()
    model = FakeModel("It is noon on Monday.")
    session = await call_with(started, model, sink, greeting="", hold_ms=1200)
    try:
        first, rest = spoken("Tell me the time and"), spoken("the day of the week.")
        # 700 ms of silence: longer than the 400 ms that ends an utterance.
        await feed(session, np.concatenate([first, silence(0.7), rest, silence(1)]), live=True)
        await sink.wait_for("turn_done")
        await asyncio.sleep(0.5)
        [heard] = sink.of("transcript")
        assert "time" in heard["text"].lower() and "week" in heard["text"].lower()
        assert len(model.requests) == 1
    finally:
        await session.close()


async def test_a_slow_tool_gets_a_spoken_filler(started: Callable[..., Any]) -> None:
    class Slow:
        @hookimpl
        def register_tools(self, register: Any) -> None:
            @tool
            async def slow_lookup() -> str:
                """Look something up slowly."""
                await asyncio.sleep(1.6)
                return "found"

            register(slow_lookup)

    sink = Sink()
    model = FakeModel([call("slow_lookup")], "I found it.")
    session = await call_with(
        started, model, sink, greeting="", filler_after_s=0.5, _plugins=(Slow(),)
    )
    try:
        await feed(session, np.concatenate([spoken("Please look it up."), silence(1)]))
        await sink.wait_for("turn_done")
        kinds = sink.kinds()
        fillers = [e for e in sink.of("audio") if e.get("source") == "filler"]
        assert [f["sentence"] for f in fillers] == ["One moment."]
        started_at = kinds.index("tool")
        assert started_at < sink.events.index(fillers[0]) < kinds.index("delta")
    finally:
        await session.close()


def test_sounds_unfinished() -> None:
    for text in (
        "Tell me the time and",
        "I want, um",
        "So the thing is,",
        "我想问一下然后",
        "Well...",
    ):
        assert sounds_unfinished(text), text
    for text in ("What time is it?", "Tell me the time.", "现在几点？", ""):
        assert not sounds_unfinished(text), text


def test_addressed() -> None:
    assert addressed("Hey graft, what's the time?", ["graft"])
    assert addressed("小助手，现在几点", ["小助手"])
    for heard in ("Hey, graph, what is", "A graphed what is", "Hey, Grafts, what"):
        assert addressed(heard, ["graft"]), heard
    assert not addressed("the graftwork is done", ["graft"])
    assert not addressed("a first draft and a craft fair", ["graft"])


def test_echo_reference_tells_a_copy_from_a_voice() -> None:
    echo = EchoReference()
    voice = spoken("The weather today is sunny with a light breeze.")
    echo.add(voice[: 2 * SAMPLE_RATE])
    copy = 0.4 * voice[8000 : 8000 + 4000]
    assert echo.is_echo(copy.astype(np.float32))
    other = spoken("Wait a second.")[:4000]
    assert not echo.is_echo(other)
    loud_over_echo = (other + 0.3 * voice[8000 : 8000 + other.size]).astype(np.float32)
    assert not echo.is_echo(loud_over_echo)
    assert not EchoReference().is_echo(copy.astype(np.float32))  # nothing was played


@pytest.mark.parametrize(
    ("heard", "expected"),
    [("sunny with a light breeze", True), ("what about tomorrow", False)],
)
def test_repeats_assistant(heard: str, expected: bool) -> None:
    said = "The weather today is sunny with a light breeze."
    assert repeats_assistant(heard, said) is expected


async def test_in_a_room_only_speech_that_names_the_assistant_is_answered(
    started: Callable[..., Any],
) -> None:
    sink = Sink()
    model = FakeModel("It is sunny.")
    graft = await started(model, voice={"greeting": ""})
    session = CallSession(
        graft,
        graft.principal_for("ann"),
        sink,
        addressed_only=True,
        names=["assistant"],
        speaker_name="Ann",
        room_context=lambda: "Bob: shall we go out later?",
    )
    await session.start()
    try:
        await feed(session, np.concatenate([spoken("I think it will rain."), silence(1)]))
        await sink.wait_for("transcript")
        await asyncio.sleep(0.3)
        assert sink.of("transcript")[0]["speaker"] == "Ann"
        assert not model.requests, "not addressed: transcribed, not answered"
        question = spoken("Hey assistant, what is the weather today?")  # espeak: repeatable
        await feed(session, np.concatenate([question, silence(1)]))
        await sink.wait_for("turn_done")
        asked = model.requests[0].messages[-1].content or ""
        assert "Bob: shall we go out later?" in asked and "Ann: " in asked
        assert "weather" in asked.lower()
    finally:
        await session.close()


class CountingSTT:
    """The real recognizer, counting what it was asked to transcribe."""

    def __init__(self, stt: Any) -> None:
        self.stt = stt
        self.heard: list[float] = []

    def transcribe(self, audio: Float32, language: str | None = None) -> Any:
        self.heard.append(audio.size / SAMPLE_RATE)
        return self.stt.transcribe(audio, language)


async def test_transcription_starts_during_the_silence_and_is_used(
    started: Callable[..., Any],
) -> None:
    sink = Sink()
    session = await call_with(started, FakeModel("Five.", "Noon."), sink, greeting="")
    counting = session.voice.stt = CountingSTT(session.voice.stt)
    try:
        await feed(session, np.concatenate([spoken("What is two plus three?"), silence(1)]))
        await sink.wait_for("turn_done")
        assert len(counting.heard) == 1, "the early transcript was the turn's"
        assert "plus" in sink.of("transcript")[0]["text"].lower()
        # A pause longer than early_stt_ms but shorter than silence_ms: the early result
        # (the first half) is dropped and the whole sentence is heard.
        first, rest = spoken("Tell me the time"), spoken("in Paris please.")
        await feed(session, np.concatenate([first, silence(0.25), rest, silence(1)]))
        await sink.wait_for("turn_done", 2)
        dropped, used = counting.heard[1:-1], counting.heard[-1]
        assert dropped and used > max(dropped)  # (the VAD may flicker: more than one early)
        heard = sink.of("transcript")[1]["text"].lower()
        assert "time" in heard and "paris" in heard
    finally:
        await session.close()


async def test_a_chinese_caller_is_answered_in_chinese_by_kokoro(
    started: Callable[..., Any],
) -> None:
    """The whole Chinese path: Whisper hears Mandarin, the answer is spoken by Kokoro."""
    sink = Sink()
    session = await call_with(started, FakeModel("北京今天晴天，二十度。"), sink, greeting="")
    try:
        chinese = session.voice.speaker("zh")
        assert type(chinese).__name__ == "KokoroSpeaker"
        pcm = b"".join(chinese.speak("今天北京的天气怎么样？"))
        question = resample(to_float32(np.frombuffer(pcm, "<i2")), chinese.sample_rate)
        await feed(session, np.concatenate([question, silence(1)]))
        await sink.wait_for("turn_done")
        [heard] = sink.of("transcript")
        assert heard["language"] == "zh" and "北京" in heard["text"], heard
        first = sink.of("audio")[0]
        assert first["rate"] == 24_000 and first["sentence"] == "北京今天晴天，"
        assert sink.audio and all(rate == 24_000 for _, rate in sink.audio)
    finally:
        await session.close()
