"""Faults, for real: a failing upstream, clients that leave, a worker killed with SIGKILL.

graft runs on a real HTTP server (uvicorn on 127.0.0.1, SQLite store) in front of
``FaultUpstream`` (``tests/scale/fault_upstream.py``), a real OpenAI-compatible server that
fails in the way its model name asks for; the client is the official ``openai`` package.
Each test checks what the client sees, what the upstream saw (its retries, when graft closed
the connection) and what the store kept (the turn's status and error, the user's message).
The last one runs ``graft serve`` as a process, kills it mid-turn and starts it again.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tests.conftest import LiveServer, free_port
from tests.scale.fault_upstream import FaultUpstream, closed_port

from graft.config import load_settings
from graft.errors import ConfigError
from graft.runtime import Graft
from graft.server import create_app

BEFORE_FIRST_BYTE = ["status-500", "status-502", "status-503", "ratelimit"]
AFTER_FIRST_BYTE = ["cut", "malformed", "huge"]
RETRIES = 2


def _settings(upstream: FaultUpstream) -> dict[str, Any]:
    fast = {"max_retries": RETRIES, "retry_delay": 0.01, "timeout": 5.0, "connect_timeout": 1.0}
    assistants: dict[str, Any] = {}
    for mode in [*BEFORE_FIRST_BYTE, *AFTER_FIRST_BYTE, "ok"]:
        assistants[mode] = {"model": f"fake:{mode}"}
        assistants[f"{mode}-fb"] = {"model": f"fake:{mode}", "fallbacks": ["dead:m", "fake:ok"]}
    assistants["refused"] = {"model": "dead:m"}
    assistants["refused-fb"] = {"model": "dead:m", "fallbacks": ["fake:ok"]}
    for mode in ("stall", "stall-after"):
        assistants[mode] = {"model": f"slow:{mode}"}
        assistants[f"{mode}-quick"] = {"model": f"quick:{mode}", "fallbacks": ["fake:ok"]}
    return {
        "providers": {
            "fake": {"base_url": upstream.base_url, **fast},
            "dead": {"base_url": f"http://127.0.0.1:{closed_port()}/v1", **fast},
            # Silent for up to 20 s before timing out: only the client leaving ends a stall.
            "slow": {"base_url": upstream.base_url, "max_retries": 0, "timeout": 20.0},
            # Gives up on a silence of 0.3 s, once retried.
            "quick": {"base_url": upstream.base_url, **fast, "max_retries": 1, "timeout": 0.3},
        },
        "assistants": assistants,
    }


class Env:
    def __init__(self, upstream: FaultUpstream, url: str) -> None:
        self.upstream = upstream
        self.url = url
        self.client = openai.OpenAI(
            base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=15
        )

    def stored(self, text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages and the last turn of the conversation that ``text`` started."""
        deadline = time.monotonic() + 5
        while True:
            listed = httpx.get(f"{self.url}/v1/conversations", params={"limit": 100}).json()
            found = [c for c in listed["data"] if c["title"] == text]
            if found:
                conversation = httpx.get(f"{self.url}/v1/conversations/{found[0]['id']}").json()
                turn = conversation["turns"][-1]
                if turn["status"] != "running":
                    return conversation["messages"], turn
            assert time.monotonic() < deadline, f"no finished turn for {text!r}"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home = tmp_path_factory.mktemp("faults")
    with FaultUpstream() as upstream:
        settings = load_settings(home=home, **_settings(upstream))
        graft = Graft(settings, entry_points=False)
        with LiveServer(create_app(graft)) as server:
            yield Env(upstream, server.url)


def _ask(assistant: str) -> tuple[str, list[dict[str, str]]]:
    text = f"{assistant} {uuid.uuid4().hex[:8]}"
    return text, [{"role": "user", "content": text}]


def _check_user_message_kept(messages: list[dict[str, Any]], text: str) -> None:
    assert [m["content"] for m in messages if m["role"] == "user"] == [text]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
@pytest.mark.parametrize("mode", [*BEFORE_FIRST_BYTE, "refused"])
def test_failure_before_the_first_byte_is_a_status(env: Env, mode: str, stream: bool) -> None:
    text, messages = _ask(mode)
    before = env.upstream.requests[mode]
    with pytest.raises(openai.APIStatusError) as info:
        answer = env.client.chat.completions.create(model=mode, messages=messages, stream=stream)
        if stream:
            list(answer)  # type: ignore[call-overload]
    assert info.value.status_code == 502
    expected = "ConnectionRefused|Connect call failed" if mode == "refused" else f"fault {mode}"
    assert any(e in str(info.value) for e in expected.split("|")), str(info.value)
    if mode != "refused":  # the first try and every retry reached the upstream
        assert env.upstream.requests[mode] - before == 1 + RETRIES
    stored, turn = env.stored(text)
    _check_user_message_kept(stored, text)
    assert turn["status"] == "failed" and turn["error"]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
