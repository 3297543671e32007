"""Request dependencies shared by the routes: the ``Graft`` instance and the principal.

The principal was found by the ``Authenticate`` middleware (``graft.server.auth``) before
routing; these only read it. Hot routes read the same values from the request directly
(``graft_of``, ``principal_of``) rather than through FastAPI's dependency resolution.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request

from graft.context import Principal
from graft.errors import InvalidRequest
from graft.runtime import Graft

D = TypeVar("D", int, None)

__all__ = ["CurrentGraft", "CurrentPrincipal", "graft_of", "int_param", "principal_of"]


def graft_of(request: Request) -> Graft:
    """The app's ``Graft``."""
    graft: Graft = request.app.state.graft
    return graft


def principal_of(request: Request) -> Principal:
    """Who sent the request, as the ``Authenticate`` middleware found."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        # Only a route under a public path could get here: a bug, not a client's error.
        raise RuntimeError(f"{request.url.path} is not authenticated (a public path?)")
    return principal


async def get_graft(request: Request) -> Graft:
    """``graft_of`` as a dependency (``async``: FastAPI would send a plain function to a thread)."""
    return graft_of(request)


async def get_principal(request: Request) -> Principal:
    """``principal_of`` as a dependency."""
    return principal_of(request)


CurrentGraft = Annotated[Graft, Depends(get_graft)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def int_param(request: Request, name: str, default: D, low: int, high: int | None) -> int | D:
    """The query parameter ``name`` as an integer from ``low`` to ``high``, or ``default``.

    For routes that read their parameters themselves (the admin routes, which must answer a
    non-admin 404 before looking at anything else).

    Raises:
        InvalidRequest: It is not an integer, or out of range.
    """
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", param=name) from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise InvalidRequest(f"{name} must be {bound}", param=name)
    return value
