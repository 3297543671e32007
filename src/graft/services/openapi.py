"""OpenAPI 3.x documents: loading one from a file or a URL, and checking it.

A document comes from a file (JSON, or YAML with PyYAML installed) or from a URL, fetched
through ``graft.netguard`` like every other outbound call, within ``MAX_DOCUMENT_BYTES``. It
is checked for what graft relies on (an ``openapi: 3.x`` field, paths and operations of the
right shapes, parameters with a name and a place, path parameters that match their
templates), with messages that name the place. A full validator (``openapi-spec-validator``)
would add a tree of dependencies, and would fetch remote references itself, outside the
guard. ``graft.services.operations`` turns the operations into tools.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from graft.errors import ConfigError, NetworkBlocked, ToolError
from graft.netguard import NetworkPolicy, OnBlocked, Resolver, check_url, guarded_client
from graft.services.body import ACCEPT_ENCODING, read_decoded
from graft.services.schema import RefResolver

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "METHODS",
    "OpenAPIDocument",
    "fetch_document",
    "operation_parameters",
    "parse_document",
    "read_document",
]

MAX_DOCUMENT_BYTES: Final = 8 * 1024 * 1024
METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch")
"""Methods whose operations become tools (``trace`` never does)."""
_TEMPLATE: Final = re.compile(r"\{([^{}/]+)\}")


@dataclass(frozen=True, slots=True)
class OpenAPIDocument:
    """A checked OpenAPI 3.x document and where it came from."""

    data: Mapping[str, Any]
    origin: str
    """A file path or the URL it was fetched from."""

    @property
    def title(self) -> str:
        """``info.title``, or ``""``."""
        info = self.data.get("info")
        return str(info.get("title", "")) if isinstance(info, Mapping) else ""

    def server_url(self, override: str | None = None) -> str:
        """The base URL calls go to: ``override``, else the first of ``servers``.

        Server variables take their defaults; a relative server URL is resolved against the
        document's URL.

        Raises:
            ConfigError: There is no usable server URL.
        """
        if override:
            return override.rstrip("/")
        servers = self.data.get("servers")
        first = servers[0] if isinstance(servers, list) and servers else None
        url = first.get("url") if isinstance(first, Mapping) else None
        if not isinstance(url, str) or not url:
            url = "/"
        for name, variable in (first or {}).get("variables", {}).items():
            if isinstance(variable, Mapping) and "default" in variable:
                url = url.replace("{" + str(name) + "}", str(variable["default"]))
        if "://" not in url:
            if not self.origin.startswith(("http://", "https://")):
                raise ConfigError(
                    f"{self.origin}: the document's server URL {url!r} is relative; "
                    "set base_url in the manifest"
                )
            url = str(httpx.URL(self.origin).join(url))
        return url.rstrip("/")


# --- loading -------------------------------------------------------------------------------


def parse_document(content: bytes | str, origin: str) -> OpenAPIDocument:
    """Parse and check a document (JSON, or YAML when PyYAML is installed).

    Raises:
        ConfigError: It is not a well-formed OpenAPI 3.x document.
    """
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    stripped = text.lstrip()
    data: Any
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{origin}: not valid JSON: {exc}") from None
    else:
        data = _load_yaml(text, origin)
    _check_document(data, origin)
    return OpenAPIDocument(data, origin)


def _load_yaml(text: str, origin: str) -> Any:
    try:
        yaml = importlib.import_module("yaml")  # optional: the `services` extra
    except ImportError:
        raise ConfigError(
            f"{origin}: the document is not JSON; YAML needs PyYAML (pip install 'graft[services]')"
        ) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML or JSON: {exc}") from None


def read_document(path: Path | str) -> OpenAPIDocument:
    """Read and check the document in the file ``path``."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            content = file.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the OpenAPI document {str(path)!r}: {exc.strerror}"
        ) from None
    if len(content) > MAX_DOCUMENT_BYTES:
        raise ConfigError(f"{path}: the document is over {MAX_DOCUMENT_BYTES // 2**20} MiB")
    return parse_document(content, str(path))


