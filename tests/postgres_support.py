"""A fresh PostgreSQL database for a group of tests: made, yielded as a URL, dropped after.

The store tests and the multi-worker tests (``tests/scale``) each want a database of their
own on the machine's PostgreSQL; a server that cannot be reached fails the tests loudly,
with the command that starts it, never skips them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

# Read at import: the suite's autouse fixture clears GRAFT_* variables before each test.
POSTGRES_URL = os.environ.get(
    "GRAFT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@contextlib.contextmanager
def fresh_database(prefix: str, start: str = START_POSTGRES) -> Iterator[str]:
    """A new database named ``<prefix>_<random>``, dropped (connections and all) after."""
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
    )
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc.orig}\nStart it with: {start}",
            pytrace=False,
        )
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
