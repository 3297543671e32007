"""One call of a service operation: the request from the model's arguments, sent with care.

- **The URL** is the server URL plus the path template, each path parameter percent-encoded
  whole (``/`` included). A value that is, or decodes (once or more) to, a ``.``/``..``
  segment is refused, and the URL built is checked to stay under the server's base path:
  no argument can reach ``/admin`` next to ``/api``.
- **Sending** goes through ``graft.netguard.guarded_client`` with the service's own policy
  (the admin's ``allow_hosts``/``allow_ports`` for it), a connect timeout, and a total
  timeout over the whole call, retries and body included. Redirects are not followed.
- **Retries**, with exponential backoff and jitter, only for idempotent methods (GET, HEAD,
  OPTIONS, PUT, DELETE) after a transport error or a 502, 503 or 504; a POST is sent once.
  An OAuth2 token the service refuses (401) is fetched again, once.
- **The answer** is read up to ``max_response_bytes`` after decompression
  (``graft.services.body``) and cut for the model with a note. A status that is not 2xx is
  a ``ToolError`` the model reads: the status and a short excerpt, never a traceback.
- **Secrets** (the service's credentials, its current token) are masked wherever the answer
  echoes them, and never logged: logs name the operation's path template, not the URL.
"""

from __future__ import annotations

import json
import logging
import random
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Final
from urllib.parse import quote, quote_plus, unquote

import anyio
import httpx

from graft.errors import ToolArgumentError, ToolError
from graft.netguard import NetworkPolicy, OnBlocked, Resolver, guarded_client
from graft.secrets import mask, mask_secrets
from graft.services.auth import Credentials
from graft.services.body import ACCEPT_ENCODING, read_decoded, render
from graft.services.manifest import Manifest
from graft.services.operations import Operation, Parameter

__all__ = ["RETRY_STATUSES", "Prepared", "ServiceClient", "prepare"]

log = logging.getLogger(__name__)

