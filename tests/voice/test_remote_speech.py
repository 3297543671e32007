"""Remote speech engines against a real OpenAI-compatible server on 127.0.0.1.

The server parses what it receives (the multipart form of a transcription, the JSON of a
speech request) and answers with real audio and text: it transcribes the uploaded WAV with
graft's own Whisper, and speaks with espeak-ng, so the audio is checked end to end.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graft.config import Settings, load_settings
from graft.errors import ModelError, ModelTimeout, NetworkBlocked
from graft.netguard import Resolver
from graft.secrets import mask
from graft.voice import VoiceUnavailable
from graft.voice.audio import SAMPLE_RATE, Float32, read_wav, resample, to_pcm16, wav_bytes
from graft.voice.engines import speaker_factory, stt_for
from graft.voice.remote import OPENAI_PCM_RATE, RemoteSpeaker, RemoteSTT
from graft.voice.stt import WhisperSTT

KEY = "sk-test-Zq8Yw2speech4242"


@dataclass
class Received:
    path: str
    authorization: str | None
    content_type: str
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    """name → (filename, content type, bytes)"""
    body: Any = None


Answer = tuple[int, dict[str, str], bytes]


class Upstream:
    """``/v1/audio/transcriptions`` and ``/v1/audio/speech`` on 127.0.0.1.

    Scripted answers first (status 0: answer too late); then the computed ones:
    ``transcribe(wav) -> dict`` and ``speak(body) -> Answer``.
    """

    def __init__(
        self, transcribe: Callable[[bytes], dict[str, Any]], speak: Callable[[Any], Answer]
    ) -> None:
        self.received: list[Received] = []
        self.script: list[Answer] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                got = Received(
                    self.path, self.headers["Authorization"], self.headers["Content-Type"]
                )
                if got.content_type.startswith("multipart/form-data"):
                    head = f"Content-Type: {got.content_type}\r\n\r\n".encode()
                    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        head + raw
                    )
                    for part in message.iter_parts():
                        name = part.get_param("name", header="content-disposition")
                        data = part.get_payload(decode=True)
                        if part.get_filename() is None:
                            got.form[name] = data.decode()
                        else:
                            got.files[name] = (part.get_filename(), part.get_content_type(), data)
                else:
                    got.body = json.loads(raw)
                upstream.received.append(got)
                if upstream.script:
                    status, headers, body = upstream.script.pop(0)
                    if status == 0:
                        time.sleep(0.6)
                        return
                elif self.path.endswith("/audio/transcriptions"):
                    answer = transcribe(got.files["file"][2])
                    status, headers, body = 200, {}, json.dumps(answer).encode()
                else:
                    status, headers, body = speak(got.body)
                headers = {"Content-Type": "application/json", **headers}
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()


def _espeak(text: str, voice: str = "en-us") -> tuple[Float32, int]:
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing: apt-get install espeak-ng (scripts/test does)"
    wav = subprocess.run([espeak, "-v", voice, "--stdout", text], capture_output=True, check=True)
    return read_wav(wav.stdout)


def _json(data: Any, status: int = 200, **headers: str) -> Answer:
    return status, headers, json.dumps(data).encode()


@pytest.fixture(scope="module")
def upstream(stt: WhisperSTT) -> Iterator[Upstream]:
    def transcribe(wav: bytes) -> dict[str, Any]:
        samples, rate = read_wav(wav)
        assert rate == SAMPLE_RATE
        heard = stt.transcribe(samples)
        if heard is None:
            return {"text": "", "language": "english", "segments": [{"no_speech_prob": 0.97}]}
        names = {"en": "english", "zh": "chinese"}
        return {
            "task": "transcribe",
            "language": names[heard.language],
            "duration": samples.size / rate,
            "text": heard.text,
            "segments": [{"id": 0, "text": heard.text, "no_speech_prob": heard.no_speech_prob}],
        }

    def speak(body: Any) -> Answer:
        samples, rate = _espeak(body["input"])
        if body["response_format"] == "wav":
            return 200, {"Content-Type": "audio/wav"}, wav_bytes(to_pcm16(samples), rate)
        return 200, {"Content-Type": "audio/pcm"}, to_pcm16(resample(samples, rate, 24_000))

    server = Upstream(transcribe, speak)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(autouse=True)
def fresh(upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    upstream.received.clear()
    upstream.script.clear()
    monkeypatch.setenv("CORP_SPEECH_TOKEN", KEY)


def settings_for(tmp_path: Path, base_url: str, *, timeout: float = 5.0, **voice: Any) -> Settings:
    corp = {
        "base_url": base_url,
        "api_key": {"$env": "CORP_SPEECH_TOKEN"},
        "timeout": timeout,
        "max_retries": 1,
    }
    voice = {"stt": "corp:whisper-1", "tts": "corp:tts-1", "tts_voice": "nova", **voice}
    return load_settings(home=tmp_path, providers={"corp": corp}, voice=voice)


@pytest.fixture
def settings(tmp_path: Path, upstream: Upstream) -> Settings:
    return settings_for(tmp_path, f"http://127.0.0.1:{upstream.port}/v1")


def _heard(text: str) -> bool:
    words = text.lower()
    return ("two" in words or "2" in words) and ("three" in words or "3" in words)


# --- speech to text ---------------------------------------------------------------------------


def test_the_utterance_goes_up_as_a_wav_and_comes_back_a_transcript(
    settings: Settings, upstream: Upstream
) -> None:
    samples, rate = _espeak("What is two plus three?")
    audio = resample(samples, rate, SAMPLE_RATE)
    remote = stt_for(settings)
    assert isinstance(remote, RemoteSTT) and stt_for(settings) is remote  # made once
    transcript = remote.transcribe(audio)
    assert transcript is not None and _heard(transcript.text), transcript
    assert transcript.language == "en" and transcript.no_speech_prob < 0.6
    assert not transcript.retried and 0 < transcript.seconds < 30

    [got] = upstream.received
    assert (got.path, got.authorization) == ("/v1/audio/transcriptions", f"Bearer {KEY}")
    assert got.form == {"model": "whisper-1", "response_format": "verbose_json"}
    filename, kind, wav = got.files["file"]
    assert (filename, kind) == ("utterance.wav", "audio/wav")
    sent, rate = read_wav(wav)
    assert rate == SAMPLE_RATE and sent.size == audio.size
    assert np.abs(sent - audio).max() < 1e-3  # PCM16 of the very samples


def test_a_given_language_is_sent_and_chinese_comes_back_as_zh(
    settings: Settings, upstream: Upstream
) -> None:
    remote = RemoteSTT.from_settings(settings)
    upstream.script = [_json({"text": "你好。", "language": "chinese", "segments": []})]
    transcript = remote.transcribe(np.zeros(SAMPLE_RATE, np.float32), language="zh")
    assert transcript is not None and (transcript.text, transcript.language) == ("你好。", "zh")
    assert upstream.received[0].form["language"] == "zh"


def test_silence_is_none(settings: Settings, upstream: Upstream) -> None:
    remote = RemoteSTT.from_settings(settings)
    assert remote.transcribe(np.zeros(SAMPLE_RATE, np.float32)) is None  # no_speech 0.97
    upstream.script = [_json({"text": "  "})]
    assert remote.transcribe(np.zeros(SAMPLE_RATE, np.float32)) is None


def test_an_endpoint_without_verbose_json_is_asked_for_json_from_then_on(
    settings: Settings, upstream: Upstream
) -> None:
    refusal = {"error": {"message": "response_format 'verbose_json' is not compatible"}}
    upstream.script = [
        _json(refusal, 400),
        _json({"text": "今天天气很好。"}),
        _json({"text": "Hi."}),
    ]
    remote = RemoteSTT.from_settings(settings)
    first = remote.transcribe(np.zeros(SAMPLE_RATE, np.float32))
    second = remote.transcribe(np.zeros(SAMPLE_RATE, np.float32))
    assert first is not None and first.language == "zh"  # told by the Han characters
    assert second is not None and (second.text, second.language) == ("Hi.", "en")
    formats = [got.form["response_format"] for got in upstream.received]
    assert formats == ["verbose_json", "json", "json"]


def test_a_refused_key_says_so_with_the_key_masked(settings: Settings, upstream: Upstream) -> None:
    message = f"Incorrect API key provided: {KEY}."
    upstream.script = [_json({"error": {"message": message}}, 401)]
    with pytest.raises(ModelError) as caught:
        RemoteSTT.from_settings(settings).transcribe(np.zeros(SAMPLE_RATE, np.float32))
    text = caught.value.message
    assert text.startswith("the speech-to-text upstream 'corp' answered 401: Incorrect API key")
    assert "check providers.corp.api_key" in text
    assert KEY not in text and mask(KEY) in text and caught.value.status == 502
    assert len(upstream.received) == 1  # a 401 is not retried


def test_a_5xx_is_retried_then_reported(settings: Settings, upstream: Upstream) -> None:
    upstream.script = [_json({"error": {"message": "overloaded"}}, 503), _json({"text": "Yes."})]
    transcript = RemoteSTT.from_settings(settings).transcribe(np.zeros(8000, np.float32))
    assert transcript is not None and transcript.text == "Yes." and len(upstream.received) == 2

    upstream.received.clear()
    upstream.script = [_json({"error": {"message": "overloaded"}}, 503)] * 2
    with pytest.raises(ModelError, match=r"'corp' answered 503: overloaded"):
        RemoteSTT.from_settings(settings).transcribe(np.zeros(8000, np.float32))
    assert len(upstream.received) == 2  # max_retries = 1


def test_a_silent_upstream_times_out(tmp_path: Path, upstream: Upstream) -> None:
    slow = settings_for(tmp_path, f"http://127.0.0.1:{upstream.port}/v1", timeout=0.2)
    upstream.script = [(0, {}, b"")]
    started = time.perf_counter()
    with pytest.raises(
        ModelTimeout, match=r"speech-to-text upstream 'corp' sent nothing for 0.2 s"
    ):
        RemoteSTT.from_settings(slow).transcribe(np.zeros(8000, np.float32))
    assert time.perf_counter() - started < 0.55 and len(upstream.received) == 1


@pytest.mark.parametrize(
    ("status", "headers", "body", "says"),
    [
        (200, {"Content-Type": "text/html"}, b"<html>gateway</html>", "not JSON"),
        (200, {}, b'{"transcript": "hi"}', "JSON without a text"),
        (200, {}, b'["hi"]', "JSON without a text"),
    ],
)
def test_a_garbled_transcription_is_refused(
    settings: Settings,
    upstream: Upstream,
    status: int,
    headers: dict[str, str],
    body: bytes,
    says: str,
) -> None:
    upstream.script = [(status, headers, body)]
    with pytest.raises(ModelError, match=f"speech-to-text upstream 'corp' answered .*{says}"):
        RemoteSTT.from_settings(settings).transcribe(np.zeros(8000, np.float32))


# --- text to speech ---------------------------------------------------------------------------


def test_speech_comes_back_as_24khz_pcm_that_whisper_understands(
    settings: Settings, upstream: Upstream, stt: WhisperSTT
) -> None:
    speakers = speaker_factory(settings)
    speaker = speakers("en")
    assert isinstance(speaker, RemoteSpeaker) and speakers("zh") is speaker
    chunks = list(speaker.speak("What is two plus three?"))
    assert speaker.sample_rate == OPENAI_PCM_RATE and len(chunks) > 1
    assert all(len(chunk) <= 8192 and len(chunk) % 2 == 0 for chunk in chunks)
    samples = np.frombuffer(b"".join(chunks), "<i2").astype(np.float32) / 32768
    heard = stt.transcribe(resample(samples, OPENAI_PCM_RATE, SAMPLE_RATE))
    assert heard is not None and _heard(heard.text), heard

    [got] = upstream.received
    assert (got.path, got.authorization) == ("/v1/audio/speech", f"Bearer {KEY}")
    assert got.content_type == "application/json"
    assert got.body == {
        "model": "tts-1",
        "input": "What is two plus three?",
        "voice": "nova",
        "response_format": "pcm",
    }
    assert list(speaker.speak("  ")) == [] and len(upstream.received) == 1


def test_a_wav_answer_is_read_at_its_own_rate(settings: Settings, upstream: Upstream) -> None:
    samples, rate = _espeak("Hello.")
    upstream.script = [(200, {"Content-Type": "audio/wav"}, wav_bytes(to_pcm16(samples), rate))]
    speaker = RemoteSpeaker.from_settings(settings)
    pcm = b"".join(speaker.speak("Hello."))
    assert speaker.sample_rate == rate == 22_050
    got = np.frombuffer(pcm, "<i2").astype(np.int32)
    sent = np.frombuffer(to_pcm16(samples), "<i2").astype(np.int32)
    assert got.size == sent.size and np.abs(got - sent).max() <= 1  # 1/32768 vs 1/32767


def test_an_endpoint_without_pcm_is_asked_for_wav_from_then_on(
    settings: Settings, upstream: Upstream
) -> None:
    upstream.script = [_json({"error": {"message": "response_format 'pcm' is not supported"}}, 400)]
    speaker = RemoteSpeaker.from_settings(settings)
    assert b"".join(speaker.speak("One.")) and b"".join(speaker.speak("Two."))
    assert speaker.sample_rate == 22_050  # espeak-ng's WAV
    formats = [got.body["response_format"] for got in upstream.received]
    assert formats == ["pcm", "wav", "wav"]


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ((200, {"Content-Type": "application/json"}, b'{"ok": true}'), "application/json"),
        ((200, {"Content-Type": "audio/pcm"}, b"\x01\x02\x03"), "3 bytes: not 16-bit PCM"),
        ((200, {"Content-Type": "audio/pcm"}, b""), "nothing"),
        ((200, {"Content-Type": "audio/wav"}, b"RIFF\x00\x00\x00\x00WAVEjunk"), "broken WAV"),
        ((500, {"Content-Type": "text/plain"}, b"boom"), "500: boom"),
        ((403, {}, b'{"error": {"message": "no access to tts-1"}}'), "403: no access to tts-1"),
    ],
)
def test_bad_speech_answers_are_clear_errors(
    settings: Settings, upstream: Upstream, answer: tuple[int, dict[str, str], bytes], says: str
) -> None:
    upstream.script = [answer, answer]
    speaker = RemoteSpeaker.from_settings(settings)
    with pytest.raises(ModelError, match=f"text-to-speech upstream 'corp' answered (.* )?{says}"):
        list(speaker.speak("Hello."))


def test_a_silent_speech_upstream_times_out(tmp_path: Path, upstream: Upstream) -> None:
    slow = settings_for(tmp_path, f"http://127.0.0.1:{upstream.port}/v1", timeout=0.2)
    upstream.script = [(0, {}, b"")]
    with pytest.raises(ModelTimeout, match=r"text-to-speech upstream 'corp' sent nothing"):
        list(RemoteSpeaker.from_settings(slow).speak("Hello."))


# --- configuration and the network guard ------------------------------------------------------


def test_local_engines_are_the_processs_whisper_and_speakers(
    tmp_path: Path, voice_cache: Path
) -> None:
    from graft.voice.models import load_speaker

    (tmp_path / "cache").symlink_to(voice_cache)
    local = load_settings(home=tmp_path)
    assert local.voice.stt == local.voice.tts == "local"
    whisper = stt_for(local)
    assert isinstance(whisper, WhisperSTT) and whisper.short_context
    speakers = speaker_factory(local)
    assert speakers("en") is load_speaker("en", tmp_path / "cache")  # the process's, by cache
    full = load_settings(home=tmp_path, voice={"full_window": True})
    assert not stt_for(full).short_context  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("voice", "providers", "says"),
    [
        ({"stt": "nowhere:whisper-1"}, {}, "provider 'nowhere' has no base_url"),
        ({"stt": "corp:"}, None, "no model after the provider's name"),
        ({"stt": "openai:whisper-1"}, {}, "set the environment variable OPENAI_API_KEY"),
        (
            {"stt": "corp:whisper-1"},
            {"corp": {"base_url": "ftp://speech.example/v1"}},
            "voice.stt 'corp:whisper-1': blocked by the network policy",
        ),
        ({"tts": "nowhere:tts-1"}, {}, "voice.tts 'nowhere:tts-1': provider 'nowhere'"),
    ],
)
def test_an_engine_that_is_not_configured_is_unavailable_at_once(
    tmp_path: Path,
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    voice: dict[str, str],
    providers: dict[str, Any] | None,
    says: str,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    if providers is None:
        configured = settings_for(tmp_path, f"http://127.0.0.1:{upstream.port}/v1", **voice)
    else:
        configured = load_settings(home=tmp_path, providers=providers, voice=voice)
    with pytest.raises(VoiceUnavailable, match=says):
        if "tts" in voice:
            speaker_factory(configured)
        else:
            stt_for(configured)
    assert upstream.received == []


def _resolving_to(address: str) -> tuple[Resolver, list[str]]:
    asked: list[str] = []

    async def resolver(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return [address]

    return resolver, asked


def test_a_name_that_resolves_privately_is_refused_unless_allowed(
    tmp_path: Path, upstream: Upstream
) -> None:
    url = f"http://speech.corp.test:{upstream.port}/v1"
    resolver, asked = _resolving_to("127.0.0.1")
    remote = RemoteSTT.from_settings(settings_for(tmp_path, url), resolver=resolver)
    with pytest.raises(NetworkBlocked, match=r"'speech.corp.test' resolves to 127.0.0.1"):
        remote.transcribe(np.zeros(8000, np.float32))
    speaker = RemoteSpeaker.from_settings(settings_for(tmp_path, url), resolver=resolver)
    with pytest.raises(NetworkBlocked):
        list(speaker.speak("company secret"))
    assert asked == ["speech.corp.test"] * 2 and upstream.received == []  # nothing was sent

    allowed = settings_for(tmp_path, url, allow_hosts=["*.corp.test"])
    upstream.script = [_json({"text": "Fine."})]
    transcript = RemoteSTT.from_settings(allowed, resolver=resolver).transcribe(
        np.zeros(8000, np.float32)
    )
    assert transcript is not None and transcript.text == "Fine."


def test_an_upstream_that_is_down_cannot_be_reached(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = settings_for(tmp_path, f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ModelError, match=r"cannot reach the speech-to-text upstream 'corp'"):
        RemoteSTT.from_settings(down).transcribe(np.zeros(8000, np.float32))
    with pytest.raises(ModelError, match=r"cannot reach the text-to-speech upstream 'corp'"):
        list(RemoteSpeaker.from_settings(down).speak("Hello."))