@pytest.mark.parametrize("mode", [*BEFORE_FIRST_BYTE, "refused"])
def test_a_fallback_answers_when_the_model_fails_first(env: Env, mode: str, stream: bool) -> None:
    text, messages = _ask(f"{mode}-fb")
    before = env.upstream.requests[mode]
    if stream:
        chunks = env.client.chat.completions.create(
            model=f"{mode}-fb", messages=messages, stream=True
        )
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        completion = env.client.chat.completions.create(model=f"{mode}-fb", messages=messages)
        answer = completion.choices[0].message.content or ""
    assert answer.replace(" ", "") == "okfromok"
    if mode != "refused":
        assert env.upstream.requests[mode] - before == 1 + RETRIES
    stored, turn = env.stored(text)
    _check_user_message_kept(stored, text)
    assert (turn["status"], turn["model"], turn["route"]) == ("done", "fake:ok", "fallback")
    assert stored[-1]["content"].replace(" ", "") == "okfromok"


@pytest.mark.parametrize("mode", AFTER_FIRST_BYTE)
def test_failure_after_the_first_byte_is_a_terminal_error(env: Env, mode: str) -> None:
    # The assistant has fallbacks: none may answer once the client has seen text.
    text, messages = _ask(f"{mode}-fb")
    before = env.upstream.requests[mode]
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        chunks = env.client.chat.completions.create(
            model=f"{mode}-fb", messages=messages, stream=True
        )
        for chunk in chunks:
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    shown = "ok from " if mode == "cut" else "ok "
    assert "".join(received) == shown
    reason = {
        "cut": "broke off the answer",
        "malformed": "malformed stream event",
        "huge": "stream event over",
    }[mode]
    assert reason in str(info.value)
    assert env.upstream.requests[mode] - before == 1  # nothing retried after the first byte
    stored, turn = env.stored(text)
    _check_user_message_kept(stored, text)
    assert turn["status"] == "failed" and reason in turn["error"]
    assert turn["model"] == f"fake:{mode}"
    assert stored[-1] == {**stored[-1], "role": "assistant", "content": shown}


def test_silent_upstreams_time_out(env: Env) -> None:
    # Silent before the first byte: retried, then the fallback answers.
    text, messages = _ask("stall-quick")
    before = env.upstream.requests["stall"]
    completion = env.client.chat.completions.create(model="stall-quick", messages=messages)
    assert completion.choices[0].message.content == "ok from ok"
    assert env.upstream.requests["stall"] - before == 2
    assert env.stored(text)[1]["route"] == "fallback"
    # Silent after it: a terminal error naming the silence, no fallback.
    text, messages = _ask("stall-after-quick")
    with pytest.raises(openai.APIError, match="sent nothing for 0.3 s"):
        for _ in env.client.chat.completions.create(
            model="stall-after-quick", messages=messages, stream=True
        ):
            pass
    stored, turn = env.stored(text)
    _check_user_message_kept(stored, text)
    assert (turn["status"], turn["model"]) == ("failed", "quick:stall-after")
    assert stored[-1]["content"] == "ok "


def test_an_oversized_plain_answer_is_refused(env: Env) -> None:
    text, messages = _ask("huge")
    with pytest.raises(openai.APIStatusError) as info:
        env.client.chat.completions.create(model="huge", messages=messages)
    assert info.value.status_code == 502
    assert "over the limit of 8388608" in str(info.value)
    stored, turn = env.stored(text)
    _check_user_message_kept(stored, text)
    assert turn["status"] == "failed"


def _first_text(lines: Iterator[str]) -> str:
    """The text of the first SSE chunk that has some (the first one has the role).

    ``lines`` must stay referenced by the caller: a line iterator that is dropped half-way
    closes the connection (httpcore), which would be the client leaving.
    """
    for line in lines:
        if line.startswith("data: {"):
            choices = json.loads(line.removeprefix("data: "))["choices"]
            if choices and choices[0]["delta"].get("content"):
                return str(choices[0]["delta"]["content"])
    raise AssertionError("the stream ended without text")


def _closed_within(env: Env, mode: str, count: int, left_at: float) -> float:
    deadline = time.monotonic() + 5
    while len(env.upstream.closed[mode]) < count:
        assert time.monotonic() < deadline, "graft never closed the upstream request"
        time.sleep(0.01)
    return env.upstream.closed[mode][-1] - left_at