RETRY_STATUSES: Final = frozenset({502, 503, 504})
BACKOFF: Final = 0.25
"""Seconds before the first retry; doubled for each further one, with jitter."""
_EXCERPT_CHARS: Final = 300
_SEGMENTS: Final = re.compile(r"[/\\]")
_UNSAFE_HEADER: Final = re.compile(r"[\r\n\x00]")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request built from arguments: URL, query, headers and the JSON body, if any."""

    url: httpx.URL
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def _text(param: Parameter, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ToolArgumentError(f"{param.prop!r} must be a string, a number or a boolean")


def _path_value(param: Parameter, value: Any) -> str:
    items = value if isinstance(value, list) else [value]
    text = ",".join(_text(param, item) for item in items)
    decoded, previous = text, None
    while decoded != previous:  # %252e%252e is .. after two decodings
        previous, decoded = decoded, unquote(decoded)
    if not text or any(seg in (".", "..") for seg in _SEGMENTS.split(decoded)):
        raise ToolArgumentError(
            f"path parameter {param.prop!r} may not be empty, '.' or '..', "
            "nor contain such segments"
        )
    return quote(text, safe="")


def _query_values(param: Parameter, value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [json.dumps(value, ensure_ascii=False, separators=(",", ":"))]
    if isinstance(value, list):
        texts = [_text(param, item) for item in value]
        return texts if param.explode else [",".join(texts)]
    return [_text(param, value)]


def _inside(url: httpx.URL, base: httpx.URL) -> bool:
    root = base.raw_path.split(b"?", 1)[0].rstrip(b"/")
    path = url.raw_path.split(b"?", 1)[0]
    segments = [unquote(s.decode("ascii")) for s in path.split(b"/")]
    return (
        (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
        and (path == root or path.startswith(root + b"/"))
        and not any(s in (".", "..") for s in segments)
    )


def prepare(operation: Operation, arguments: Mapping[str, Any], base_url: str) -> Prepared:
    """The request ``arguments`` (the model's, parsed) make of ``operation``.

    Raises:
        ToolArgumentError: Unknown or missing arguments, or values that cannot be sent.
    """
    known = {p.prop for p in operation.parameters} | {operation.body_prop} - {None}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise ToolArgumentError(f"unknown arguments for {operation.tool.name!r}: {unknown}")
    required = operation.tool.parameters.get("required", [])
    missing = [name for name in required if arguments.get(name) is None]
    if missing:
        raise ToolArgumentError(f"missing arguments for {operation.tool.name!r}: {missing}")
    path = operation.path
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for param in operation.parameters:
        value = arguments.get(param.prop)
        if value is None:
            continue
        if param.location == "path":
            path = path.replace("{" + param.name + "}", _path_value(param, value))
        elif param.location == "query":
            query.extend((param.name, text) for text in _query_values(param, value))
        else:
            text = _text(param, value)
            if _UNSAFE_HEADER.search(text):
                raise ToolArgumentError(f"header {param.prop!r} may not hold line breaks")
            headers[param.name] = text
    base = httpx.URL(base_url)
    url = httpx.URL(base_url.rstrip("/") + path)
    if not _inside(url, base):
        raise ToolArgumentError(f"the arguments lead outside the service's base path {base.path}")
    body = None
    if operation.body_prop is not None and operation.body_prop in arguments:
        body = json.dumps(arguments[operation.body_prop], ensure_ascii=False).encode("utf-8")
    return Prepared(url, query, headers, body)


@dataclass(frozen=True, slots=True)
class _Answer:
    """A response (closed) and what was read of its body."""

    response: httpx.Response
    data: bytes
    complete: bool


class _Retry(Exception):
    """An attempt failed in a way a further attempt may cure; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServiceClient:
    """Calls one service's operations; holds its credentials and their token cache."""

    def __init__(
        self,
        manifest: Manifest,
        base_url: str,
        policy: NetworkPolicy,
        *,
        resolver: Resolver | None = None,
    ) -> None:
        self.manifest = manifest
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.credentials = Credentials(manifest.auth, manifest.name)
        self._resolver = resolver

    @cached_property
    def _ssl(self) -> ssl.SSLContext:
        """One TLS context for every call (making one loads the CA bundle)."""
        return httpx.create_ssl_context(trust_env=False)

    async def call(
        self,
        operation: Operation,
        arguments: Mapping[str, Any],
        *,
        on_blocked: OnBlocked | None = None,
    ) -> str:
        """Run ``operation`` and return the text of its answer for the model.

        Raises:
            ToolArgumentError: The arguments do not make a request.
            ToolError: The service failed, answered an error status, or took too long.
            NetworkBlocked: The network policy refuses the service's address.
        """
        prepared = prepare(operation, arguments, self.base_url)
        limits = self.manifest
        timeout = httpx.Timeout(limits.timeout, connect=limits.connect_timeout)
        try:
            with anyio.fail_after(limits.timeout):
                async with guarded_client(
                    self.policy,
                    on_blocked=on_blocked,
                    resolver=self._resolver,
                    timeout=timeout,
                    verify=self._ssl,
                ) as client:
                    return await self._send(client, operation, prepared)
        except TimeoutError:
            raise ToolError(
                f"service {limits.name!r} did not answer within {limits.timeout:g} s"
            ) from None

    async def _send(
        self, client: httpx.AsyncClient, operation: Operation, prepared: Prepared
    ) -> str:
        attempts = 1 + (self.manifest.retries if operation.idempotent else 0)
        refresh, attempt = self.credentials.refreshable, 0
        while True:
            attempt += 1
            try:
                answer = await self._attempt(
                    client, operation, prepared, last=attempt >= attempts, refresh=refresh
                )
            except _Retry as retry:
                if retry.reason == "HTTP 401":  # the token was refused: a new one, once
                    self.credentials.invalidate()
                    refresh, attempt = False, attempt - 1
                    continue
                log.warning(
                    "service %s: %s %s, attempt %d of %d: %s",
                    self.manifest.name,
                    operation.method,
                    operation.path,
                    attempt,
                    attempts,
                    retry.reason,
                )
                if attempt >= attempts:
                    raise ToolError(
                        f"service {self.manifest.name!r} could not be reached ({retry.reason})"
                    ) from None
                await anyio.sleep(BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
                continue
            return self._result(answer)

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        operation: Operation,
        prepared: Prepared,
        *,
        last: bool,
        refresh: bool,
    ) -> _Answer:
        headers = {
            "Accept": "application/json, */*;q=0.5",
            "Accept-Encoding": ACCEPT_ENCODING,
            "User-Agent": "graft-services",
            **prepared.headers,
        }
        if prepared.body is not None:
            headers["Content-Type"] = "application/json"
        query = list(prepared.query)
        await self.credentials.apply(client, headers, query)
        request = client.build_request(
            operation.method,
            prepared.url,
            params=tuple(query),
            headers=headers,
            content=prepared.body,
        )
        try:
            response = await client.send(request, stream=True)
            try:
                if response.status_code == 401 and refresh:
                    raise _Retry("HTTP 401")
                if response.status_code in RETRY_STATUSES and not last:
                    raise _Retry(f"HTTP {response.status_code}")
                data, complete = await read_decoded(response, self.manifest.max_response_bytes)
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise _Retry(type(exc).__name__) from None
        return _Answer(response, data, complete)

    def _masked(self, text: str) -> str:
        for secret in self.credentials.secrets():
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, mask(secret))
        return text

    def _result(self, answer: _Answer) -> str:
        status, reason = answer.response.status_code, answer.response.reason_phrase
        success = 200 <= status < 300
        text = render(
            answer.data,
            complete=answer.complete,
            content_type=answer.response.headers.get("content-type", ""),
            charset=answer.response.charset_encoding,
            limit=self.manifest.max_response_bytes,
            max_chars=self.manifest.max_result_chars if success else _EXCERPT_CHARS,
        )
        text = self._masked(text)
        name = self.manifest.name
        if success:
            return text if answer.data else f"HTTP {status} {reason} (no content)"
        if 300 <= status < 400:
            raise ToolError(
                f"service {name!r} answered HTTP {status}, a redirect graft does not follow"
            )
        detail = f": {mask_secrets(text)}" if answer.data else ""
        raise ToolError(f"service {name!r} answered HTTP {status} {reason}{detail}")
