"""The provider for any OpenAI-compatible chat endpoint, behind the ``Model`` protocol.

OpenAI, DeepSeek, Qwen through DashScope's compatible mode, vLLM, Ollama: anything that answers
``POST {base_url}/chat/completions``.

It speaks HTTP through one ``aiohttp.ClientSession`` per model (a keep-alive pool of up to 256
connections) rather than the openai SDK, because this is graft's hot path: a streamed answer
passes through here chunk by chunk, so the stream is parsed lean (bytes split into lines as
they arrive, one JSON parse per event, one object per read of the body: the text of
events that arrived together goes on as one piece). JSON is read and written by
pydantic-core (``from_json``, ``to_json``, already graft's through pydantic), three to seven
times faster than the standard library's ``json`` on these bodies.

aiohttp rather than httpx for what the client costs, measured on 2 cores against
``bench/fake_upstream.py`` (this provider alone, plain asyncio): with httpx 0.28 a request took
0.61 ms of CPU at 1 in flight and 4.8 ms at 50 (httpcore polls every pooled connection for each
queued request), with aiohttp 3.14 0.12-0.15 ms and 0.10 ms; each further chunk of a stream
took 13 µs with httpx, 5 µs now.

Failures are retried, with exponential backoff and jitter (or the upstream's ``Retry-After``),
only until a successful response starts: connection errors, timeouts and 408/409/429/5xx
answers. Once the body has started nothing is retried, so the caller never sees text twice;
a broken stream raises ``ModelError`` and a silent one ``ModelTimeout``. Error messages name
the provider and the upstream status and text, with the API key and anything else shaped like
a credential masked (``sk-…abcd``, ``graft.secrets``): an upstream may echo the key or the
``Authorization`` header in its error, and the message goes on to the client and the log.

The environment is read once per session, as httpx did: ``HTTPS_PROXY``/``HTTP_PROXY``/
``ALL_PROXY`` with ``NO_PROXY``, and for TLS httpx's trust store (certifi, or ``SSL_CERT_FILE``
/ ``SSL_CERT_DIR``). aiohttp's own ``trust_env`` stays off: it would look the proxy up in a
thread and parse ``~/.netrc`` on every request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import aiohttp
import httpx
from pydantic_core import from_json, to_json
from yarl import URL

from graft.config import ProviderSettings, split_model_id
from graft.errors import ModelError, ModelTimeout, ModelUnavailable, NetworkBlocked
from graft.messages import ToolCall, Usage, new_id
from graft.models.base import (
    FinishChunk,
    ModelChunk,
    ModelRequest,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from graft.models.guard import GuardedResolver, provider_policy
from graft.models.upstream import error_text
from graft.models.upstream import retry_after as upstream_retry_after
from graft.netguard import NetworkPolicy, Resolver
from graft.secrets import mask_secrets, register_secret

__all__ = ["OpenAIModel"]

logger = logging.getLogger(__name__)

_Reason = Literal["stop", "length", "tool_calls"]
_REASONS: Final[dict[str, _Reason]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}
_RETRY_STATUSES: Final = frozenset({408, 409, 429})
_KEEPALIVE_SECONDS: Final = 60.0
_STREAM_HEADERS: Final = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
_MAX_EVENT_BYTES: Final = 4 * 1024 * 1024
"""The longest stream event (line) read; a longer one is an upstream error, not a buffer."""
_MAX_BODY_BYTES: Final = 8 * 1024 * 1024
"""The largest non-streamed answer read."""
_SHAPE_ERRORS: Final = (AttributeError, TypeError, KeyError, IndexError, ValueError)
"""What reading an upstream JSON object of the wrong shape raises."""
_DRAIN_SECONDS: Final = 1.0
"""After ``[DONE]``, how long to wait for the body's end so the connection can be reused."""


