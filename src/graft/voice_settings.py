"""``[voice]``: how voice calls listen, take turns, speak and connect (``graft.voice``).

Apart from ``graft.voice`` so that ``graft.config`` can hold it without importing the speech
stack. docs/voice.md ("Settings") describes each field; the defaults work offline.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graft.netguard import AllowHosts

__all__ = ["VoiceSettings"]


class VoiceSettings(BaseModel):
    """``[voice]``: turn-taking, the spoken greeting and filler, WebRTC and speech engines."""

    model_config = ConfigDict(extra="forbid")

    silence_ms: int = Field(
        default=320,
        ge=100,
        le=3000,
        description="Silence that ends an utterance. It counts 1:1 in the reply's latency; "
        "a pause this long after words that sound unfinished waits `hold_ms` more, and "
        "speech resuming before the answer is heard continues the same turn.",
    )
    early_stt_ms: int = Field(
        default=128,
        ge=0,
        le=3000,
        description="Start transcribing after this much silence, before `silence_ms` has "
        "passed: when the silence then ends the utterance the transcript is (nearly) "
        "ready; speech resuming discards it. 0: transcribe only once the utterance ends.",
    )
    hold_ms: int = Field(
        default=700,
        ge=0,
        le=5000,
        description="Further wait, after `silence_ms`, when the words heard so far sound "
        "unfinished (a trailing 'and', 'so', 'um', a comma): speech resuming within it "
        "continues the same turn instead of starting a new one.",
    )
    min_speech_ms: int = Field(
        default=250, ge=32, le=2000, description="Shorter sounds (clicks, coughs) are ignored."
    )
    barge_in_ms: int = Field(
        default=64,
        ge=32,
        le=1000,
        description="Speech that long while the assistant talks interrupts it: playback "
        "stops and the answer being generated is cancelled.",
    )
    full_window: bool = Field(
        default=False,
        description="Encode each utterance in Whisper's full 30 s window (slower, the "
        "reference behaviour) instead of only its own length.",
    )
    greeting: str = Field(
        default="Hello! How can I help?",
        max_length=500,
        description="Spoken when a call starts; empty: none.",
    )
    filler: str = Field(
        default="One moment.",
        max_length=200,
        description="Spoken when a tool runs longer than `filler_after_s`; empty: none.",
    )
    filler_zh: str = Field(default="请稍等。", max_length=200, description="The filler in Chinese.")
    filler_after_s: float = Field(default=1.0, ge=0.1, le=30.0)
    max_calls: int = Field(
        default=8, ge=1, le=1000, description="Calls one process takes at once; more get 503."
    )
    max_call_s: int = Field(
        default=3600, ge=10, le=86400, description="A call is hung up after this long."
    )
    ice_servers: list[str] = Field(
        default_factory=list,
        description="STUN/TURN URLs for WebRTC (`stun:stun.corp:3478`). Empty: host "
        "candidates only, which works on a LAN and never contacts anyone outside.",
    )
    vision_model: str | None = Field(
        default=None,
        description="Model id (`provider:name`) that the `look` tool shows the caller's "
        "camera frame to; None: the assistant's own model.",
    )
    stt: str = Field(
        default="local",
        description="`local` (Whisper base, offline) or `provider:model`: an "
        "OpenAI-compatible `/audio/transcriptions` endpoint of that provider.",
    )
    tts: str = Field(
        default="local",
        description="`local` (piper for English, espeak-ng otherwise) or `provider:model`: "
        "an OpenAI-compatible `/audio/speech` endpoint of that provider.",
    )
    tts_voice: str = Field(default="alloy", max_length=64, description="Voice for remote TTS.")
    allow_hosts: AllowHosts = Field(
        default_factory=list,
        description="Intranet host names or CIDRs the remote speech endpoints may resolve to.",
    )

    @field_validator("stt", "tts")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value != "local" and ":" not in value:
            raise ValueError("must be 'local' or 'provider:model'")
        return value

    @field_validator("ice_servers")
    @classmethod
    def _ice(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
        return value
