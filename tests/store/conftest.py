"""The store tests' backends: in memory, a SQLite file, and a real PostgreSQL; and a finished turn.

PostgreSQL is expected at ``postgresql://postgres@127.0.0.1:5432/test`` (override with
``GRAFT_TEST_POSTGRES_URL``). Each test session creates a throwaway database there and drops
it at the end; each test starts from an empty schema. If the server is down the PostgreSQL
tests fail (they never skip): start it with
``pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from tests.postgres_support import fresh_database

from graft.context import Principal
from graft.crypto import DataKeys, generate_key
from graft.messages import Message, Usage
from graft.store import Store, open_store
from graft.store.sql import SQLStore

POSTGRES = pytest.param("postgresql", marks=pytest.mark.integration)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database on the PostgreSQL server for this session, dropped at the end."""
    with fresh_database("graft_test") as url:
        yield url


def _empty_postgres(url: str) -> None:
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


def _url_for(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        # A folder that does not exist yet: the store must create it.
        return f"sqlite:///{tmp_path / 'data' / 'graft.db'}"
    url: str = request.getfixturevalue("postgres_database")
    _empty_postgres(url)
    return url


@pytest.fixture(params=["memory", "sqlite", POSTGRES])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url_for(request.param, tmp_path, request)


@pytest.fixture(params=["sqlite", POSTGRES])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _url_for(request.param, tmp_path, request)


@pytest.fixture
def data_keys() -> DataKeys:
    """A fresh keyring: the SQL stores of the suite encrypt contents, as graft does."""
    return DataKeys([generate_key()])


@pytest.fixture
async def store(store_url: str, data_keys: DataKeys) -> AsyncIterator[Store]:
    opened = open_store(store_url, data_keys=data_keys)
    await opened.start()
    yield opened
    await opened.close()


@pytest.fixture
async def sql_store(sql_url: str, data_keys: DataKeys) -> AsyncIterator[SQLStore]:
    opened = SQLStore(sql_url, data_keys=data_keys)
    await opened.start()
    yield opened
    await opened.close()


# --- helpers --------------------------------------------------------------------------------


async def finished_turn(
    store: Store,
    principal: Principal,
    text: str = "hello",
    *,
    assistant: str = "helper",
    conversation_id: str | None = None,
    new_messages: list[Message] | None = None,
) -> tuple[str, str]:
    """A finished turn of ``principal``'s, answered ``re: text``: ``(conversation_id, turn_id)``."""
    cid, tid = await store.begin_turn(
        principal,
        assistant=assistant,
        model="fake:echo",
        conversation_id=conversation_id,
        new_messages=new_messages or [Message("user", text)],
    )
    await store.finish_turn(
        tid,
        messages=[Message("assistant", f"re: {text}")],
        tool_runs=[],
        usage=Usage(1, 1),
        finish_reason="stop",
        duration_ms=1.0,
    )
    return cid, tid


class Outcomes(dict[str, list[object]]):
    """Per name, what each call ``attempt`` awaited returned, or the type of what it raised."""

    async def attempt(self, name: str, call: Awaitable[object]) -> None:
        try:
            result: object = await call
        except Exception as exc:
            result = type(exc)
        self.setdefault(name, []).append(result)