class OpenAIModel:
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    ``model_id`` is the full ``provider:name`` id; ``name`` is what the upstream is asked
    for. The HTTP client is created on first use and closed by ``aclose()``; an instance
    belongs to the event loop that first used it. ``retry_base_delay`` is the first backoff
    (doubled per retry, with jitter; the provider's ``retry_delay`` by default);
    ``retry_max_delay`` caps both the backoff and the upstream's ``Retry-After``. ``network``
    is the installation's policy for outbound calls (``[network]``), which every connection
    obeys (``graft.models.guard``); ``resolver`` replaces the system's DNS lookup (tests).
    """

    def __init__(
        self,
        model_id: str,
        provider: ProviderSettings,
        *,
        network: NetworkPolicy | None = None,
        resolver: Resolver | None = None,
        retry_base_delay: float | None = None,
        retry_max_delay: float = 20.0,
    ) -> None:
        self.id = model_id
        self.upstream, self.name = split_model_id(model_id)
        self.provider = provider
        self._retry_base_delay = (
            provider.retry_delay if retry_base_delay is None else retry_base_delay
        )
        self._retry_max_delay = retry_max_delay
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        self._key = provider.api_key.get_secret_value() if provider.api_key else ""
        if self._key:
            register_secret(self._key)
        base_url = (provider.base_url or "").rstrip("/")
        try:
            self._url = URL(f"{base_url}/chat/completions")
        except ValueError:
            self._url = URL()
        self._unavailable = _config_problem(self.upstream, provider, base_url, self._url, self._key)
        self._network = network if network is not None else NetworkPolicy()
        self._resolver = resolver
        self._blocked: str | None = None
        if self._unavailable is None:
            try:
                self._policy(proxy=None)
            except NetworkBlocked as exc:
                self._blocked = exc.message

    @property
    def unavailable(self) -> str | None:
        """Why this model cannot be called (no base URL, no key, a refused address), or None."""
        return self._unavailable or self._blocked

    def _policy(self, proxy: str | None) -> NetworkPolicy:
        """The network policy of this provider's calls; ``NetworkBlocked`` if its URL is refused."""
        return provider_policy(
            self._network,
            str(self._url),
            allow_hosts=self.provider.allow_hosts,
            setting=f"providers.{self.upstream}.allow_hosts",
            proxy=proxy,
        )

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Run one call, yielding chunks as they arrive (see the module docstring)."""
        return self._stream_events(request) if request.stream else self._complete(request)

    async def aclose(self) -> None:
        """Close the connection pool; a later call opens a new one."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _stream_events(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        response = await self._open(self._body(request, stream=True), stream=True)
        parser = _ResponseParser(self.upstream)
        try:
            with self._transport_errors():
                async with aclosing(_sse_batches(response.content, self.upstream)) as batches:
                    async for batch in batches:
                        for chunk in parser.feed_batch(batch):
                            yield chunk
                        if parser.done:
                            await _drain(response.content)
                            break
            if not parser.done and parser.reason is None:
                raise ModelError(
                    f"upstream {self.upstream!r} stream ended early, without a finish reason"
                )
            for chunk in parser.final_chunks():
                yield chunk
        finally:
            # Back to the pool if the body was read to its end, closed otherwise.
            response.release()

    async def _complete(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        response = await self._open(self._body(request, stream=False), stream=False)
        try:
            with self._transport_errors():
                raw = await _read_bounded(response, self.upstream)
        finally:
            response.release()
        try:
            data = from_json(raw)
        except ValueError as exc:
            raise ModelError(f"upstream {self.upstream!r} answered invalid JSON: {exc}") from None
        parser = _ResponseParser(self.upstream)
        text = parser.feed_whole(data)
        if text:
            yield TextChunk(text)
        for chunk in parser.final_chunks():
            yield chunk

    def _body(self, request: ModelRequest, *, stream: bool) -> bytes:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [message.to_openai() for message in request.messages],
        }
        if request.tools:
            body["tools"] = [tool.to_openai() for tool in request.tools]
            choice = request.tool_choice
            body["tool_choice"] = (
                choice
                if choice in ("auto", "none", "required")
                else {"type": "function", "function": {"name": choice}}
            )
        for key, value in (
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            ("max_tokens", request.max_tokens),
            ("stop", request.stop or None),
            ("seed", request.seed),
        ):
            if value is not None:
                body[key] = value
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return to_json(body)

    async def _open(self, body: bytes, *, stream: bool) -> aiohttp.ClientResponse:
        """Send the request until a 2xx response starts, retrying what is worth retrying."""
        if self._unavailable is not None:
            raise ModelUnavailable(self._unavailable)
        session = self._session or self._new_session()
        headers = _STREAM_HEADERS if stream else None
        attempt = 0
        while True:
            retry_after: float | None = None
            cause: Exception | None = None
            try:
                response = await session.post(
                    self._url,
                    data=body,
                    headers=headers,
                    proxy=self._proxy,
                    allow_redirects=False,
                )
            except TimeoutError as exc:
                error: ModelError = ModelTimeout(self._timeout_text(exc))
                cause = exc
            except aiohttp.ClientError as exc:
                error = ModelError(
                    f"request to upstream {self.upstream!r} failed: {_describe(exc)}"
                )
                cause = exc
            else:
                status = response.status
                if 200 <= status < 300:
                    return response
                error = await self._status_error(response)
                if status < 500 and status not in _RETRY_STATUSES:
                    raise error
                retry_after = upstream_retry_after(response.headers)
            if attempt >= self.provider.max_retries:
                raise error from cause
            attempt += 1
            delay = self._delay(attempt, retry_after)
            logger.warning(
                "%s; retry %d of %d in %.2f s",
                error.message,
                attempt,
                self.provider.max_retries,
                delay,
            )
            await asyncio.sleep(delay)

    def _new_session(self) -> aiohttp.ClientSession:
        """The connection pool, made on first use inside the running event loop."""
        provider = self.provider
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._proxy = _env_proxy(self.upstream, self._url)
        resolver = GuardedResolver(
            self._policy(self._proxy),
            resolver=self._resolver,
            setting=f"providers.{self.upstream}.allow_hosts",
        )
        connector = aiohttp.TCPConnector(
            resolver=resolver,
            limit=provider.max_connections,
            keepalive_timeout=_KEEPALIVE_SECONDS,
            ssl=_tls_context() if self._url.scheme == "https" else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=headers,
            # connect: opening a connection or waiting for a free one; sock_read: any silence
            # from the upstream, before the response starts and between body reads.
            timeout=aiohttp.ClientTimeout(
                total=None, connect=provider.connect_timeout, sock_read=provider.timeout
            ),
            trust_env=False,
            # One session serves every user: a cookie one upstream answer sets must not go
            # out with the next user's request.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        return self._session

    async def _status_error(self, response: aiohttp.ClientResponse) -> ModelError:
        """Read an error response's text (the OpenAI error shape when present) and release it."""
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError):
            raw = b""
        finally:
            response.release()
        message = f"upstream {self.upstream!r} answered {response.status}"
        text = error_text(raw, self._key)
        error = ModelError(f"{message}: {text}" if text else message)
        error.upstream_status = response.status
        return error

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._retry_max_delay)
        ceiling = min(self._retry_max_delay, self._retry_base_delay * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + random.random() / 2)

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        """Turn aiohttp failures after the response started into graft errors (no retry)."""
        try:
            yield
        except TimeoutError as exc:
            raise ModelTimeout(self._timeout_text(exc)) from exc
        except aiohttp.ClientError as exc:
            raise ModelError(
                f"upstream {self.upstream!r} broke off the answer: {_describe(exc)}"
            ) from exc

    def _timeout_text(self, exc: TimeoutError) -> str:
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return (
                f"could not connect to upstream {self.upstream!r} within "
                f"{self.provider.connect_timeout:g} s (or all {self.provider.max_connections} "
                f"connections were busy)"
            )
        return f"upstream {self.upstream!r} sent nothing for {self.provider.timeout:g} s"


