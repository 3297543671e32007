"""Streaming latency probe: time to first content chunk and to last byte (its own process).

    python bench/stream_probe.py --port P --concurrency C --duration S --body '{"stream":true,...}'

wrk reports a request's latency only once its response is complete, so it cannot see when
the first token of a stream arrives. This client fills that gap: ``C`` connections, each
sending the same POST over and over on one keep-alive connection, timing per request

- ``ttfc``: from the request's send to the first received byte that completes a content
  delta (``"content":"`` followed by at least one character; the empty role chunk does
  not count), and
- ``ttlb``: from the send to the end of the response (the chunked terminator, or
  Content-Length bytes).

It uses raw asyncio streams and a few byte searches rather than an HTTP library, so that
its own cost per request stays small (it shares the machine's two cores with the servers);
at high request rates it is still slower than wrk, so its numbers at concurrency > 1 are
for comparing targets measured the same way, not absolute. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time

_CONTENT = re.compile(rb'"content":"[^"]')
_TERMINATOR = b"\r\n0\r\n\r\n"


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by nearest rank, or None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


async def read_response(reader: asyncio.StreamReader) -> tuple[float | None, float, bytearray]:
    """Read one response; return (time of first content, time of last byte, raw response).

    Times are ``time.perf_counter()``; the raw response is the head and the body as received
    (chunked framing included), for a caller that checks what came.
    """
    buffer = bytearray()
    first: float | None = None
    body_start = -1
    length: int | None = None
    searched = 0
    while True:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("the server closed the connection mid-response")
        now = time.perf_counter()
        buffer += data
        if body_start < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                continue
            body_start = end + 4
            head = bytes(buffer[:end]).lower()
            if not head.startswith(b"http/1.1 200"):
                raise RuntimeError(f"unexpected answer: {bytes(buffer[:200])!r}")
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
            length = int(match.group(1)) if match else None
            searched = body_start
        if first is None:
            # Look again a little before where the last search stopped: a match can straddle
            # two reads.
            if _CONTENT.search(buffer, max(body_start, searched - 16)):
                first = now
            searched = len(buffer)
        if length is not None:
            if len(buffer) - body_start >= length:
                return first, now, buffer
        elif buffer.endswith(_TERMINATOR):
            return first, now, buffer


async def _worker(
    host: str, port: int, request: bytes, deadline: float, ttfc: list[float], ttlb: list[float]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            writer.write(request)
            first, last, _ = await read_response(reader)
            if first is not None:
                ttfc.append(first - sent)
            ttlb.append(last - sent)
    finally:
        writer.close()


async def probe(
    host: str, port: int, path: str, body: bytes, concurrency: int, duration: float
) -> dict[str, object]:
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    ttfc: list[float] = []
    ttlb: list[float] = []
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(_worker(host, port, request, deadline, ttfc, ttlb) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "requests": len(ttlb),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(ttlb) / elapsed, 1),
        "ttfc_p50_ms": ms(percentile(ttfc, 50)),
        "ttfc_p99_ms": ms(percentile(ttfc, 99)),
        "ttlb_p50_ms": ms(percentile(ttlb, 50)),
        "ttlb_p99_ms": ms(percentile(ttlb, 99)),
        "with_content": len(ttfc),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--body", required=True, help="JSON request body")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host != "localhost":
        parser.error("the probe only talks to loopback addresses")
    result = asyncio.run(
        probe(args.host, args.port, args.path, args.body.encode(), args.concurrency, args.duration)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
