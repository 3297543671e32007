"""JSON log lines with request ids (and trace ids while tracing), read back as JSON."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graft.logs import JsonFormatter
from graft.secrets import SecretMasker, register_secret
from graft.testing import FakeModel

SECRET = "sk-live-observability-0123456789abcdef"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """graft's records as JSON lines, through the secret masker as in ``graft serve``."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(SecretMasker())
    logger = logging.getLogger("graft")
    logger.addHandler(handler)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def post_turn(url: str, **headers: str) -> httpx.Response:
    body = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_a_failed_turns_log_line_carries_the_request_and_trace_ids(
    traced: Any, json_log: io.StringIO
) -> None:
    register_secret(SECRET)
    url, exporter = traced(FakeModel(RuntimeError(f"upstream said no to {SECRET}")))
    response = post_turn(url, **{"X-Request-ID": "req-42.a:b"})
    assert response.headers["x-request-id"] == "req-42.a:b"

    [failed] = [line for line in lines(json_log) if line["logger"] == "graft.turn"]
    assert failed["level"] == "ERROR"
    assert failed["message"].startswith("turn turn_") and failed["message"].endswith(" failed")
    assert failed["request_id"] == "req-42.a:b"
    assert failed["time"].endswith("+00:00")
    assert "RuntimeError: upstream said no" in failed["exception"]
    assert SECRET not in json_log.getvalue()  # masked in the traceback
    [turn] = [s for s in exporter.get_finished_spans() if s.name == "graft.turn"]
    assert failed["trace_id"] == f"{turn.context.trace_id:032x}"
    assert len(failed["span_id"]) == 16


def test_request_ids_are_made_when_missing_or_malformed(
    live_server: Any, graft_factory: Any
) -> None:
    url = live_server(graft_factory(FakeModel("a", "b", "c"))).url
    made = httpx.get(f"{url}/healthz").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    other = httpx.get(f"{url}/healthz").headers["x-request-id"]
    assert other != made
    bad = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "x" * 129})
    assert len(bad.headers["x-request-id"]) == 32
    injected = httpx.get(f"{url}/healthz", headers={"X-Request-ID": 'a b"}'})
    assert injected.headers["x-request-id"] != 'a b"}'
    # Error answers carry it too.
    missing = httpx.get(f"{url}/v1/nowhere", headers={"X-Request-ID": "abc"})
    assert missing.status_code == 404 and missing.headers["x-request-id"] == "abc"


def test_lines_without_a_request_have_no_request_id(json_log: io.StringIO) -> None:
    logging.getLogger("graft.example").warning("disk %s%% full", 91)
    [line] = lines(json_log)
    assert line == {
        "time": line["time"],
        "level": "WARNING",
        "logger": "graft.example",
        "message": "disk 91% full",
    }


@pytest.mark.integration
def test_graft_serve_log_format_json_writes_json_access_lines(tmp_path: Path) -> None:
    """The real command: uvicorn's own lines become JSON with the request's id."""
    port = free_port()
    env = {**os.environ, "GRAFT_HOME": str(tmp_path / "home")}
    env = {k: v for k, v in env.items() if not k.endswith("_API_KEY")}
    command = [str(Path(sys.executable).parent / "graft"), "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--log-format", "json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "probe-1"}
                )
                break
            except httpx.ConnectError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "graft serve did not start"
                time.sleep(0.2)
        assert answer.headers["x-request-id"] == "probe-1"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert access and access[0]["request_id"] == "probe-1"
    assert "GET /healthz" in access[0]["message"]
    assert any(r["logger"] == "uvicorn.error" for r in records)
