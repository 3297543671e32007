from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graft.events import TextDelta, TurnDone
from graft.server.metrics import Metrics
from graft.testing import FakeModel
from graft.voice.audio import SAMPLE_RATE, read_wav, resample
from graft.voice.pipeline import AudioChunk, VoiceTurn, transcribe_and_answer
from graft.voice.stt import Transcript
from graft.voice.tts import EspeakSpeaker
from graft.voice.vad import Segmenter, Utterance


def _utterance(path: Path) -> Utterance:
    samples, rate = read_wav(path)
    segmenter = Segmenter()
    [utterance] = segmenter.feed(resample(samples, rate, SAMPLE_RATE)) + segmenter.flush()
    return utterance


async def test_a_voice_turn_is_the_text_turn_spoken(
    started: Callable[..., Any], stt: Any, question_wav: Path
) -> None:
    model = FakeModel("Two plus three is five. Anything else?")
    graft = await started(model)
    metrics = Metrics()
    principal = graft.principal_for("ann")
    turn = VoiceTurn(graft, principal, stt, EspeakSpeaker, metrics=metrics)
    items = [item async for item in turn.stream(_utterance(question_wav))]
    transcript = items[0]
    assert isinstance(transcript, Transcript) and "what" in transcript.text.lower()
    assert model.requests[0].messages[-1].content == transcript.text  # the same turn path
    assert any(isinstance(i, TurnDone) and i.finish_reason == "stop" for i in items)
    chunks = [i for i in items if isinstance(i, AudioChunk)]
    assert [c.sentence for c in chunks][0] == "Two plus three is five."
    assert chunks[-1].sentence == "Anything else?"
    first_audio = items.index(chunks[0])
    last_text = max(i for i, item in enumerate(items) if isinstance(item, TextDelta))
    assert first_audio < last_text  # the first sentence is spoken while the answer streams
    timings = turn.timings
    assert timings.transcript is not None and timings.first_token is not None
    assert timings.first_audio is not None and timings.total is not None
    assert 0 < timings.transcript <= timings.first_token <= timings.first_audio <= timings.total
    rendered = metrics.render().decode()
    for stage in ("transcript", "first_token", "first_audio"):
        assert f"graft_voice_{stage}_seconds_count 1.0" in rendered
    assert (turn.conversation_id or "").startswith("conv_")


async def test_noise_gives_no_turn(started: Callable[..., Any], stt: Any) -> None:
    model = FakeModel("never asked")
    graft = await started(model)
    silence = Utterance(np.zeros(SAMPLE_RATE, np.float32), 0.0, 1.0, time.perf_counter())
    turn = VoiceTurn(graft, graft.principal_for(None), stt, EspeakSpeaker)
    reply = await transcribe_and_answer(turn, silence)
    assert reply.transcript is None and reply.pcm16 == b"" and model.requests == []
