"""Speech through OpenAI-compatible endpoints: ``/audio/transcriptions`` and ``/audio/speech``.

``[voice] stt`` and ``tts`` name an engine as ``provider:model`` (``openai:whisper-1``,
``corp:tts-1``), with the provider's ``base_url`` and key from ``[providers]`` (presets in
``graft.config.PROVIDER_PRESETS``), as chat models and embeddings are named.

- ``RemoteSTT`` posts the utterance as a 16 kHz PCM16 WAV (multipart: ``file``, ``model``,
  ``response_format=verbose_json`` for the detected ``language`` and each segment's
  ``no_speech_prob``; ``json`` once an endpoint refuses that, as gpt-4o-transcribe does) and
  returns the same ``Transcript`` as ``WhisperSTT``.
- ``RemoteSpeaker`` posts ``{model, input, voice, response_format: "pcm"}`` and implements
  ``Speaker``: OpenAI's ``pcm`` is 24 kHz PCM16 mono; a WAV answer is read at its own rate,
  and an endpoint that refuses ``pcm`` is asked for ``wav`` from then on.

Both send through graft's network guard (``graft.netguard``), with the policy chat models and
embeddings get (``graft.models.guard.provider_policy``: the ``base_url`` as written, a name
that must resolve publicly unless ``providers.NAME.allow_hosts`` or ``voice.allow_hosts``
allows it): the audio of a call and the key must not follow a DNS answer into the intranet.
A configuration problem (unknown provider, no key, a refused URL) raises ``VoiceUnavailable``
when the engine is made, so a call fails at its start and says why; an answer that is an
error (401, 5xx), a timeout or garbage raises a ``ModelError`` naming the upstream, with
secrets masked. 408/409/429/5xx and connection failures are retried ``max_retries`` times
after a short pause (a caller is waiting: a ``Retry-After`` over two seconds is not waited
for), and no request waits longer than 30 s, whatever the provider's ``timeout``.

The speech protocols are blocking (engines run in worker threads), while the guarded client
is httpx's async one: requests run on one private event loop in a daemon thread, and each
engine keeps its connection pool there between turns.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import httpx

from graft.errors import InvalidRequest, ModelError, ModelTimeout, NetworkBlocked
from graft.models.guard import provider_policy
from graft.models.upstream import error_text, retry_after
from graft.netguard import NetworkPolicy, Resolver, guarded_client
from graft.secrets import mask_secrets, register_secret
from graft.voice import VoiceUnavailable
from graft.voice.audio import SAMPLE_RATE, Float32, read_wav, to_pcm16, wav_bytes
from graft.voice.stt import Transcript
from graft.voice.tts import pcm_chunks

if TYPE_CHECKING:
    from graft.config import Settings

__all__ = ["OPENAI_PCM_RATE", "RemoteSTT", "RemoteSpeaker", "SpeechEndpoint"]

OPENAI_PCM_RATE: Final = 24_000
"""The rate of OpenAI's ``response_format: "pcm"`` (16-bit little-endian mono)."""
_LONGEST_WAIT: Final = 30.0
_LONGEST_RETRY_AFTER: Final = 2.0
_RETRY_STATUSES: Final = frozenset({408, 409, 429})
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

# verbose_json names the language (Whisper's names); graft's speakers take the codes.
_WHISPER_NAMES: Final = """english:en chinese:zh german:de spanish:es russian:ru korean:ko french:fr
    japanese:ja portuguese:pt turkish:tr polish:pl catalan:ca dutch:nl arabic:ar swedish:sv
    italian:it indonesian:id hindi:hi finnish:fi vietnamese:vi hebrew:he ukrainian:uk greek:el
    malay:ms czech:cs romanian:ro danish:da hungarian:hu tamil:ta norwegian:no thai:th urdu:ur
    croatian:hr bulgarian:bg lithuanian:lt latin:la maori:mi malayalam:ml welsh:cy slovak:sk
    telugu:te persian:fa latvian:lv bengali:bn serbian:sr azerbaijani:az slovenian:sl
    kannada:kn estonian:et macedonian:mk breton:br basque:eu icelandic:is armenian:hy
    nepali:ne mongolian:mn bosnian:bs kazakh:kk albanian:sq swahili:sw galician:gl marathi:mr
    punjabi:pa sinhala:si khmer:km shona:sn yoruba:yo somali:so afrikaans:af occitan:oc
    georgian:ka belarusian:be tajik:tg sindhi:sd gujarati:gu amharic:am yiddish:yi lao:lo
    uzbek:uz faroese:fo haitian_creole:ht pashto:ps turkmen:tk nynorsk:nn maltese:mt
    sanskrit:sa luxembourgish:lb myanmar:my tibetan:bo tagalog:tl malagasy:mg assamese:as
    tatar:tt hawaiian:haw lingala:ln hausa:ha bashkir:ba javanese:jw sundanese:su
    cantonese:yue mandarin:zh"""
