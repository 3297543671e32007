"""A real OTLP/HTTP receiver on 127.0.0.1, and a live graft server that traces into it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from graft import telemetry


@dataclass
class Receiver:
    """What the receiver was sent: (path, content type, body) per POST."""

    url: str
    posts: list[tuple[str, str, bytes]] = field(default_factory=list)


@pytest.fixture
def otlp_receiver() -> Iterator[Receiver]:
    received: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append((self.path, self.headers.get("content-type", ""), body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def traced(
    graft_factory: Any, live_server: Any, otlp_receiver: Receiver
) -> Iterator[Callable[..., tuple[str, InMemorySpanExporter]]]:
    """Start a live server for ``model`` with OTLP tracing on; spans are also kept in memory."""

    def start(model: Any, **overrides: Any) -> tuple[str, InMemorySpanExporter]:
        endpoint = f"{otlp_receiver.url}/v1/traces"
        graft = graft_factory(
            model, telemetry={"traces": "otlp", "otlp_endpoint": endpoint}, **overrides
        )
        server = live_server(graft)  # create_app sets tracing up from the settings
        spans = InMemorySpanExporter()
        telemetry.add_exporter(spans)
        return server.url, spans

    yield start
    telemetry.shutdown_tracing()
