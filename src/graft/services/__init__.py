"""Service plugins: HTTP APIs described by OpenAPI 3.x, offered to the model as tools.

An admin registers a service with a document and a small manifest (``graft plugins
add-openapi``, or ``[services.NAME]`` in the settings); each operation becomes a tool, and
each call goes through the network guard with the service's own limits. The modules, in the
order a call meets them:

- ``manifest``: the manifest and ``ServiceSettings`` (name, auth, limits; secrets by reference);
- ``openapi``: loading a document (file or URL) and checking it;
- ``operations``: its operations as tool definitions, with where each argument goes;
- ``schema``: bounded ``$ref`` expansion into the JSON schemas a model reads;
- ``client`` and ``auth``: the call (URL, retries, timeouts, credentials, OAuth2 tokens);
- ``body``: reading the answer within a cap, counted after decompression, cut for the model;
- ``toolset``: ``OpenAPIToolset``, the ``Toolset`` that joins them.

``graft.config`` imports ``ServiceSettings`` from ``graft.services.manifest``, which imports
nothing of the settings; so this package imports its modules when a name is first used,
not when it is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graft.services.manifest import (
        Manifest,
        ServiceSettings,
        load_manifest,
        service_manifest,
    )
    from graft.services.openapi import (
        OpenAPIDocument,
        fetch_document,
        parse_document,
        read_document,
    )
    from graft.services.operations import Operation, build_operations
    from graft.services.toolset import OpenAPIToolset

__all__ = [
    "Manifest",
    "OpenAPIDocument",
    "OpenAPIToolset",
    "Operation",
    "ServiceSettings",
    "build_operations",
    "fetch_document",
    "load_manifest",
    "parse_document",
    "read_document",
    "service_manifest",
]

_HOMES = {
    "Manifest": "manifest",
    "ServiceSettings": "manifest",
    "load_manifest": "manifest",
    "service_manifest": "manifest",
    "OpenAPIDocument": "openapi",
    "fetch_document": "openapi",
    "parse_document": "openapi",
    "read_document": "openapi",
    "Operation": "operations",
    "build_operations": "operations",
    "OpenAPIToolset": "toolset",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use (``graft.config`` imports ``.manifest`` early)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
