"""JSON request bodies that a route parses itself, and their place in the OpenAPI document.

FastAPI parses a declared body model in two steps (``json.loads``, then validation of the
Python objects) inside its dependency resolution. ``parse_json_body`` hands the raw bytes to
pydantic, which reads and validates the JSON in one pass, and raises the same
``RequestValidationError`` FastAPI would, so errors keep their OpenAI-style shape
(``graft.server.errors``). With ``max_depth`` it first refuses a body whose arrays and
objects nest deeper than that (``nests_deeper``: one ``translate`` of the raw bytes, then
work on the brackets and quotes it leaves, all in C), so no parser recurses through a
hostile body. ``json_body`` documents such a
body for the route's ``openapi_extra``, and ``document_bodies`` adds the models' schemas to
the app's OpenAPI components, where FastAPI would have put them.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from graft.errors import ClientGone, InvalidRequest

__all__ = ["document_bodies", "json_body", "json_depth", "nests_deeper", "parse_json_body"]

M = TypeVar("M", bound=BaseModel)

_COMPONENTS = "#/components/schemas/{model}"
_documented: dict[str, type[BaseModel]] = {}

_ESCAPES = b'"\\[]{}/bfnrtu'
"""Brackets, quotes, and every character JSON escapes with a backslash (``\\u`` included)."""
_DROP_BUT_ESCAPES = bytes(sorted(set(range(256)) - set(_ESCAPES)))
_DROP_BUT_MARKS = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_SQUARE = bytes.maketrans(b"{}", b"[]")
_STEP = {ord("["): 1, ord("]"): -1}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route whose JSON body is ``model``."""
    _documented[model.__name__] = model
    schema = {"$ref": _COMPONENTS.format(model=model.__name__)}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _brackets(data: bytes) -> bytes:
    """The brackets of the JSON text ``data`` that are not inside strings, all made square.

    One pass over ``data`` (``translate``) keeps only the characters that matter; the rest
    works on what is left, in C too. A string is left as two quotes with its brackets between.
    """
    if b"\\" in data:
        # Every backslash keeps the character it escapes, so they still pair up; without the
        # escaped backslashes (an even run is all pairs, the last of an odd run escapes what
        # follows), then the escaped quotes, every quote left starts or ends a string.
        data = data.translate(None, _DROP_BUT_ESCAPES).replace(b"\\\\", b"")
        data = data.replace(b'\\"', b"")
    # Dropping two adjacent quotes keeps the parity of every other quote, so a bracket is in a
    # string as before; this drops every string without brackets at once.
    marks = data.translate(_SQUARE, _DROP_BUT_MARKS).replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    return marks


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of the JSON text ``data`` nest (a scalar: 0).

    Exact for valid JSON; for anything else a number that its parser will not care about.
    """
    return max(accumulate(map(_STEP.__getitem__, _brackets(data)), initial=0))


def nests_deeper(data: bytes, limit: int) -> bool:
    """Whether the arrays and objects of the JSON text ``data`` nest deeper than ``limit``."""
    brackets = _brackets(data)
    if brackets.count(b"[") <= limit:
        return False  # too few to nest that deep: most bodies stop here
    # Each pass drops the innermost pairs, so a valid text of depth d is gone after d passes.
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets) and json_depth(data) > limit


async def parse_json_body(request: Request, model: type[M], *, max_depth: int | None = None) -> M:
    """The request's JSON body as ``model``.

    Raises:
        InvalidRequest: The body nests deeper than ``max_depth``.
        RequestValidationError: The body is not JSON, or not a valid ``model``; the error
            locations start with ``"body"``, as FastAPI's do.
        ClientGone: The client went away before the body arrived whole.
    """
    try:
        data = await request.body()
    except ClientDisconnect:
        raise ClientGone("the client went away while sending its request") from None
    if max_depth is not None and nests_deeper(data, max_depth):
        raise InvalidRequest(
            f"the request body nests {json_depth(data)} levels of arrays and objects; "
            f"the limit is {max_depth}",
            code="json_too_deep",
        )
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        errors = [
            {**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from None


def document_bodies(app: FastAPI) -> None:
    """Add the schemas of ``json_body`` models to ``app``'s OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, model in _documented.items():
            schema = model.model_json_schema(ref_template=_COMPONENTS)
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
        _document_errors(spec)
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


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
_PUBLIC = {"/healthz", "/metrics", "/openapi.json", "/docs", "/redoc"}


def _document_errors(spec: dict[str, Any]) -> None:
    """Give every operation the errors any request may get, in graft's error shape.

    FastAPI documents a 422 for validation errors; graft answers them with 400, like
    OpenAI. Authentication, the rate limits and the body limit run before every route but
    the public ones, so their answers belong to every operation too.
    """
    spec["components"]["schemas"]["Error"] = _ERROR_SCHEMA
    ref = {"$ref": _COMPONENTS.format(model="Error")}
    for path, operations in spec.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path in _PUBLIC:
                continue
            for status, description in _ERRORS.items():
                documented = responses.setdefault(status, {"description": description})
                documented["content"] = {"application/json": {"schema": ref}}
    schemas = spec["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
