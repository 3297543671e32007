"""Data-source fixtures: a SQLite file, and a fresh PostgreSQL and MariaDB database per module.

PostgreSQL is expected at ``postgresql://postgres@127.0.0.1:5432/test`` (override with
``GRAFT_TEST_POSTGRES_URL``), MariaDB or MySQL at ``mysql://root@127.0.0.1:3306/test``
(``GRAFT_TEST_MYSQL_URL``). Each test module gets a database of its own on each server,
named ``graft_test_<random>``, dropped after it. If a server is down its tests fail (they
never skip), with the command that starts it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from graft.sources.demo import create_demo
from graft.sources.engine import database_url

# Read at import: the suite's autouse fixture clears GRAFT_* variables before each test.
SERVERS = {
    "postgres": os.environ.get(
        "GRAFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get("GRAFT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
START = {
    "postgres": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mysql": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
}
DIALECTS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.integration),
    pytest.param("mysql", marks=pytest.mark.integration),
]


def admin_engine(url: str, **options: Any) -> Engine:
    """A read-write engine (not graft's), to set up and check what the tests read."""
    return create_engine(database_url(url), **options)


def quote(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def _fresh_database(dialect: str) -> Iterator[str]:
    server = SERVERS[dialect]
    admin = admin_engine(server, isolation_level="AUTOCOMMIT")
    name = f"graft_test_{secrets.token_hex(6)}"
    options = " CHARACTER SET utf8mb4" if dialect == "mysql" else ""
    problem = None
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {quote(dialect, name)}{options}")
    except OperationalError as exc:
        problem = exc.orig
    if problem is not None:
        admin.dispose()
        pytest.fail(
            f"{dialect} at {server} is unreachable: {problem}\nStart it with: {START[dialect]}",
            pytrace=False,
        )
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if dialect == "postgres" else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(dialect, name)}{force}")
        admin.dispose()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this module."""
    yield from _fresh_database("postgres")


@pytest.fixture(scope="module")
def mysql_url() -> Iterator[str]:
    """A fresh MariaDB/MySQL database for this module."""
    yield from _fresh_database("mysql")


@pytest.fixture(scope="module", params=DIALECTS)
def empty_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty database of each dialect (for SQLite, a file that does not exist yet)."""
    if request.param == "sqlite":
        folder: Path = tmp_path_factory.mktemp("sqlite")
        return f"sqlite:///{folder / 'company.db'}"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="module")
def demo_url(empty_url: str) -> str:
    """A database of each dialect holding the demo company."""
    anyio.run(partial(create_demo, empty_url, reset=True))
    return empty_url
