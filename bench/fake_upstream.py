"""A minimal, fast fake OpenAI-compatible upstream for benchmarks (its own process).

    python bench/fake_upstream.py [--port 0] [--chunks 20] [--impl raw|uvicorn]

``POST /v1/chat/completions`` (any path is answered the same way):

- without ``"stream":true`` in the body: one fixed ``chat.completion`` JSON;
- with it: ``--chunks`` content chunks as server-sent events (one per HTTP chunk, each a
  separate write, like a real engine emitting token by token), then a finish chunk with
  ``usage`` and ``data: [DONE]``. A ``"max_tokens":N`` in the body overrides the number of
  content chunks, so one upstream serves several stream lengths, and a ``"seed":N`` paces
  them: N microseconds between content chunks, as an engine generating that fast would
  (only the raw server paces; requests on one connection must not be pipelined then).

It prints ``PORT <n>`` on stdout once it listens, and exits on SIGTERM or SIGINT.

Two implementations, so the cheaper one can be measured and used:

- ``raw`` (default): an ``asyncio.Protocol`` speaking just enough HTTP/1.1 (keep-alive,
  Content-Length request bodies, pipelining). Every answer is pre-encoded bytes; a request
  costs two regex searches on the body and one ``transport.write`` per SSE event. Measured
  with wrk (-t1 -c50) on the 2-core development machine: ~60,000-75,000 requests/s and
  ~0.008 ms of CPU per non-streamed request, ~8,000-12,000 streamed answers/s. That is why it
  is the default: the upstream must not be the bottleneck, and it shares the two cores with
  graft and the load generator.
- ``uvicorn``: the same answers from a bare ASGI app (no framework) on uvicorn. With h11 and
  asyncio it served ~5,000-7,000 non-streamed and ~2,000-2,600 streamed requests/s there,
  ~0.11-0.13 ms of CPU per request: >10x the raw server's cost. The benchmark keeps it as a
  reference: the floor of anything served by graft's server stack.

The body is never parsed as JSON: the request's shape is checked by graft, not here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import socket
import sys

MODEL = "fake"
CONTENT_TEXT = "tok "  # one word per chunk: about what an engine sends per token

# ---------------------------------------------------------------------------------------------
# Pre-encoded answers
# ---------------------------------------------------------------------------------------------


def _completion_body(chunks: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": CONTENT_TEXT * chunks},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(chunks),
        },
        separators=(",", ":"),
    ).encode()


def _usage(chunks: int) -> dict[str, int]:
    return {"prompt_tokens": 20, "completion_tokens": chunks, "total_tokens": 20 + chunks}


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


ROLE_EVENT = _sse(_chunk({"role": "assistant", "content": ""}))
CONTENT_EVENT = _sse(_chunk({"content": CONTENT_TEXT}))
DONE_EVENT = b"data: [DONE]\n\n"


def _finish_event(chunks: int) -> bytes:
    return _sse(_chunk({}, "stop", usage=_usage(chunks)))


def stream_events(chunks: int) -> list[bytes]:
    """The SSE events of one streamed answer: role, ``chunks`` contents, finish+usage, DONE."""
    return [ROLE_EVENT, *([CONTENT_EVENT] * chunks), _finish_event(chunks), DONE_EVENT]


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_MAX_TOKENS = re.compile(rb'"max_tokens"\s*:\s*(\d+)')
_SEED = re.compile(rb'"seed"\s*:\s*(\d+)')
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')


def pace_of(body: bytes) -> float:
    """Seconds between content chunks that a request asks for (``"seed": microseconds``)."""
    match = _SEED.search(body)
    return min(int(match.group(1)), 10_000_000) / 1e6 if match else 0.0


def wants(body: bytes, default_chunks: int) -> tuple[bool, int]:
    """(streaming?, number of content chunks) for a request body, without parsing JSON."""
    match = _MAX_TOKENS.search(body)
    chunks = min(int(match.group(1)), 100_000) if match else default_chunks
    return _STREAM_TRUE.search(body) is not None, chunks


# ---------------------------------------------------------------------------------------------
# Raw asyncio HTTP/1.1 server
# ---------------------------------------------------------------------------------------------


class _Answers:
    """Answers pre-encoded per chunk count (cached: benchmarks use one or two counts)."""

    def __init__(self) -> None:
        self._plain: dict[int, bytes] = {}
        self._stream: dict[int, list[bytes]] = {}

    def plain(self, chunks: int) -> bytes:
        found = self._plain.get(chunks)
        if found is None:
            body = _completion_body(chunks)
            found = self._plain[chunks] = (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
        return found

    def stream(self, chunks: int) -> list[bytes]:
        found = self._stream.get(chunks)
        if found is None:
            head = (
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            parts = [_http_chunk(event) for event in stream_events(chunks)]
            # The headers travel with the first event; the terminating 0-chunk with the last.
            parts[0] = head + parts[0]
            parts[-1] += b"0\r\n\r\n"
            found = self._stream[chunks] = parts
        return found


class RawHTTPProtocol(asyncio.Protocol):
    """One connection: parse requests from a buffer, answer each with pre-encoded bytes."""

    def __init__(self, answers: _Answers, default_chunks: int) -> None:
        self.answers = answers
        self.default_chunks = default_chunks
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            self._answer(body, close=b"\r\nconnection: close" in head)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _answer(self, body: bytes, *, close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client went away (a load generator stopping mid-answer)
        streaming, chunks = wants(body, self.default_chunks)
        pace = pace_of(body)
        if streaming and pace:
            asyncio.get_running_loop().create_task(
                self._paced(transport, self.answers.stream(chunks), pace, close)
            )
            return
        if streaming:
            # One write per event: each SSE event leaves as its own send(), as from an engine.
            for part in self.answers.stream(chunks):
                if transport.is_closing():
                    return
                transport.write(part)
        else:
            transport.write(self.answers.plain(chunks))
        if close:
            transport.close()

    @staticmethod
    async def _paced(
        transport: asyncio.Transport, parts: list[bytes], pace: float, close: bool
    ) -> None:
        """Role event at once, each content chunk ``pace`` seconds after the one before."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        for i, part in enumerate(parts):
            if 0 < i < len(parts) - 2:  # a content chunk: generated after a while
                due += pace
                await asyncio.sleep(max(0.0, due - loop.time()))
            if transport.is_closing():
                return
            transport.write(part)
        if close:
            transport.close()


