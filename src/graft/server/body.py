"""JSON request bodies that a route parses itself, and their place in the OpenAPI document.

FastAPI parses a declared body model in two steps (``json.loads``, then validation of the
Python objects) inside its dependency resolution. ``parse_json_body`` hands the raw bytes to
pydantic, which reads and validates the JSON in one pass, and raises the same
``RequestValidationError`` FastAPI would, so errors keep their OpenAI-style shape
(``graft.server.errors``). ``json_body`` documents such a body for the route's
``openapi_extra``, and ``document_bodies`` adds the models' schemas to the app's OpenAPI
components, where FastAPI would have put them.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

__all__ = ["document_bodies", "json_body", "parse_json_body"]

M = TypeVar("M", bound=BaseModel)

_COMPONENTS = "#/components/schemas/{model}"
_documented: dict[str, type[BaseModel]] = {}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route whose JSON body is ``model``."""
    _documented[model.__name__] = model
    schema = {"$ref": _COMPONENTS.format(model=model.__name__)}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


async def parse_json_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model``.

    Raises:
        RequestValidationError: The body is not JSON, or not a valid ``model``; the error
            locations start with ``"body"``, as FastAPI's do.
    """
    try:
        return model.model_validate_json(await request.body())
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
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
