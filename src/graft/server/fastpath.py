"""``POST /v1/chat/completions`` straight to its endpoint, without the router.

Every chat turn comes through this one method and path. On its way to the endpoint the
router matches the request against the app's routes one regular expression at a time (some
seventy with the admin and web UI routes), and the route wraps the endpoint in an exception
handler twice over, an exit stack and the resolution of dependencies it does not have: about
50 µs of the ~250 µs graft spent before calling the upstream (measured in process). The
endpoint needs none of that: it reads its body and its principal itself
(``graft.server.chat``).

``ChatFastPath`` is the innermost ASGI middleware: it hands that method and path to the same
endpoint function, and everything else (other methods on the path too) to the app as
before. The route stays registered with FastAPI, which documents it in the OpenAPI schema.
An exception from the endpoint is answered by the app's own handlers, looked up as
Starlette's ``ExceptionMiddleware`` looks them up (an HTTP exception's status first, then the
exception's classes in order), so a client gets the same answer either way; anything without
a handler goes on to the server-error middleware, as it would from the router.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ChatFastPath"]

PATH = "/v1/chat/completions"

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


class ChatFastPath:
    """Pure ASGI middleware: ``POST PATH`` to ``endpoint`` directly (see the module docstring).

    Args:
        app: The app inside (the router).
        fastapi: The application, whose route for ``PATH`` and exception handlers are used.
        endpoint: The function of that route.
    """

    def __init__(self, app: ASGIApp, fastapi: FastAPI, endpoint: Endpoint) -> None:
        self.app = app
        self.endpoint = endpoint
        self.route = _route(fastapi.routes)
        self.fastapi = fastapi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # what the router sets: the metrics label requests by it
        request = Request(scope, receive)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            handler = _handler(self.fastapi.exception_handlers, exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)


def _route(routes: list[BaseRoute]) -> BaseRoute:
    """The app's route for ``POST PATH``, also inside included routers."""
    for route in _flat(routes):
        if getattr(route, "path", None) == PATH and "POST" in (getattr(route, "methods", ()) or ()):
            return route
    raise LookupError(f"the app has no POST {PATH} route")


def _flat(routes: list[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with FastAPI's wrappers of included routers replaced by their routes."""
    found: list[BaseRoute] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        found.extend(_flat(inner.routes) if inner is not None else [route])
    return found


def _handler(handlers: Mapping[Any, Handler], exc: Exception) -> Handler | None:
    """The handler Starlette's ``ExceptionMiddleware`` would pick for ``exc``, if any.

    The catch-all (``Exception``, or status 500) belongs to the server-error middleware,
    outside this one, as it does in Starlette's stack.
    """
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
