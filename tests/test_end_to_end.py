"""The real thing: `graft serve` as a process, the embedded model, the official client.

No fakes here: the default assistant runs SmolLM2 through llama.cpp, calls the real
calculator tool, and the conversation lands in a real SQLite file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner

from graft.cli import cli

pytestmark = pytest.mark.slow

QUESTION = "Use the calculator to compute 1234*5678"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
    env.update(GRAFT_HOME=str(home), GRAFT_PORT=str(port))
    graft = Path(sys.executable).with_name("graft")
    process = subprocess.Popen(
        [str(graft), "serve", "--no-access-log"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"graft serve exited: {process.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("graft serve did not come up in 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert (home / "graft.db").is_file()


def test_served_offline_model_calls_a_tool(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["default"]
    completion = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
    )
    activity = completion.model_extra["graft"]["tool_activity"]
    result = next(a for a in activity if a["event"] == "tool_result")
    assert result["name"] == "calculator" and not result["is_error"]
    assert json.loads(result["content"])["result"] == 7006652
    assert completion.choices[0].message.content
    conversation = httpx.get(
        f"{server}/v1/conversations/{completion.model_extra['conversation_id']}"
    ).json()
    assert [m["role"] for m in conversation["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert conversation["turns"][0]["tool_runs"][0]["name"] == "calculator"


def test_served_offline_model_streams(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
            stream=True,
            max_tokens=30,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1


def test_cli_ask_json_with_the_offline_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["ask", "--json", QUESTION], env={"GRAFT_HOME": str(tmp_path)}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["tool_calls"][0]["name"] == "calculator"
    assert json.loads(answer["tool_calls"][0]["result"])["result"] == 7006652
    assert answer["finish_reason"] == "stop" and answer["content"]
