"""The operations of an OpenAPI document as tools: names, descriptions, argument schemas.

Each operation becomes an ``Operation``: a ``ToolDef`` whose name is the operationId
(sanitised to ``^[A-Za-z0-9_-]{1,64}$``, prefixed with the service name, made unique), whose
description is the summary and the description (the service's description for the model
after them), and whose parameters are one JSON schema: one property per path, query and
header parameter, with its description, enum and ``required`` kept, and ``body`` for a JSON
request body; every ``$ref`` expanded (``graft.services.schema``). ``read_only`` is true for
GET, HEAD and OPTIONS only: any other call needs the user's approval once the turn has read
untrusted content. The ``Operation`` also keeps where each argument goes on the wire, for
``graft.services.client``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from graft.services.openapi import METHODS, OpenAPIDocument, operation_parameters
from graft.services.schema import MAX_NODES, RefResolver, to_json_schema
from graft.tools.base import ToolDef

__all__ = ["Operation", "Parameter", "build_operations"]

log = logging.getLogger(__name__)

_READ_ONLY: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_IGNORED_HEADERS: Final = frozenset(
    {"accept", "content-type", "authorization", "host", "content-length", "transfer-encoding"}
    | {"connection", "cookie", "accept-encoding"}
)
"""Header parameters never offered: OpenAPI says to ignore the first three, and graft or
httpx sets the others (a model choosing ``Host`` or ``Content-Length`` is asking for trouble)."""
_NOT_A_NAME: Final = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_DESCRIPTION: Final = 1024

Location = Literal["path", "query", "header"]


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter: its property in the tool's arguments, its name and place on the wire."""

    prop: str
    name: str
    location: Location
    required: bool
    explode: bool = True
    """For query arrays: ``?a=1&a=2`` (true) or ``?a=1,2``."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of the document, as a tool."""

    tool: ToolDef
    method: str
    path: str
    """The path template, ``/items/{item_id}``."""
    parameters: tuple[Parameter, ...] = ()
    body_prop: str | None = None
    """The property that holds the JSON request body, if the operation takes one."""

    @property
    def idempotent(self) -> bool:
        """Whether repeating the call is safe (GET, HEAD, OPTIONS, PUT, DELETE)."""
        return self.method in _IDEMPOTENT


def _tool_name(service: str, base: str, taken: set[str]) -> str:
    clean = _NOT_A_NAME.sub("_", base).strip("_")
    stem = f"{service}_{clean}"[:64] if clean else service
    name, n = stem, 1
    while name in taken:
        n += 1
        suffix = f"_{n}"
        name = stem[: 64 - len(suffix)] + suffix
    taken.add(name)
    return name


def _selected(
    operation_id: str, method: str, path: str, include: Sequence[str], exclude: Sequence[str]
) -> bool:
    keys = [k for k in (operation_id, f"{method.upper()} {path}") if k]

    def matches(patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatchcase(key, pattern) for key in keys for pattern in patterns)

    return (not include or matches(include)) and not matches(exclude)


def _description(operation: Mapping[str, Any], method: str, path: str, service_note: str) -> str:
    parts = [str(operation[k]).strip() for k in ("summary", "description") if operation.get(k)]
    text = "\n\n".join(dict.fromkeys(p for p in parts if p)) or f"{method} {path}"
    if operation.get("deprecated") is True:
        text = f"(deprecated) {text}"
    if len(text) > _MAX_DESCRIPTION:
        text = text[: _MAX_DESCRIPTION - 1] + "…"
    return f"{text}\n\n{service_note}" if service_note else text


def _json_media(content: Any) -> Any:
    """The schema of the JSON media type of a ``content`` map, or ``None``."""
    if not isinstance(content, Mapping):
        return None
    for media, value in content.items():
        kind = str(media).split(";", 1)[0].strip().lower()
        if kind == "application/json" or kind.endswith("+json"):
            return value.get("schema", {}) if isinstance(value, Mapping) else {}
    return None


def build_operations(
    document: OpenAPIDocument,
    service: str,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    description_for_model: str = "",
    timeout: float | None = None,
) -> list[Operation]:
    """Every selected operation of ``document`` as an ``Operation``, in document order.

    Operations whose request body must be something other than JSON are left out (logged).
    ``timeout`` becomes each tool's timeout.
    """
    resolver = RefResolver(document.data)
    note = f"(Service {service}: {description_for_model.strip()})" if description_for_model else ""
    taken: set[str] = set()
    operations: list[Operation] = []
    for path, raw_item in document.data.get("paths", {}).items():
        item = resolver.deref(raw_item)
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping):
                continue
            operation_id = str(operation.get("operationId") or "")
            if not _selected(operation_id, method, path, include, exclude):
                continue
            built = _operation(
                document, resolver, service, path, method, item, operation, taken, note, timeout
            )
            if built is not None:
                operations.append(built)
    return operations


def _operation(
    document: OpenAPIDocument,
    resolver: RefResolver,
    service: str,
    path: str,
    method: str,
    item: Mapping[str, Any],
    operation: Mapping[str, Any],
    taken: set[str],
    note: str,
    timeout: float | None,
) -> Operation | None:
    where = f"{document.origin}: {method.upper()} {path}"
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[Parameter] = []
    budget = MAX_NODES
    for param in operation_parameters(item, operation, resolver, where):
        location = param["in"]
        if location == "cookie" or (
            location == "header" and param["name"].lower() in _IGNORED_HEADERS
        ):
            continue
        prop = param["name"] if param["name"] not in properties else f"{location}_{param['name']}"
        raw_schema = param.get("schema")
        if raw_schema is None:
            raw_schema = _json_media(param.get("content")) or {}
        schema, budget = to_json_schema(raw_schema, resolver, budget=budget)
        if param.get("description"):
            schema["description"] = str(param["description"])
        properties[prop] = schema
        is_required = location == "path" or param.get("required") is True
        if is_required:
            required.append(prop)
        explode = param.get("explode", param.get("style", "form") == "form") is not False
        params.append(Parameter(prop, param["name"], location, is_required, explode))
    body_prop: str | None = None
    body = resolver.deref(operation.get("requestBody"))
    if isinstance(body, Mapping):
        body_schema = _json_media(body.get("content"))
        if body_schema is None:
            if body.get("required") is True:
                log.info("%s: leaving out an operation whose body is not JSON", where)
                return None
        else:
            body_prop = "body" if "body" not in properties else "request_body"
            schema, budget = to_json_schema(body_schema, resolver, budget=budget)
            if body.get("description"):
                schema["description"] = str(body["description"])
            properties[body_prop] = schema
            if body.get("required") is True:
                required.append(body_prop)
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        parameters["required"] = required
    name = _tool_name(
        service, str(operation.get("operationId") or f"{method}_{path.strip('/')}"), taken
    )
    description = _description(operation, method.upper(), path, note)
    tool = ToolDef(name, description, parameters, timeout, method.upper() in _READ_ONLY)
    return Operation(tool, method.upper(), path, tuple(params), body_prop)
