"""``graft.readiness``: which dependencies are checked, and a hung one within the time limit."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import anyio
import pytest

from graft import readiness as readiness_module
from graft.coordination import Coordination
from graft.readiness import Probed, readiness
from graft.store.memory import MemoryStore


class Dependency:
    def __init__(self, *, fails: bool = False, hangs: bool = False) -> None:
        self.fails = fails
        self.hangs = hangs

    async def ping(self) -> None:
        if self.hangs:
            await anyio.sleep(60)
        if self.fails:
            raise ConnectionRefusedError("connection refused")


async def test_a_single_process_has_nothing_to_check() -> None:
    found = await readiness(SimpleNamespace(store=MemoryStore(), coordination=Coordination()))  # type: ignore[arg-type]
    assert found.checks == {} and found.ready


async def test_each_dependency_is_reported_by_name(caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(Dependency(), Probed)
    graft = SimpleNamespace(store=Dependency(), coordination=Dependency(fails=True))
    with caplog.at_level(logging.WARNING, logger="graft.readiness"):
        found = await readiness(graft)  # type: ignore[arg-type]
    assert found.checks == {"database": True, "redis": False} and not found.ready
    assert [r.getMessage() for r in caplog.records] == [
        "not ready: the redis did not answer (ConnectionRefusedError('connection refused'))"
    ]


async def test_a_dependency_that_hangs_is_unavailable_in_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(readiness_module, "CHECK_TIMEOUT", 0.2)
    graft = SimpleNamespace(store=Dependency(hangs=True), coordination=Dependency(hangs=True))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="graft.readiness"):
        found = await readiness(graft)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0  # both checks ran together, each cut at 0.2 s
    assert found.checks == {"database": False, "redis": False}
    assert "not ready: the database did not answer (no answer in time)" in caplog.text
