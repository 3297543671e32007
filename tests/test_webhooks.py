"""Webhook delivery against a real HTTP server on 127.0.0.1 that answers from a script."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from graft.errors import NetworkBlocked
from graft.netguard import NetworkPolicy
from graft.webhooks import MAX_RESPONSE_BYTES, deliver, verify_signature


class Receiver:
    """Answers each POST with the next status of ``script`` (the last one repeats)."""

    def __init__(self) -> None:
        self.script: list[tuple[int, bytes]] = [(200, b"")]
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                script = receiver.script
                status, answer = script.pop(0) if len(script) > 1 else script[0]
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "http://169.254.169.254/")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook?token=t0ken"
        self.policy = NetworkPolicy(ports={443, self.port}, allow_hosts=["127.0.0.1"])
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.httpd.shutdown()
    rec.httpd.server_close()


async def test_signed_delivery(receiver: Receiver) -> None:
    payload = {"event": "turn.done", "text": "你好"}
    result = await deliver(receiver.url, payload, policy=receiver.policy, secret="whsec-1")
    assert result.ok and (result.status, result.attempts, result.error) == (200, 1, None)
    [(headers, body)] = receiver.received
    assert json.loads(body) == payload
    assert headers["X-Graft-Event"] == "turn.done"
    assert headers["X-Graft-Delivery"] == result.delivery_id
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Graft-Signature"].startswith("sha256=")
    assert verify_signature(body, "whsec-1", headers["X-Graft-Signature"])
    assert not verify_signature(body, "other", headers["X-Graft-Signature"])
    assert not verify_signature(body + b" ", "whsec-1", headers["X-Graft-Signature"])


async def test_unsigned_delivery_names_its_event(receiver: Receiver) -> None:
    await deliver(receiver.url, {"a": 1}, policy=receiver.policy, event="ping")
    [(headers, _)] = receiver.received
    assert headers["X-Graft-Event"] == "ping" and "X-Graft-Signature" not in headers


async def test_retries_a_500_then_succeeds_with_the_same_delivery_id(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script = [(500, b"boom"), (429, b""), (200, b"")]
    with caplog.at_level(logging.WARNING, logger="graft.webhooks"):
        result = await deliver(
            receiver.url, {}, policy=receiver.policy, secret="whsec-2", backoff=0.001
        )
    assert result.ok and (result.status, result.attempts) == (200, 3)
    assert {h["X-Graft-Delivery"] for h, _ in receiver.received} == {result.delivery_id}
    assert "HTTP 500" in caplog.text
    assert "whsec-2" not in caplog.text and "t0ken" not in caplog.text


@pytest.mark.parametrize("status", [400, 404, 302])
async def test_no_retry_on_a_final_answer(receiver: Receiver, status: int) -> None:
    receiver.script = [(status, b"no such hook")]
    result = await deliver(receiver.url, {}, policy=receiver.policy, backoff=0.001)
    assert not result.ok and (result.status, result.attempts) == (status, 1)
    assert result.error is not None and result.error.startswith(f"HTTP {status}")
    assert len(receiver.received) == 1  # a redirect is not followed
    assert ("not followed" in result.error) == (status == 302)


async def test_gives_up_after_the_attempts(receiver: Receiver) -> None:
    receiver.script = [(503, b"x" * (4 * MAX_RESPONSE_BYTES))]
    result = await deliver(receiver.url, {}, policy=receiver.policy, attempts=4, backoff=0.001)
    assert (result.ok, result.status, result.attempts) == (False, 503, 4)
    assert result.error is not None and len(result.error) < 300
    assert len(receiver.received) == 4


async def test_retries_connection_errors() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = NetworkPolicy(ports={port}, allow_hosts=["127.0.0.1"])
    result = await deliver(f"http://127.0.0.1:{port}/", {}, policy=policy, backoff=0.001)
    assert (result.status, result.attempts) == (None, 3)
    assert result.error is not None and result.error.startswith("ConnectError")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:{port}/", "http://hooks.test:{port}/", "file:///x"]
)
async def test_a_blocked_url_is_refused_without_a_connection(receiver: Receiver, url: str) -> None:
    refused: list[NetworkBlocked] = []

    async def on_blocked(exc: NetworkBlocked) -> None:
        refused.append(exc)

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    policy = NetworkPolicy(ports={receiver.port})
    with pytest.raises(NetworkBlocked):
        await deliver(
            url.format(port=receiver.port),
            {},
            policy=policy,
            on_blocked=on_blocked,
            resolver=resolver,
            backoff=0.001,
        )
    assert receiver.received == []
    assert len(refused) == 1 and refused[0].rule == ("scheme" if "file" in url else "address")