def test_a_client_leaving_mid_stream_cancels_the_upstream_request(env: Env) -> None:
    text, messages = _ask("stall-after")
    count = len(env.upstream.closed["stall-after"]) + 1
    body = {"model": "stall-after", "messages": messages, "stream": True}
    with httpx.stream("POST", f"{env.url}/v1/chat/completions", json=body) as response:
        lines = response.iter_lines()
        assert _first_text(lines) == "ok "
    left_at = time.monotonic()
    assert _closed_within(env, "stall-after", count, left_at) < 1.0
    stored, turn = env.stored(text)
    _check_user_message_kept(stored, text)
    assert turn["status"] == "interrupted"
    assert "went away" in turn["error"] or "cancelled" in turn["error"]
    assert stored[-1]["content"] == "ok "  # the partial answer the client saw


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "plain"])
def test_a_client_leaving_before_the_first_byte_cancels_it(env: Env, stream: bool) -> None:
    text, messages = _ask("stall")
    count = len(env.upstream.closed["stall"]) + 1
    body = {"model": "stall", "messages": messages, "stream": stream}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{env.url}/v1/chat/completions", json=body, timeout=0.5)
    left_at = time.monotonic()
    assert _closed_within(env, "stall", count, left_at) < 1.0
    stored, turn = env.stored(text)
    _check_user_message_kept(stored, text)
    assert turn["status"] == "interrupted"


def test_fallbacks_are_checked_when_the_settings_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"assistants.a.fallbacks\[1\]: 'nope' is no model alias"):
        load_settings(home=tmp_path, assistants={"a": {"fallbacks": ["openai:x", "nope"]}})
    graft = Graft(
        load_settings(home=tmp_path, assistants={"a": {"fallbacks": ["nowhere:m"]}}),
        entry_points=False,
    )
    with pytest.raises(ConfigError, match="assistant 'a': no model provider 'nowhere'"):
        graft.check()


def test_a_worker_timeout_must_outlast_its_heartbeats(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="worker_timeout .15 s. must be more than twice"):
        load_settings(home=tmp_path, limits={"worker_heartbeat": 10, "worker_timeout": 15})


# --- kill -9 ------------------------------------------------------------------------------


def _serve(home: Path, config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
    env.update(GRAFT_HOME=str(home), GRAFT_CONFIG=str(config), GRAFT_PORT=str(port))
    graft = Path(sys.executable).with_name("graft")
    process = subprocess.Popen(
        [str(graft), "serve", "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, "graft serve exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "graft serve did not come up in 30 s"
        time.sleep(0.1)


def _turns(database: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(database) as conn:
        return conn.execute("SELECT status, error FROM turns").fetchall()


def test_a_worker_killed_mid_turn_leaves_it_interrupted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "graft.toml"
    with FaultUpstream() as upstream:
        config.write_text(
            f'model = "slow:stall-after"\n'
            f"[limits]\nworker_heartbeat = 0.2\nworker_timeout = 1.0\n"
            f'[providers.slow]\nbase_url = "{upstream.base_url}"\ntimeout = 30\n'
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        first = _serve(home, config, port)
        try:
            text = f"kill me {uuid.uuid4().hex[:8]}"
            body = {"model": "default", "messages": [{"role": "user", "content": text}]}
            body["stream"] = True
            # The client keeps its connection open, so only the kill ends the turn.
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                lines = response.iter_lines()
                assert _first_text(lines) == "ok "
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
        finally:
            if first.poll() is None:
                first.kill()
        assert _turns(home / "graft.db") == [("running", None)]
        second = _serve(home, config, port)
        try:
            deadline = time.monotonic() + 10
            while _turns(home / "graft.db")[0][0] == "running":
                assert time.monotonic() < deadline, "the dead worker's turn stayed running"
                time.sleep(0.1)
            [(status, error)] = _turns(home / "graft.db")
            assert status == "interrupted" and "worker" in (error or "")
            conversation = httpx.get(f"{url}/v1/conversations").json()["data"][0]
            stored = httpx.get(f"{url}/v1/conversations/{conversation['id']}").json()
            assert [m["content"] for m in stored["messages"] if m["role"] == "user"] == [text]
            assert stored["turns"][0]["status"] == "interrupted"
        finally:
            second.terminate()
            second.wait(timeout=20)


def test_a_live_worker_keeps_its_running_turns(tmp_path: Path) -> None:
    """A second worker starting beside a busy one does not take its turns for dead."""
    home = tmp_path / "home"
    config = tmp_path / "graft.toml"
    with FaultUpstream() as upstream:
        config.write_text(
            f'model = "slow:stall-after"\n'
            f"[limits]\nworker_heartbeat = 0.2\nworker_timeout = 1.0\n"
            f'[providers.slow]\nbase_url = "{upstream.base_url}"\ntimeout = 30\n'
        )
        port, other = free_port(), free_port()
        busy = _serve(home, config, port)
        try:
            body = {"model": "default", "messages": [{"role": "user", "content": "busy"}]}
            with httpx.stream(
                "POST",
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={**body, "stream": True},
            ) as response:
                lines = response.iter_lines()
                assert _first_text(lines) == "ok "
                beside = _serve(home, config, other)
                try:
                    time.sleep(2.0)  # two timeouts' worth of the newcomer's recoveries
                    assert _turns(home / "graft.db") == [("running", None)]
                finally:
                    beside.terminate()
                    beside.wait(timeout=20)
        finally:
            busy.terminate()
            busy.wait(timeout=20)
        # The busy worker's clean shutdown ended its turn (client gone, or retired).
        [(status, _)] = _turns(home / "graft.db")
        assert status == "interrupted"
