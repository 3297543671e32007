"""``graft call``: one voice turn from a WAV file, in-process, through the same turn path.

It reads the WAV (any rate and channel count, resampled with numpy), cuts it into
utterances with the VAD, and runs each as a voice turn (``graft.voice.pipeline``) in one
conversation: speech to text, ``run_turn`` as ``graft ask`` does, text to speech. It prints
what was heard, the answer and the per-turn timings, and writes the spoken answer to a WAV.
It is the first, file-based slice of voice calls; live transports (WebRTC, WebSocket) come
later and reuse ``VoiceTurn``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from graft.cli_common import async_command, settings_of
from graft.config import Settings
from graft.errors import GraftError
from graft.runtime import Graft

__all__ = ["call"]

OUTPUT_RATE = 22_050
"""Rate of the reply WAV (piper's and espeak-ng's own rate)."""


def open_graft(settings: Settings) -> Graft:
    """The Graft a call runs on (tests swap in one with a scripted model)."""
    return Graft(settings)


@click.command()
@click.option(
    "--wav",
    "wav_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="What the caller says: a PCM WAV file, any rate and channel count.",
)
@click.option("-a", "--assistant", default="default", show_default=True)
@click.option("--user", default=None, help="Call as this user (default: the local user).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the spoken answer here (16-bit mono WAV).",
)
@click.option(
    "--silence-ms",
    type=click.IntRange(100, 5000),
    default=None,
    help="Silence that ends an utterance [default: voice.silence_ms, 400].",
)
@click.option(
    "--full-window/--short-window",
    default=False,
    help="Whisper's standard 30 s window instead of encoding only the utterance (slower).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, for scripts.")
@click.pass_context
@async_command
async def call(
    ctx: click.Context,
    wav_path: Path,
    assistant: str,
    user: str | None,
    out: Path | None,
    silence_ms: int | None,
    full_window: bool,
    as_json: bool,
) -> None:
    """Talk to an assistant with a recorded WAV: transcribe, answer, speak the answer."""
    from graft.voice.audio import SAMPLE_RATE, read_wav, resample, write_wav
    from graft.voice.engines import speaker_factory, stt_for
    from graft.voice.pipeline import VoiceTurn, transcribe_and_answer
    from graft.voice.vad import Segmenter

    try:
        settings = settings_of(ctx)
        samples, rate = read_wav(wav_path)
        if full_window:
            voice = settings.voice.model_copy(update={"full_window": True})
            settings = settings.model_copy(update={"voice": voice})
        stt = stt_for(settings)
        speakers = speaker_factory(settings)
        speakers("en")  # loaded (and warmed) before the clock of the first turn starts
        async with open_graft(settings) as graft:
            # Cut after everything is loaded: each utterance's clock starts when it is cut.
            segmenter = Segmenter(silence_ms=silence_ms or settings.voice.silence_ms)
            utterances = segmenter.feed(resample(samples, rate, SAMPLE_RATE))
            utterances += segmenter.flush()
            if not utterances:
                raise click.ClickException(f"no speech found in {wav_path}")
            turn = VoiceTurn(
                graft,
                graft.principal_for(user),
                stt,
                speakers,
                assistant=assistant,
                output_rate=OUTPUT_RATE,
            )
            # A file has no real time: each utterance is taken to end just before its turn.
            replies = [
                await transcribe_and_answer(turn, replace(u, detected_at=time.perf_counter()))
                for u in utterances
            ]
    except GraftError as exc:
        raise click.ClickException(exc.message) from None
    heard = [r for r in replies if r.transcript is not None]
    if not heard:
        raise click.ClickException(f"no speech recognized in {wav_path}")
    pcm = b"".join(r.pcm16 for r in heard)
    if out is not None:
        write_wav(out, pcm, OUTPUT_RATE)
    summary: list[dict[str, Any]] = [
        {
            "transcript": r.transcript.text if r.transcript else "",
            "language": r.transcript.language if r.transcript else None,
            "answer": r.text,
            "error": r.error,
            "conversation_id": r.conversation_id,
            "audio_seconds": round(len(r.pcm16) / 2 / OUTPUT_RATE, 2),
            "timings": r.timings.as_dict(),
        }
        for r in heard
    ]
    if as_json:
        click.echo(json.dumps({"turns": summary, "out": str(out) if out else None}, indent=2))
    else:
        for item in summary:
            click.secho(f"you ({item['language']}): {item['transcript']}", dim=True, err=True)
            click.echo(item["answer"])
            if item["error"]:
                click.secho(f"error: {item['error']}", fg="red", err=True)
            shown = ", ".join(f"{k} {v} ms" for k, v in item["timings"].items() if v is not None)
            click.secho(f"(after end of speech: {shown})", dim=True, err=True)
        if out is not None:
            click.secho(f"answer spoken to {out}", dim=True, err=True)
    if any(r.error for r in heard):
        raise SystemExit(1)
