"""A fake OpenAI-compatible upstream that fails on demand, served for real on 127.0.0.1.

The fault is chosen per request by the model name the upstream is asked for (graft's model
``fake:status-503`` asks for ``status-503``):

- ``ok`` (or any other name): the answer ``ok from <name>``, streamed as three chunks when
  the request says ``"stream": true``;
- ``status-500``, ``status-502``, ``status-503``: that status with an OpenAI error body;
- ``ratelimit``: 429 with ``Retry-After: 0.2``;
- ``stall``: the response never starts; ``stall-after``: one chunk, then nothing;
- ``cut``: two chunks, then the connection closes mid-body (no ``[DONE]``);
- ``malformed``: one chunk, then an event that is not JSON;
- ``huge``: one chunk, then a 10 MB event (one line).

"Connection refused" needs no mode: point a provider at ``closed_port()``.

It records what it saw, per model name: how many requests (``requests``), and when
(``time.monotonic()``) the client closed each connection it was stalling on (``closed``),
so a test can assert that graft gave up on the upstream request. HTTP/1.1 by hand (one
request per connection, ``Connection: close``, streams chunked) so that a cut body really
is cut.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import Counter, defaultdict
from typing import Any

__all__ = ["FaultUpstream", "closed_port"]

HUGE_BYTES = 10 * 1024 * 1024


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chunk(text: str | None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    event = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "fault",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class FaultUpstream:
    """The server, on its own event loop in a daemon thread (``with FaultUpstream() as up``)."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.closed: defaultdict[str, list[float]] = defaultdict(list)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FaultUpstream:
        self._thread.start()
        start = asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    async def _shutdown(self) -> None:
        """Stop listening; end the connections still open (stalls)."""
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body: dict[str, Any] = json.loads(await reader.readexactly(length))
            name = str(body.get("model", ""))
            self.requests[name] += 1
            await self._answer(name, bool(body.get("stream")), reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(
        self, name: str, stream: bool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if name.startswith("status-") or name == "ratelimit":
            status = 429 if name == "ratelimit" else int(name.removeprefix("status-"))
            error = json.dumps({"error": {"message": f"fault {name}", "type": "server_error"}})
            extra = "Retry-After: 0.2\r\n" if status == 429 else ""
            writer.write(
                f"HTTP/1.1 {status} Fault\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {len(error)}\r\nConnection: close\r\n\r\n{error}".encode()
            )
            await writer.drain()
            return
        if name == "stall":
            await self._wait_closed(name, reader)
            return
        if not stream:
            answer = json.dumps(
                {
                    "id": "chatcmpl-fault",
                    "object": "chat.completion",
                    "created": 1700000000,
                    "model": name,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f"ok from {name}"},
                            "finish_reason": "stop",
                        }
                    ],
                }
            ).encode()
            if name == "huge":
                answer = b'{"x": "' + b"x" * HUGE_BYTES + b'"}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        writer.write(_http_chunk(_chunk("ok ")))
        await writer.drain()
        await asyncio.sleep(0.02)
        if name == "stall-after":
            await self._wait_closed(name, reader)
            return
        if name == "malformed":
            writer.write(_http_chunk(b"data: {not json\n\n"))
        elif name == "huge":
            writer.write(_http_chunk(b"data: " + b"x" * HUGE_BYTES + b"\n\n"))
        else:
            writer.write(_http_chunk(_chunk("from ")))
            if name == "cut":
                await writer.drain()
                return  # the connection closes inside the chunked body
            writer.write(_http_chunk(_chunk(name)))
            writer.write(_http_chunk(_chunk(None, "stop") + b"data: [DONE]\n\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _wait_closed(self, name: str, reader: asyncio.StreamReader) -> None:
        """Send nothing more; record when the client closes the connection (at most 30 s)."""
        try:
            async with asyncio.timeout(30):
                while await reader.read(65536):
                    pass
        except TimeoutError:
            return
        self.closed[name].append(time.monotonic())
