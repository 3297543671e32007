"""Readiness: whether this worker can serve requests now (``GET /readyz``).

``/healthz`` (liveness) says the process answers. Readiness says that what every chat turn
needs answers too: the database, by a trivial query through the store's own pool, and Redis,
by a ``PING``, where ``limits.redis_url`` is set (approvals, rate limits and stream
cancellation of all workers live there). A load balancer, or a Kubernetes readiness probe,
stops sending requests to a worker that is not ready and sends them again once it is, with no
restart. The model providers are not checked: a model that is down fails its own turns (or
falls back, ``graft.model_routing``), and must not take every worker out of rotation.

The checks run together, each within ``CHECK_TIMEOUT`` seconds, so a probe is answered in
that time even when the database hangs rather than refuses. Why a check failed goes to the
log, not to the (unauthenticated) answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

import anyio

if TYPE_CHECKING:
    from graft.runtime import Graft

__all__ = ["CHECK_TIMEOUT", "Probed", "Readiness", "readiness"]

log = logging.getLogger(__name__)

CHECK_TIMEOUT: Final = 2.0
"""Seconds one check may take before its dependency counts as unavailable."""


@runtime_checkable
class Probed(Protocol):
    """A dependency that can say whether it answers (the SQL store, Redis coordination)."""

    async def ping(self) -> None:
        """Return once the dependency answered; raise if it did not."""
        ...


@dataclass(frozen=True, slots=True)
class Readiness:
    """Each checked dependency by name (``database``, ``redis``), and whether it answered."""

    checks: dict[str, bool]

    @property
    def ready(self) -> bool:
        """Whether every dependency answered."""
        return all(self.checks.values())


async def readiness(graft: Graft) -> Readiness:
    """Check the dependencies of ``graft`` that can be probed, all at once.

    The in-memory store and the coordination of a single process have nothing that could be
    down: they are not checked.
    """
    probes = {
        name: dependency
        for name, dependency in (("database", graft.store), ("redis", graft.coordination))
        if isinstance(dependency, Probed)
    }
    answered: dict[str, bool] = {}

    async def check(name: str, probe: Probed) -> None:
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                await probe.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            reason = "no answer in time" if isinstance(exc, TimeoutError) else repr(exc)
            log.warning("not ready: the %s did not answer (%s)", name, reason)
            answered[name] = False
        else:
            answered[name] = True

    async with anyio.create_task_group() as tg:
        for name, probe in probes.items():
            tg.start_soon(check, name, probe)
    return Readiness({name: answered[name] for name in probes})
