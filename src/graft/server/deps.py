"""Request dependencies shared by the routes: the ``Graft`` instance and the principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from graft.context import Principal
from graft.runtime import Graft

__all__ = ["CurrentGraft", "CurrentPrincipal"]


async def get_graft(request: Request) -> Graft:
    """The app's ``Graft``. ``async`` so FastAPI does not send it to a worker thread."""
    graft: Graft = request.app.state.graft
    return graft


async def get_principal(request: Request) -> Principal:
    """Authenticate the request through the ``authenticate`` hooks."""
    graft: Graft = request.app.state.graft
    return await graft.authenticate(request.headers)


CurrentGraft = Annotated[Graft, Depends(get_graft)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
