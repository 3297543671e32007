"""Several ``graft serve`` worker processes on one port (``graft serve --workers N``).

uvicorn starts each worker as a fresh process that imports its app: ``worker_app`` (an app
factory) builds a ``Graft`` from the same settings as the parent, which hands them over in
``GRAFT_CONFIG`` (the config file) and ``GRAFT_*`` variables. What the workers share lives
in PostgreSQL (the store) and Redis (``graft.coordination``: approvals, answered turns,
stream cancels; ``graft.ratelimit``: rates, budgets, stream slots), so ``check_workers``
refuses more than one worker without them. Voice calls and rooms stay in the worker that took
them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from graft.config import Settings, load_settings
from graft.errors import ConfigError

__all__ = ["check_workers", "run_workers", "worker_app"]


def check_workers(settings: Settings, workers: int) -> None:
    """Raise ``ConfigError`` unless ``workers`` processes can share these settings' state."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    if workers == 1:
        return
    url = settings.sqlalchemy_url
    if url == "memory://" or url.startswith("sqlite"):
        store = "the in-memory store" if url == "memory://" else "a SQLite store"
        raise ConfigError(
            f"--workers {workers} needs a store that several processes can write: {store} "
            "is one process's (SQLite takes one writer at a time; memory:// is per process). "
            "Set database_url to PostgreSQL, or serve one worker."
        )
    if not settings.limits.redis_url:
        raise ConfigError(
            f"--workers {workers} needs limits.redis_url: without Redis, approvals, stream "
            "cancels, rate limits and budgets are kept per process, so a request that lands "
            "on another worker would not see them. Set limits.redis_url, or serve one worker."
        )


def worker_app() -> FastAPI:
    """The app of one worker (uvicorn calls this in each worker process)."""
    from graft.runtime import Graft
    from graft.server import create_app
    from graft.server.gctune import tune_for_serving

    graft = Graft(load_settings())
    graft.check()
    tune_for_serving()
    return create_app(graft)


def run_workers(settings: Settings, config: Path | None, workers: int, **options: Any) -> None:
    """Serve ``workers`` processes on the settings' host and port until stopped.

    The data key file is created here, once, before the workers start (so that they do not
    race to create it); the config file reaches them as ``GRAFT_CONFIG``.
    """
    import uvicorn

    from graft.crypto import KeySource

    if config is not None:
        os.environ["GRAFT_CONFIG"] = str(Path(config).absolute())
    keys = KeySource.from_settings(settings)
    if keys is not None:
        keys.load()
    uvicorn.run(
        "graft.server.workers:worker_app",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
        log_level="info",
        timeout_graceful_shutdown=10,
        **options,
    )
