"""Two real graft processes on one PostgreSQL database and one Redis.

PostgreSQL is expected at ``postgresql://postgres@127.0.0.1:5432/test`` (override with
``GRAFT_TEST_POSTGRES_URL``) and Redis at ``redis://127.0.0.1:6379/0``: the tests fail, never
skip, when either is down (scripts/test starts both). Each module gets a throwaway database,
dropped at the end, and its own user names, so that Redis counters of other runs (budgets
last a day) never meet these.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from tests.postgres_support import fresh_database

from graft.config import load_settings
from graft.crypto import KeySource
from graft.default_plugins.api_key_auth import hash_api_key

REDIS_URL = "redis://127.0.0.1:6379/0"
START = (
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start; "
    'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
)
WORKER = Path(__file__).with_name("scripted_worker.py")
USERS = ("talk", "approve", "rate", "budget", "cancel", "smoke")
"""One user per test: the per-user limits of one test never touch another's."""


@dataclass
class Deployment:
    """The config file, each user's API key (by role name) and the running processes."""

    config: Path
    keys: dict[str, str]
    env: dict[str, str]
    urls: list[str]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def scale_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the module, dropped at the end."""
    with fresh_database("graft_scale", START) as url:
        yield url


@pytest.fixture(scope="module")
def redis_up() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (OSError, redis.RedisError) as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); start it: {START}")
    finally:
        client.close()


@pytest.fixture(scope="module")
def deployment(
    scale_database: str, redis_up: None, tmp_path_factory: pytest.TempPathFactory
) -> Deployment:
    """A config for several graft processes: PostgreSQL, Redis, one API key per user."""
    home = tmp_path_factory.mktemp("scale")
    run = secrets.token_hex(4)
    keys = {user: f"sk-{user}-{secrets.token_hex(8)}" for user in USERS}
    entries = "".join(
        f'[[auth.api_keys]]\nsha256 = "{hash_api_key(key)}"\nuser = "{user}-{run}"\n'
        'roles = ["user"]\n\n'
        for user, key in keys.items()
    )
    config = home / "graft.toml"
    config.write_text(
        f'model = "scripted:one"\nhome = "{home}"\ndatabase_url = "{scale_database}"\n\n'
        f'[limits]\nredis_url = "{REDIS_URL}"\nrequests_per_minute = 6\n'
        "tokens_per_day = 40\napproval_timeout = 30\n\n" + entries,
        encoding="utf-8",
    )
    source = KeySource.from_settings(load_settings(config))
    assert source is not None
    source.load()  # the data key file, made once for every process
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
    return Deployment(config, keys, env, [])


@contextlib.contextmanager
def graft_processes(config: Path, env: dict[str, str]) -> Iterator[Callable[..., list[str]]]:
    """Start ``graft serve`` processes on ``config`` (extra CLI arguments each); their URLs.

    Every process started is stopped when the block ends.
    """
    processes: list[subprocess.Popen[bytes]] = []

    def launch(*argument_lists: list[str]) -> list[str]:
        urls = []
        for arguments in argument_lists:
            port = free_port()
            command = [sys.executable, str(WORKER), "--config", str(config)]
            command += ["serve", "--port", str(port), "--no-access-log", *arguments]
            log = config.with_name(f"serve-{port}.log")
            with log.open("wb") as out:
                processes.append(
                    subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
                )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes[-len(urls) :], strict=True):
            port = int(url.rsplit(":", 1)[1])
            _wait_healthy(url, process, config.with_name(f"serve-{port}.log"))
        return urls

    try:
        yield launch
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def start_graft(deployment: Deployment) -> Iterator[Callable[..., list[str]]]:
    """Start ``graft serve`` processes on the deployment (extra CLI arguments each)."""
    with graft_processes(deployment.config, deployment.env) as launch:
        yield launch


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"graft serve exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"graft serve on {url} did not answer /healthz within 30 s")


@pytest.fixture(scope="module")
def pair(deployment: Deployment, start_graft: Callable[..., list[str]]) -> Deployment:
    """Two graft processes, A and B, on the deployment."""
    deployment.urls = start_graft([], [])
    return deployment