def _config_problem(
    name: str, provider: ProviderSettings, base_url: str, url: URL, key: str
) -> str | None:
    """Why this provider cannot be called, or None; checked once, raised on each call."""
    env_name = f"GRAFT_PROVIDERS__{name.upper()}__BASE_URL"
    if not base_url:
        return f"provider {name!r} has no base_url; set providers.{name}.base_url or {env_name}"
    if url.scheme not in ("http", "https") or not url.host:
        return f"provider {name!r} base_url {base_url!r} is not an http:// or https:// URL"
    if provider.api_key_env and provider.api_key_required and not key:
        return (
            f"provider {name!r} needs an API key: set the environment variable "
            f"{provider.api_key_env}"
        )
    return None


def _env_proxy(name: str, url: URL) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...), if any."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(url.host or ""):
        return None
    if "://" not in proxy:  # "host:port", as httpx reads it
        proxy = f"http://{proxy}"
    try:
        scheme = URL(proxy).scheme
    except ValueError:
        scheme = "an invalid"
    if scheme not in ("http", "https"):
        # The proxy URL may hold a password: name only its scheme.
        raise ModelUnavailable(
            f"provider {name!r}: the environment names a {scheme}:// proxy; "
            "only http:// and https:// proxies are supported"
        )
    return proxy


