"""Webhook delivery: one JSON POST to a URL someone configured, through the network guard.

A webhook URL is typed in by a user or a plugin, so it is the textbook SSRF vector: every
delivery goes through ``graft.netguard.guarded_client`` and never follows a redirect (a
redirect would let a public host bounce the POST inward). A refused URL raises
``NetworkBlocked`` before any connection is opened, and is not retried.

What the receiver gets:

- ``X-Graft-Event``: the event name; ``X-Graft-Delivery``: an id that stays the same across
  retries, so the receiver can drop duplicates;
- with a secret, ``X-Graft-Signature: sha256=<hex>``, the HMAC-SHA256 of the exact body
  bytes; ``verify_signature`` is the receiver's side.

A delivery is retried, with exponential backoff and jitter, on connection errors, timeouts,
429 and 5xx only: any other answer is final. Only the first ``MAX_RESPONSE_BYTES`` of an
answer are read. The secret is never logged, nor put in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx

from graft.errors import NetworkBlocked
from graft.netguard import NetworkPolicy, OnBlocked, Resolver, check_url, guarded_client

__all__ = ["MAX_RESPONSE_BYTES", "DeliveryResult", "deliver", "sign", "verify_signature"]

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES: Final = 64 * 1024
"""How much of a receiver's answer is read; the rest is dropped with the connection."""
_EXCERPT_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How a delivery ended: the last status (``None`` if none came), attempts, the error."""

    delivery_id: str
    status: int | None
    attempts: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.error is None


def sign(body: bytes, secret: str) -> str:
    """The ``X-Graft-Signature`` value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    return hmac.compare_digest(sign(body, secret), header)


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


async def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= MAX_RESPONSE_BYTES:
            break
    return bytes(body[:MAX_RESPONSE_BYTES])


async def deliver(
    url: str,
    payload: Mapping[str, Any],
    *,
    policy: NetworkPolicy,
    secret: str | None = None,
    event: str | None = None,
    timeout: float = 5,  # noqa: ASYNC109 (per attempt, handed to httpx)
    attempts: int = 3,
    backoff: float = 0.5,
    on_blocked: OnBlocked | None = None,
    resolver: Resolver | None = None,
) -> DeliveryResult:
    """POST ``payload`` as JSON to ``url``, retrying transient failures.

    Args:
        url: The receiver; checked against ``policy`` before anything is sent.
        payload: The JSON body.
        policy: The network policy (``settings.network.policy()``, or a service's own).
        secret: Signs the body (``X-Graft-Signature``) when set.
        event: ``X-Graft-Event``; defaults to ``payload["event"]``, else ``"event"``.
        timeout: Seconds per attempt, for connecting and for each read.
        attempts: Tries in all, at least one.
        backoff: The first pause between tries; it doubles each time, with jitter.
        on_blocked: Called with the refusal before ``NetworkBlocked`` is raised (audit).
        resolver: Replaces the system's DNS resolver (tests).

    Raises:
        NetworkBlocked: ``policy`` refuses the URL, or an address its host resolves to.
    """
    delivery_id = uuid.uuid4().hex
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "graft-webhooks",
        "X-Graft-Event": event or str(payload.get("event", "event")),
        "X-Graft-Delivery": delivery_id,
    }
    if secret is not None:
        headers["X-Graft-Signature"] = sign(body, secret)
    try:
        target = check_url(url, policy)  # a bad URL is refused before the first attempt
    except NetworkBlocked as exc:
        if on_blocked is not None:
            await on_blocked(exc)
        raise
    where = f"{target.scheme}://{target.host}"  # no path or query: they may hold tokens
    status: int | None = None
    error = "no attempt made"
    async with guarded_client(
        policy, on_blocked=on_blocked, resolver=resolver, timeout=timeout, follow_redirects=False
    ) as client:
        for attempt in range(1, max(attempts, 1) + 1):
            if attempt > 1:
                await anyio.sleep(backoff * 2 ** (attempt - 2) * random.uniform(0.5, 1.5))
            try:
                async with client.stream("POST", target, content=body, headers=headers) as resp:
                    status, answer = resp.status_code, await _read_capped(resp)
            except httpx.TransportError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
                log.warning("webhook %s to %s, attempt %d: %s", delivery_id, where, attempt, error)
                continue
            if resp.is_success:
                return DeliveryResult(delivery_id, status, attempt)
            excerpt = answer.decode("utf-8", "replace")[:_EXCERPT_CHARS]
            error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
            if resp.is_redirect:
                error += " (redirects are not followed)"
            log.warning(
                "webhook %s to %s, attempt %d: HTTP %s", delivery_id, where, attempt, status
            )
            if not _retryable(status):
                return DeliveryResult(delivery_id, status, attempt, error)
    return DeliveryResult(delivery_id, status, max(attempts, 1), error)