_WHISPER_LANGUAGES: Final = dict(pair.split(":") for pair in _WHISPER_NAMES.split())

T = TypeVar("T")


# --- the endpoint -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechEndpoint:
    """Where one ``provider:model`` speech engine posts, checked once from the settings."""

    what: str
    """``speech-to-text`` or ``text-to-speech``, for messages."""
    upstream: str
    model: str
    url: str
    policy: NetworkPolicy
    key: str
    timeout: httpx.Timeout
    max_retries: int

    @classmethod
    def from_settings(cls, settings: Settings, field: str, path: str) -> SpeechEndpoint:
        """The endpoint ``settings.voice.<field>`` names, its provider's URL and key.

        Raises:
            VoiceUnavailable: The provider is unknown or has no ``base_url``, its key is
                required and missing, the model is empty, or the network policy refuses the
                URL.
        """
        spec = str(getattr(settings.voice, field))
        upstream, _, model = spec.partition(":")
        what = "speech-to-text" if field == "stt" else "text-to-speech"
        provider = settings.provider(upstream)

        def unavailable(why: str) -> VoiceUnavailable:
            return VoiceUnavailable(f"voice.{field} {spec!r}: {why}")

        if provider is None or not provider.base_url:
            raise unavailable(f"provider {upstream!r} has no base_url (providers.{upstream})")
        if not model:
            raise unavailable("no model after the provider's name")
        key = provider.api_key.get_secret_value() if provider.api_key else ""
        if provider.api_key_env and provider.api_key_required and not key:
            raise unavailable(f"no API key: set the environment variable {provider.api_key_env}")
        url = f"{provider.base_url.rstrip('/')}/{path}"
        try:
            policy = provider_policy(
                settings.network.policy(),
                url,
                allow_hosts=[*provider.allow_hosts, *settings.voice.allow_hosts],
                setting="voice.allow_hosts",
            )
        except NetworkBlocked as exc:
            raise unavailable(exc.message) from None
        except httpx.InvalidURL:
            raise unavailable(f"base_url {provider.base_url!r} is not a URL") from None
        if key:
            register_secret(key)
        timeout = httpx.Timeout(
            min(provider.timeout, _LONGEST_WAIT),
            connect=min(provider.connect_timeout, _LONGEST_WAIT),
        )
        return cls(what, upstream, model, url, policy, key, timeout, provider.max_retries)


# --- requests on a private event loop ---------------------------------------------------------

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on the remote engines' event loop and wait for it (blocking)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_loop.run_forever, name="graft-speech", daemon=True)
            thread.start()
        loop = _loop
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result()