async def fetch_document(
    url: str,
    policy: NetworkPolicy,
    *,
    on_blocked: OnBlocked | None = None,
    resolver: Resolver | None = None,
    timeout: float = 15.0,  # noqa: ASYNC109 (handed to httpx)
) -> OpenAPIDocument:
    """Fetch ``url`` through the network guard and check the document.

    Raises:
        NetworkBlocked: ``policy`` refuses the URL.
        ConfigError: The fetch failed, or the answer is not a well-formed document.
    """
    try:
        target = check_url(url, policy)
    except NetworkBlocked as exc:
        if on_blocked is not None:
            await on_blocked(exc)
        raise
    where = f"{target.scheme}://{target.host}{target.path}"  # no query: it may hold a token
    async with guarded_client(
        policy, on_blocked=on_blocked, resolver=resolver, timeout=timeout
    ) as client:
        try:
            headers = {"Accept": "application/json, application/yaml, */*"}
            headers["Accept-Encoding"] = ACCEPT_ENCODING
            async with client.stream("GET", target, headers=headers) as response:
                if not response.is_success:
                    raise ConfigError(f"{where}: HTTP {response.status_code}")
                content, complete = await read_decoded(response, MAX_DOCUMENT_BYTES)
        except httpx.HTTPError as exc:
            raise ConfigError(f"cannot fetch {where}: {type(exc).__name__}") from None
        except ToolError as exc:
            raise ConfigError(f"{where}: {exc.message}") from None
    if not complete:
        raise ConfigError(f"{where}: the document is over {MAX_DOCUMENT_BYTES // 2**20} MiB")
    return parse_document(content, url)


# --- checking ------------------------------------------------------------------------------


def _check_document(data: Any, origin: str) -> None:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{origin}: an OpenAPI document is a JSON object")
    version = data.get("openapi")
    if "swagger" in data:
        raise ConfigError(f"{origin}: Swagger 2.0 is not supported; convert it to OpenAPI 3")
    if not isinstance(version, str) or not version.startswith("3."):
        raise ConfigError(f"{origin}: 'openapi' must be a 3.x version, not {version!r}")
    paths = data.get("paths", {})
    if not isinstance(paths, Mapping):
        raise ConfigError(f"{origin}: 'paths' must be an object")
    resolver = RefResolver(data)
    for path, item in paths.items():
        where = f"{origin}: paths.{path}"
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"{where}: a path starts with '/'")
        item = resolver.deref(item)
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: a path item is an object")
        for method in METHODS:
            if method in item:
                operation = item[method]
                if not isinstance(operation, Mapping):
                    raise ConfigError(f"{where}.{method}: an operation is an object")
                _check_parameters(
                    path, operation_parameters(item, operation, resolver, where), where
                )


def operation_parameters(
    item: Mapping[str, Any], operation: Mapping[str, Any], resolver: RefResolver, where: str
) -> list[Mapping[str, Any]]:
    """Path-level parameters overridden by the operation's own, by name and place."""
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for source in (item.get("parameters", []), operation.get("parameters", [])):
        if not isinstance(source, list):
            raise ConfigError(f"{where}: 'parameters' must be a list")
        for raw in source:
            param = resolver.deref(raw)
            if not (
                isinstance(param, Mapping)
                and isinstance(param.get("name"), str)
                and param.get("in") in ("path", "query", "header", "cookie")
            ):
                raise ConfigError(f"{where}: a parameter needs a 'name' and an 'in'")
            merged[(param["name"], param["in"])] = param
    return list(merged.values())


def _check_parameters(path: str, params: Sequence[Mapping[str, Any]], where: str) -> None:
    declared = {p["name"] for p in params if p["in"] == "path"}
    used = set(_TEMPLATE.findall(path))
    if declared != used:
        raise ConfigError(
            f"{where}: path parameters {sorted(declared)} do not match the template's "
            f"{sorted(used)}"
        )
