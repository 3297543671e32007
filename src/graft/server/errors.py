"""Mapping every failure to an OpenAI-style error object with the right status.

Domain errors carry their status; request validation errors become 400 with the offending
field in ``param``; unknown routes and methods keep their 404/405; anything unexpected is a
500 that says "internal error" and logs the traceback, never sends it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match, Route

from graft.errors import GraftError, RateLimited
from graft.server.encode import error_body

__all__ = ["error_response", "install_error_handlers", "retry_after_header"]

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def error_response(
    status: int,
    message: str,
    type_: str,
    code: str | None,
    param: str | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An OpenAI-style JSON error response."""
    return JSONResponse(
        error_body(message, type_, code, param), status_code=status, headers=headers
    )


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` for a wait of ``seconds``: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        return f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}", None
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid request"))
    message = message.removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return (f"{param}: {message}{more}" if param else f"{message}{more}"), param


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(GraftError)
    async def graft_error(request: Request, exc: GraftError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("%s %s failed: %s", request.method, request.url.path, exc.message)
        headers = None
        if isinstance(exc, RateLimited):
            headers = {"retry-after": retry_after_header(exc.retry_after)}
        return error_response(
            exc.status, exc.message, exc.type, exc.code, exc.param, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(list(exc.errors()))
        code = "invalid_json" if param is None and "JSON" in message else "invalid_value"
        return error_response(400, message, "invalid_request_error", code, param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        code = _HTTP_CODES.get(exc.status_code)
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
        if exc.status_code == 405:
            # Every method of the path, not only those of the first route that matched it.
            headers["allow"] = ", ".join(sorted(_allowed_methods(request.app.routes, request)))
        return error_response(
            exc.status_code, message, "invalid_request_error", code, headers=headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal error", "server_error", "internal_error")


def _allowed_methods(routes: list[Any], request: Request) -> set[str]:
    """The methods of every route whose path matches the request's."""
    found: set[str] = set()
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's wrapper of an included router
            found |= _allowed_methods(route.original_router.routes, request)
        elif isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            found |= set(route.methods or ())
    return found


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_ERRORS = {
    "400": "Invalid request: the body, a parameter or a field",
    "401": "Missing or invalid API key",
    "404": "Not found, or not yours",
    "405": "Method not allowed",
    "413": "Body over the size limit",
    "429": "Over a rate limit, the token budget or the open streams",
}


def document_errors(spec: dict[str, Any], public: Collection[str]) -> None:
    """Give every operation the errors any request may get, in graft's error shape.

    FastAPI documents a 422 for validation errors; graft answers them with 400, like
    OpenAI. The body limit runs before every route, authentication and the rate limits
    before every route but the public ones, so their answers belong to those operations.
    """
    spec["components"]["schemas"]["Error"] = _ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, description in _ERRORS.items():
                if path in public and status in ("401", "429"):
                    continue  # neither authenticated nor rate-limited
                documented = responses.setdefault(status, {"description": description})
                documented["content"] = {"application/json": {"schema": ref}}
    schemas = spec["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