class _Upstream:
    """One endpoint's guarded client: POSTs with retries, and its failures as ``ModelError``."""

    def __init__(
        self,
        endpoint: SpeechEndpoint,
        *,
        resolver: Resolver | None = None,
        retry_delay: float = 0.2,
    ) -> None:
        self.endpoint = endpoint
        self._resolver = resolver
        self._retry_delay = retry_delay
        self._client: httpx.AsyncClient | None = None

    def post(self, **request: Any) -> httpx.Response:
        """POST ``request`` (httpx's ``json``/``data``/``files``): a 2xx or a 4xx answer.

        Raises:
            ModelError: A 5xx (or 408/409/429) answer after the retries, or no connection.
            ModelTimeout: The upstream sent nothing within the timeout.
            NetworkBlocked: The network policy refused the address the name resolved to.
        """
        return _run(self._post(request))

    def close(self) -> None:
        """Close the connection pool; a later request opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            _run(client.aclose())

    async def _post(self, request: dict[str, Any]) -> httpx.Response:
        endpoint = self.endpoint
        if self._client is None:
            headers = {"Authorization": f"Bearer {endpoint.key}"} if endpoint.key else {}
            self._client = guarded_client(
                endpoint.policy, resolver=self._resolver, timeout=endpoint.timeout, headers=headers
            )
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = await self._client.post(endpoint.url, **request)
            except httpx.TimeoutException:
                seconds = endpoint.timeout.read or _LONGEST_WAIT
                raise ModelTimeout(
                    f"the {endpoint.what} upstream {endpoint.upstream!r} sent nothing for "
                    f"{seconds:g} s"
                ) from None
            except httpx.TransportError as exc:
                why = mask_secrets(str(exc)) or type(exc).__name__
                error = ModelError(
                    f"cannot reach the {endpoint.what} upstream {endpoint.upstream!r}: {why}"
                )
            else:
                status = response.status_code
                if status < 500 and status not in _RETRY_STATUSES:
                    return response
                error = self.refused(response)
                wait = retry_after(response.headers)
            if attempt >= endpoint.max_retries or (wait or 0.0) > _LONGEST_RETRY_AFTER:
                raise error
            attempt += 1
            await asyncio.sleep(self._retry_delay * 2 ** (attempt - 1) if wait is None else wait)

    def refused(self, response: httpx.Response) -> ModelError:
        """The error for an answer that is not a success."""
        endpoint = self.endpoint
        hint = ""
        if response.status_code in (401, 403):
            hint = f" (check providers.{endpoint.upstream}.api_key or its api_key_env)"
        return ModelError(
            f"the {endpoint.what} upstream {endpoint.upstream!r} answered "
            f"{response.status_code}: {error_text(response.content, endpoint.key)}{hint}"
        )

    def invalid(self, what: str) -> ModelError:
        """The error for a success answer that makes no sense."""
        endpoint = self.endpoint
        return ModelError(f"the {endpoint.what} upstream {endpoint.upstream!r} answered {what}")


# --- speech to text ---------------------------------------------------------------------------


class RemoteSTT:
    """An OpenAI-compatible ``/audio/transcriptions`` endpoint, as an ``STT``."""

    def __init__(
        self,
        endpoint: SpeechEndpoint,
        *,
        no_speech_threshold: float = 0.6,
        resolver: Resolver | None = None,
        retry_delay: float = 0.2,
    ) -> None:
        self.endpoint = endpoint
        self.no_speech_threshold = no_speech_threshold
        self.response_format = "verbose_json"
        self._upstream = _Upstream(endpoint, resolver=resolver, retry_delay=retry_delay)

    @classmethod
    def from_settings(cls, settings: Settings, *, resolver: Resolver | None = None) -> RemoteSTT:
        """The endpoint ``settings.voice.stt`` names (``VoiceUnavailable`` if it cannot be)."""
        endpoint = SpeechEndpoint.from_settings(settings, "stt", "audio/transcriptions")
        return cls(endpoint, resolver=resolver)

    def transcribe(self, audio: Float32, language: str | None = None) -> Transcript | None:
        """Send one utterance (16 kHz mono float32); ``None`` when nothing was said."""
        started = time.perf_counter()
        wav = wav_bytes(to_pcm16(audio), SAMPLE_RATE)
        while True:
            form = {"model": self.endpoint.model, "response_format": self.response_format}
            if language is not None:
                form["language"] = language
            response = self._upstream.post(
                data=form, files={"file": ("utterance.wav", wav, "audio/wav")}
            )
            if response.is_success:
                break
            if response.status_code in (400, 422) and self.response_format == "verbose_json":
                self.response_format = "json"  # this endpoint only says the text
                continue
            raise self._upstream.refused(response)
        return self._transcript(response, language, time.perf_counter() - started)

    def close(self) -> None:
        """Close the connection pool."""
        self._upstream.close()

    def _transcript(
        self, response: httpx.Response, language: str | None, seconds: float
    ) -> Transcript | None:
        try:
            data = response.json()
        except ValueError:
            raise self._upstream.invalid("an answer that is not JSON") from None
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise self._upstream.invalid("JSON without a text")
        text = text.strip()
        code = _language_code(data.get("language")) or language
        code = code or ("zh" if _HAN.search(text) else "en")
        segments = data.get("segments")
        no_speech = 0.0
        if isinstance(segments, list):
            probabilities = [
                float(s["no_speech_prob"])
                for s in segments
                if isinstance(s, dict) and isinstance(s.get("no_speech_prob"), int | float)
            ]
            no_speech = min(probabilities, default=0.0)
        if not text or no_speech > self.no_speech_threshold:
            return None
        return Transcript(text, code, no_speech, seconds)


def _language_code(named: Any) -> str | None:
    """``english`` → ``en``: verbose_json's language as graft's code (a code stays itself)."""
    if not isinstance(named, str) or not named.strip():
        return None
    name = named.strip().lower()
    return _WHISPER_LANGUAGES.get(name.replace(" ", "_"), name)


# --- text to speech ---------------------------------------------------------------------------


class RemoteSpeaker:
    """An OpenAI-compatible ``/audio/speech`` endpoint, as a ``Speaker`` (any language)."""

    def __init__(
        self,
        endpoint: SpeechEndpoint,
        *,
        voice: str = "alloy",
        resolver: Resolver | None = None,
        retry_delay: float = 0.2,
    ) -> None:
        self.endpoint = endpoint
        self.voice = voice
        self.response_format = "pcm"
        self.sample_rate = OPENAI_PCM_RATE
        self._upstream = _Upstream(endpoint, resolver=resolver, retry_delay=retry_delay)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, resolver: Resolver | None = None
    ) -> RemoteSpeaker:
        """The endpoint ``settings.voice.tts`` names, speaking as ``voice.tts_voice``."""
        endpoint = SpeechEndpoint.from_settings(settings, "tts", "audio/speech")
        return cls(endpoint, voice=settings.voice.tts_voice, resolver=resolver)

    def speak(self, sentence: str) -> Iterator[bytes]:
        """PCM16 chunks of ``sentence`` spoken (fetched whole, then cut into chunks)."""
        if not sentence.strip():
            return
        while True:
            body = {
                "model": self.endpoint.model,
                "input": sentence,
                "voice": self.voice,
                "response_format": self.response_format,
            }
            response = self._upstream.post(json=body)
            if response.is_success:
                break
            if response.status_code in (400, 422) and self.response_format == "pcm":
                self.response_format = "wav"  # this endpoint cannot send raw PCM
                continue
            raise self._upstream.refused(response)
        pcm, self.sample_rate = self._audio(response)
        yield from pcm_chunks(pcm)

    def close(self) -> None:
        """Close the connection pool."""
        self._upstream.close()

    def _audio(self, response: httpx.Response) -> tuple[bytes, int]:
        """The answer's PCM16 and its rate: a WAV file, or OpenAI's raw 24 kHz ``pcm``."""
        content = response.content
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content[:4] == b"RIFF" and content[8:12] == b"WAVE":
            try:
                samples, rate = read_wav(content)
            except InvalidRequest as exc:
                raise self._upstream.invalid(f"a broken WAV file ({exc.message})") from None
            return to_pcm16(samples), rate
        if not content:
            raise self._upstream.invalid("nothing: no audio")
        if kind.startswith(("application/json", "text/")):
            raise self._upstream.invalid(f"{kind} ({len(content)} bytes), not audio")
        if self.response_format == "wav":
            raise self._upstream.invalid(f"{kind or 'audio'} that is not a WAV file")
        if len(content) % 2:
            raise self._upstream.invalid(f"{len(content)} bytes: not 16-bit PCM")
        return content, OPENAI_PCM_RATE