def _tls_context() -> ssl.SSLContext:
    """The CA certificates httpx trusts: certifi's, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``.

    aiohttp would use the system's store, which some Python builds (python.org's on macOS,
    slim containers) lack.
    """
    return httpx.create_ssl_context()


def _describe(exc: BaseException) -> str:
    """``Type: message`` of a transport error, masked (a URL's password, say)."""
    text = mask_secrets(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _sse_batches(
    content: aiohttp.StreamReader, upstream: str
) -> AsyncGenerator[list[bytes], None]:
    """Yield the data of the server-sent events in a response body, a batch per read.

    Each batch holds the events completed by one read of the body: everything that arrived
    while graft was busy with the previous batch. Lines end in LF or CRLF; ``data:`` lines of
    one event are joined with newlines and the event ends at a blank line (or at the end of
    the stream); comments (``:``) and the other fields (``event:``, ``id:``, ``retry:``) are
    skipped. The body is taken as it arrives (``readany``) and split here: aiohttp's
    ``readline`` takes two buffer reads per event, and measured 7 µs of CPU per chunk against
    5 µs this way.
    """
    readany = content.readany
    buffer = b""
    data: bytes | None = None
    while block := await readany():
        lines = (buffer + block if buffer else block).split(b"\n")
        buffer = lines.pop()
        if len(buffer) > _MAX_EVENT_BYTES:
            raise ModelError(
                f"upstream {upstream!r} sent a stream event over {_MAX_EVENT_BYTES} bytes"
            )
        batch: list[bytes] = []
        for line in lines:
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if data is not None:
                    batch.append(data)
                    data = None
            elif line[:5] == b"data:":
                value = line[6:] if line[5:6] == b" " else line[5:]
                data = value if data is None else data + b"\n" + value
        if batch:
            yield batch
    tail = buffer.rstrip(b"\r")
    if tail[:5] == b"data:":
        value = tail[5:].removeprefix(b" ")
        data = value if data is None else data + b"\n" + value
    if data is not None:
        yield [data]


async def _read_bounded(response: aiohttp.ClientResponse, upstream: str) -> bytes:
    """A non-streamed answer's body, refused (``ModelError``) past ``_MAX_BODY_BYTES``."""
    length = response.content_length
    if length is not None and length > _MAX_BODY_BYTES:
        raise ModelError(
            f"upstream {upstream!r} answered {length} bytes, over the limit of {_MAX_BODY_BYTES}"
        )
    parts: list[bytes] = []
    size = 0
    while block := await response.content.readany():
        size += len(block)
        if size > _MAX_BODY_BYTES:
            raise ModelError(
                f"upstream {upstream!r} answered more than the limit of {_MAX_BODY_BYTES} bytes"
            )
        parts.append(block)
    return b"".join(parts)


async def _drain(content: aiohttp.StreamReader) -> None:
    """Read what follows ``[DONE]`` (the body's end) so the connection goes back to the pool."""
    if content.is_eof():  # usually: the last chunk came with [DONE]
        return
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while await content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError):
        pass


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class _ResponseParser:
    """Collects one answer: tool-call fragments by index, the usage and the finish reason."""

    __slots__ = ("calls", "done", "emitted_calls", "reason", "upstream", "usage")

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: dict[int, _PendingCall] = {}
        self.emitted_calls = 0
        self.usage: Usage | None = None
        self.reason: str | None = None
        self.done = False

    def feed_event(self, data: bytes) -> str | None:
        """Take one stream event; return its text, if any."""
        if data == b"[DONE]":
            self.done = True
            return None
        try:
            event = from_json(data)
        except ValueError as exc:
            raise ModelError(
                f"upstream {self.upstream!r} sent a malformed stream event: {exc}"
            ) from None
        try:
            return self._take_event(event)
        except _SHAPE_ERRORS as exc:
            raise ModelError(
                f"upstream {self.upstream!r} sent a stream event of unexpected shape: {exc!r}"
            ) from None

    def feed_batch(self, batch: list[bytes]) -> Iterator[ModelChunk]:
        """Take the events of one read of the stream; yield what they make, in order.

        Their text goes on as one piece (the client gets every byte as soon as graft has
        it, in fewer chunks); a tool call finished among them comes after the text before
        it. A bad event raises, after the text that came before it.
        """
        texts: list[str] = []
        for data in batch:
            try:
                text = self.feed_event(data)
            except ModelError:
                if texts:
                    yield TextChunk("".join(texts))
                raise
            if text:
                texts.append(text)
            if self.reason is not None and self.calls:
                if texts:
                    yield TextChunk("".join(texts))
                    texts = []
                yield from (ToolCallChunk(call) for call in self.take_calls())
            if self.done:
                break
        if texts:
            yield TextChunk(texts[0] if len(texts) == 1 else "".join(texts))

    def feed_whole(self, data: Any) -> str | None:
        """Take a non-streamed response body; return its text, if any."""
        self.done = True
        try:
            return self._take_whole(data)
        except _SHAPE_ERRORS as exc:
            raise ModelError(
                f"upstream {self.upstream!r} answered with an unexpected shape: {exc!r}"
            ) from None

    def _take_event(self, event: Any) -> str | None:
        if event.get("error"):
            raise ModelError(f"upstream {self.upstream!r} failed mid-answer: {error_text(event)}")
        if usage := event.get("usage"):
            self._take_usage(usage)
        choices = event.get("choices")
        if not choices:
            return None
        choice = choices[0]
        if reason := choice.get("finish_reason"):
            self.reason = reason
        delta = choice.get("delta")
        if not delta:
            return None
        if fragments := delta.get("tool_calls"):
            self._add_fragments(fragments)
        content = delta.get("content")
        return content if isinstance(content, str) else None

    def _take_whole(self, data: Any) -> str | None:
        choice = data["choices"][0]
        message = choice["message"]
        if usage := data.get("usage"):
            self._take_usage(usage)
        self.reason = choice.get("finish_reason") or "stop"
        calls = message.get("tool_calls") or []
        self._add_fragments([{**call, "index": i} for i, call in enumerate(calls)])
        content = message.get("content")
        return content if isinstance(content, str) else None

    def _take_usage(self, usage: Any) -> None:
        self.usage = Usage(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )

    def _add_fragments(self, fragments: list[dict[str, Any]]) -> None:
        for fragment in fragments:
            index = self._index(fragment)
            pending = self.calls.get(index)
            if pending is None:
                pending = self.calls[index] = _PendingCall()
            if not pending.id and (call_id := fragment.get("id")):
                pending.id = call_id
            function = fragment.get("function") or {}
            if not pending.name and (name := function.get("name")):
                pending.name = name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                pending.arguments.append(arguments)
            elif arguments is not None:
                pending.arguments.append(json.dumps(arguments, ensure_ascii=False))

    def _index(self, fragment: dict[str, Any]) -> int:
        index = fragment.get("index")
        if isinstance(index, int):
            return index
        # No index (a few servers): a new id starts a call, anything else continues the last.
        call_id = fragment.get("id")
        for known, pending in self.calls.items():
            if call_id and pending.id == call_id:
                return known
        last = max(self.calls, default=-1)
        return last + 1 if call_id or last < 0 else last

    def take_calls(self) -> list[ToolCall]:
        """Return the assembled tool calls in index order and forget them."""
        calls = [
            ToolCall(
                id=pending.id or new_id("call"),
                name=pending.name,
                arguments="".join(pending.arguments) or "{}",
            )
            for _, pending in sorted(self.calls.items())
        ]
        self.calls.clear()
        self.emitted_calls += len(calls)
        return calls

    def final_chunks(self) -> list[ModelChunk]:
        """The tool calls not yet taken, the usage and the finish, in that order."""
        chunks: list[ModelChunk] = [ToolCallChunk(call) for call in self.take_calls()]
        if self.usage is not None:
            chunks.append(UsageChunk(self.usage))
        reason = _REASONS.get(self.reason or "stop", "stop")
        # Some servers (older Ollama, vLLM parsers) say "stop" after calling tools.
        if reason == "stop" and self.emitted_calls:
            reason = "tool_calls"
        chunks.append(FinishChunk(reason))
        return chunks
