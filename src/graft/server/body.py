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

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from graft.errors import ClientGone, InvalidRequest

__all__ = ["add_body_schemas", "json_body", "json_depth", "nests_deeper", "parse_json_body"]

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


def add_body_schemas(spec: dict[str, Any]) -> None:
    """Add the schemas of ``json_body`` models to an OpenAPI document, as FastAPI would."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for name, model in _documented.items():
        schema = model.model_json_schema(ref_template=_COMPONENTS)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