async def serve_raw(sock: socket.socket, chunks: int) -> None:
    loop = asyncio.get_running_loop()
    answers = _Answers()
    server = await loop.create_server(lambda: RawHTTPProtocol(answers, chunks), sock=sock)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


# ---------------------------------------------------------------------------------------------
# uvicorn with a bare ASGI app
# ---------------------------------------------------------------------------------------------


def make_asgi_app(default_chunks: int):
    plain: dict[int, bytes] = {}
    events: dict[int, list[bytes]] = {}

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        streaming, chunks = wants(body, default_chunks)
        if not streaming:
            data = plain.get(chunks) or plain.setdefault(chunks, _completion_body(chunks))
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for event in events.get(chunks) or events.setdefault(chunks, stream_events(chunks)):
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def serve_uvicorn(sock: socket.socket, chunks: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        make_asgi_app(chunks), access_log=False, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    # A load generator that stops mid-stream makes asyncio warn for every later write.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    parser.add_argument("--impl", choices=("raw", "uvicorn"), default="raw")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host != "localhost":
        sys.exit("the fake upstream only listens on loopback")
    # Bind here, before the server starts, so the chosen port can be printed either way.
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and with proto 0 uvicorn's separate header and body writes meet Nagle's algorithm and
    # the peer's delayed ACK (a 40 ms stall per answer).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(1024)
    sock.setblocking(False)
    if args.impl == "raw":
        asyncio.run(serve_raw(sock, args.chunks))
    else:
        serve_uvicorn(sock, args.chunks)


if __name__ == "__main__":
    main()
