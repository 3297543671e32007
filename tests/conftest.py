"""Shared fixtures: settings in a temporary home, a Graft on the in-memory store, a live server;
and the command line run in process, with its home in a temporary folder."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner, Result

from graft.cli import cli
from graft.config import Settings, load_settings
from graft.models.base import Model
from graft.runtime import Graft
from graft.server import create_app
from graft.testing import MemoryStore


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's settings or keys."""
    import os

    for name in list(os.environ):
        if name.startswith("GRAFT_") or name.endswith("_API_KEY"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        overrides.setdefault("home", tmp_path / "home")
        return load_settings(**overrides)

    return make


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The command line's ``GRAFT_HOME``: ``home`` in the test's temporary folder."""
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def invoke(*args: str) -> Result:
    """``graft ARGS`` run in process: its exit code and output."""
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def graft_factory(settings_factory: Callable[..., Settings]) -> Iterator[Callable[..., Graft]]:
    """Build a Graft on the in-memory store, with the given model as the default assistant's."""

    def make(
        model: Model | None = None, *, plugins: tuple[object, ...] = (), **overrides: Any
    ) -> Graft:
        if model is not None:
            overrides.setdefault("model", model.id)
        models = {model.id: model} if model is not None else None
        return Graft(
            settings_factory(**overrides),
            store=MemoryStore(),
            plugins=plugins,
            entry_points=False,
            models=models,
        )

    yield make


@pytest.fixture
async def started(graft_factory: Callable[..., Graft]) -> AsyncIterator[Callable[..., Any]]:
    """Like graft_factory, but started, and closed after the test."""
    opened: list[Graft] = []

    async def make(*args: Any, **kwargs: Any) -> Graft:
        graft = graft_factory(*args, **kwargs)
        await graft.start()
        opened.append(graft)
        return graft

    yield make
    for graft in opened:
        await graft.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real uvicorn server on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def live_server() -> Iterator[Callable[[Graft], LiveServer]]:
    servers: list[LiveServer] = []

    def start(graft: Graft) -> LiveServer:
        server = LiveServer(create_app(graft)).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
