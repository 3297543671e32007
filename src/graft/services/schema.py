"""``$ref`` resolution and OpenAPI schemas turned into the JSON schemas a model reads.

A tool's parameters must be one finite JSON schema, while an OpenAPI document may point
anywhere in itself, recursively (a category whose ``children`` are categories) or
exponentially (``A`` uses ``B`` twice, ``B`` uses ``C`` twice, ...). So ``$ref`` is expanded
here, bounded, rather than with a lazy resolver such as ``jsonref`` (whose proxies make a
recursive schema an endless one that would still need bounding to be sent):

- only references inside the document (``#/components/...``) are followed: an external one
  (``other.yaml#/X``, ``https://...``) is refused, since following it would be a fetch
  outside the network guard and outside the admin's choice of document;
- a reference already being expanded (a cycle) becomes a short placeholder that names it;
- every schema has a budget of nodes and a depth; past them, a placeholder too.

Only keywords a model and its constrained decoder understand are kept (types, properties,
``required``, ``enum``, descriptions, bounds, formats, combinators); OpenAPI 3.0's
``nullable`` becomes a ``"null"`` type, as in 3.1.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

from graft.errors import ConfigError

__all__ = ["MAX_DEPTH", "MAX_NODES", "RefResolver", "to_json_schema"]

MAX_NODES: Final = 2000
"""Schema objects one tool's parameters may hold; the rest become placeholders."""
MAX_DEPTH: Final = 24
"""Nesting of schemas below which only a placeholder is given."""
_MAX_HOPS: Final = 32
"""``$ref`` to ``$ref`` to ...: a longer chain is a loop."""

_KEEP: Final = frozenset(
    {
        "type",
        "enum",
        "const",
        "description",
        "format",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "required",
    }
)
_ONE: Final = frozenset({"items", "not", "contains", "additionalProperties"})
_MANY: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_BY_NAME: Final = frozenset({"properties", "patternProperties"})


class RefResolver:
    """Looks up local ``$ref`` pointers in one document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document

    def lookup(self, ref: object) -> Any:
        """The value ``ref`` (``#/components/schemas/Item``) points at.

        Raises:
            ConfigError: ``ref`` is external, malformed, or points at nothing.
        """
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise ConfigError(
                f"$ref {ref!r} points outside the document; graft follows only local "
                "references (#/...): bundle the document into one file first"
            )
        node: Any = self.document
        for part in filter(None, ref[1:].split("/")):
            key = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise ConfigError(f"$ref {ref!r} points at nothing in the document")
        return node

    def deref(self, node: Any) -> Any:
        """``node`` itself, or what its chain of ``$ref`` ends at (parameters, bodies)."""
        for _ in range(_MAX_HOPS):
            if not (isinstance(node, Mapping) and "$ref" in node):
                return node
            node = self.lookup(node["$ref"])
        raise ConfigError("a chain of $ref points at itself")


def _plain(value: Any) -> Any:
    """``value`` as JSON data (YAML may give dates, or keys that are not strings)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1] or ref


class _Converter:
    def __init__(self, resolver: RefResolver, budget: int) -> None:
        self.resolver = resolver
        self.budget = budget

    def convert(self, node: Any, stack: tuple[str, ...], depth: int) -> dict[str, Any]:
        self.budget -= 1
        if self.budget < 0 or depth > MAX_DEPTH:
            return {"description": "(nested further; not shown)"}
        if not isinstance(node, Mapping):
            return {} if node is not False else {"not": {}}
        if "$ref" in node:
            return self._ref(node, stack, depth)
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _BY_NAME and isinstance(value, Mapping):
                out[key] = {
                    str(name): self.convert(sub, stack, depth + 1) for name, sub in value.items()
                }
            elif key in _ONE and isinstance(value, Mapping | bool):
                out[key] = (
                    value if isinstance(value, bool) else self.convert(value, stack, depth + 1)
                )
            elif key in _MANY and isinstance(value, list):
                out[key] = [self.convert(sub, stack, depth + 1) for sub in value]
            elif key in _KEEP:
                out[key] = _plain(value)
        if node.get("nullable") is True:
            _allow_null(out)
        return out

    def _ref(self, node: Mapping[str, Any], stack: tuple[str, ...], depth: int) -> dict[str, Any]:
        ref = node["$ref"]
        target = self.resolver.lookup(ref)
        if ref in stack:
            placeholder: dict[str, Any] = {
                "description": f"a {_ref_name(ref)} again (recursive; not expanded further)"
            }
            if isinstance(target, Mapping) and isinstance(target.get("type"), str):
                placeholder["type"] = target["type"]
            return placeholder
        out = self.convert(target, (*stack, ref), depth + 1)
        if isinstance(node.get("description"), str):  # 3.1: siblings of $ref apply too
            out = {**out, "description": node["description"]}
        return out


def _allow_null(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]


def to_json_schema(
    node: Any, resolver: RefResolver, *, budget: int = MAX_NODES
) -> tuple[dict[str, Any], int]:
    """``node`` (an OpenAPI schema) as a finite JSON schema, and the budget left after it.

    Raises:
        ConfigError: A ``$ref`` is external or points at nothing.
    """
    converter = _Converter(resolver, budget)
    schema = converter.convert(node, (), 0)
    return schema, converter.budget
