"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness): the probes of operations.

Both are public (``graft.server.auth.PUBLIC_PATHS``) and outside the rate limit: a load
balancer or Kubernetes asks them without credentials, many times a minute. ``/readyz``
answers 503 while a dependency does not answer (``graft.readiness``); it names which, never
why (that goes to the log).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from starlette.responses import JSONResponse

from graft.readiness import readiness
from graft.server.deps import CurrentGraft

__all__ = ["graft_version", "router"]

router = APIRouter(tags=["operations"])


def graft_version() -> str:
    """The installed graft's version (``0.0.0`` when run from an uninstalled tree)."""
    try:
        return version("graft")
    except PackageNotFoundError:
        return "0.0.0"


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """``{"status": "ok"}`` while the process serves requests."""
    return {"status": "ok", "version": graft_version()}


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=None,
    responses={
        200: {"description": "Every dependency answered: send requests here."},
        503: {"description": "A dependency (the database, Redis) did not answer in time."},
    },
)
async def readyz(graft: CurrentGraft) -> JSONResponse:
    """Whether the database (and Redis, where configured) answer, each within 2 seconds.

    ``{"status": "ready", "checks": {"database": "ok", "redis": "ok"}}`` with 200, or
    ``"status": "unavailable"`` with 503 and ``"unavailable"`` beside what did not answer.
    """
    found = await readiness(graft)
    checks = {name: "ok" if ok else "unavailable" for name, ok in found.checks.items()}
    return JSONResponse(
        {"status": "ready" if found.ready else "unavailable", "checks": checks},
        status_code=200 if found.ready else 503,
        headers={"cache-control": "no-store"},
    )
