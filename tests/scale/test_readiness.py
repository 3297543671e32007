"""``GET /readyz`` of a real ``graft serve`` while its Redis and its database go away and back.

The worker runs on a database of its own on the machine's PostgreSQL, reached as a role of
its own, and on a Redis server of its own (``redis-server`` on a free port), so that both can
be taken away without touching what other tests use: Redis by stopping that server, the
database by revoking the role's right to connect and ending its sessions.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from tests.postgres_support import POSTGRES_URL, fresh_database
from tests.scale.conftest import free_port, graft_processes

from graft.default_plugins.api_key_auth import hash_api_key
from graft.readiness import CHECK_TIMEOUT

pytestmark = pytest.mark.integration


class RedisServer:
    """A ``redis-server`` of this test's own on a fixed port, that can be stopped and started."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.process = subprocess.Popen(
            [self.binary, *arguments, "--appendonly", "no"], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        pytest.fail(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database() -> Iterator[tuple[str, str, Engine]]:
    """A fresh database, a role that may use it, and an admin engine on it."""
    role = f"graft_ready_{secrets.token_hex(4)}"
    server = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    with fresh_database("graft_ready") as url:
        name = make_url(url).database
        admin = create_engine(server.set(database=name), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
                conn.exec_driver_sql(f'ALTER SCHEMA public OWNER TO "{role}"')
            yield server.set(username=role, database=name).render_as_string(False), role, admin
        finally:
            admin.dispose()
    cleanup = create_engine(server, isolation_level="AUTOCOMMIT")
    with cleanup.connect() as conn:
        conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
    cleanup.dispose()


def ready(url: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    answer = httpx.get(f"{url}/readyz", timeout=CHECK_TIMEOUT + 5)
    return answer.status_code, answer.json(), time.monotonic() - started


def until(url: str, status: int, within: float = 15.0) -> dict[str, Any]:
    """Ask ``/readyz`` until it answers ``status``; its answer then."""
    deadline = time.monotonic() + within
    while True:
        code, body, _ = ready(url)
        if code == status:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz still answers {code} {body}, not {status}, after {within} s")
        time.sleep(0.2)


def test_readyz_follows_redis_and_the_database(
    database: tuple[str, str, Engine], redis_server: RedisServer, tmp_path: Path
) -> None:
    db_url, role, admin = database
    key = f"sk-ready-{secrets.token_hex(8)}"
    config = tmp_path / "graft.toml"
    config.write_text(
        f'model = "scripted:one"\nhome = "{tmp_path}"\ndatabase_url = "{db_url}"\n\n'
        f'[limits]\nredis_url = "{redis_server.url}"\n\n'
        f'[[auth.api_keys]]\nsha256 = "{hash_api_key(key)}"\nuser = "ops"\nroles = ["user"]\n',
        encoding="utf-8",
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    with graft_processes(config, env) as launch:
        [url] = launch([])
        # Public: a probe has no credentials, though every other route wants them here.
        assert httpx.get(f"{url}/v1/models").status_code == 401
        status, body, _ = ready(url)
        assert (status, body) == (
            200,
            {"status": "ready", "checks": {"database": "ok", "redis": "ok"}},
        )

        redis_server.stop()
        status, body, took = ready(url)
        assert status == 503
        assert body == {
            "status": "unavailable",
            "checks": {"database": "ok", "redis": "unavailable"},
        }
        assert took < CHECK_TIMEOUT + 1.5
        redis_server.start()  # the same port: graft's client connects again by itself
        assert until(url, 200)["checks"] == {"database": "ok", "redis": "ok"}

        with admin.connect() as conn:  # the database refuses the role and drops its sessions
            name = make_url(db_url).database
            conn.exec_driver_sql(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
        body = until(url, 503)
        assert body == {
            "status": "unavailable",
            "checks": {"database": "unavailable", "redis": "ok"},
        }
        with admin.connect() as conn:
            conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{name}" TO PUBLIC')
        assert until(url, 200)["status"] == "ready"
    log = "".join(path.read_text(errors="replace") for path in tmp_path.glob("serve-*.log"))
    assert "not ready: the redis did not answer" in log
    assert "not ready: the database did not answer" in log
    assert key not in log
