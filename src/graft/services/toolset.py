"""``OpenAPIToolset``: one service's operations as a ``Toolset`` the agent loop can call.

The toolset joins the pieces of ``graft.services``: the manifest (name, auth, limits), the
document's operations as tools, and the client that calls them. Its network policy is the
installation's (``[network]``) widened by the admin's ``allow_hosts`` and ``allow_ports`` for
this service only, so an intranet API can be reached without opening the intranet to every
other tool. A refusal by the guard is audited (``network.blocked``, naming the service) in
the store of the turn that made the call.

A document in a file is read when the toolset is made, so a broken one stops startup with
a ``ConfigError``. One at a URL is fetched, through the guard, when the tools are first
listed; while it cannot be had, the service offers no tools (logged, tried again after a
minute), and the rest of graft works on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio

from graft.errors import GraftError, ToolNotFound
from graft.netguard import NetworkPolicy, NetworkSettings, OnBlocked, Resolver, audit_blocked
from graft.services.client import ServiceClient
from graft.services.manifest import Manifest, ServiceSettings, service_manifest
from graft.services.openapi import OpenAPIDocument, fetch_document, read_document
from graft.services.operations import Operation, build_operations
from graft.tools.base import ToolDef

if TYPE_CHECKING:
    from graft.context import Context

__all__ = ["OpenAPIToolset"]

log = logging.getLogger(__name__)

RELOAD_AFTER: Final = 60.0
"""Seconds before a document that could not be fetched is tried again."""
_GRACE: Final = 1.0
"""A tool's timeout exceeds the service's own by this much, so the service's message wins."""


def _is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


class OpenAPIToolset:
    """The operations of one OpenAPI service, as tools named ``<service>_<operationId>``."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        document: OpenAPIDocument | None = None,
        spec_url: str | None = None,
        network: NetworkPolicy | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        if (document is None) == (spec_url is None):
            raise ValueError("give a document or a spec_url, not both or neither")
        self.name = manifest.name
        self.manifest = manifest
        self.spec_url = spec_url
        self.policy = (network or NetworkPolicy()).allowing(
            *manifest.allow_hosts, ports=manifest.allow_ports
        )
        self._resolver = resolver
        self._operations: dict[str, Operation] | None = None
        self._client: ServiceClient | None = None
        self._lock = anyio.Lock()
        self._failed_at: float | None = None
        if document is not None:
            self._load(document)

    @classmethod
    def from_settings(
        cls,
        name: str,
        service: ServiceSettings,
        network: NetworkSettings | NetworkPolicy | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> OpenAPIToolset:
        """The toolset of ``[services.NAME]`` (``network``: the installation's policy).

        Raises:
            ConfigError: The manifest or a document file is invalid.
        """
        manifest = service_manifest(name, service, environ=environ)
        policy = network.policy() if isinstance(network, NetworkSettings) else network
        if _is_url(service.spec):
            return cls(manifest, spec_url=service.spec, network=policy)
        return cls(manifest, document=read_document(service.spec), network=policy)

    @property
    def operations(self) -> list[Operation]:
        """The operations offered (empty while a document at a URL is not loaded)."""
        return list((self._operations or {}).values())

    @property
    def base_url(self) -> str | None:
        """Where calls go, once the document is loaded."""
        return None if self._client is None else self._client.base_url

    def _load(self, document: OpenAPIDocument) -> None:
        manifest = self.manifest
        operations = build_operations(
            document,
            self.name,
            include=manifest.include,
            exclude=manifest.exclude,
            description_for_model=manifest.description_for_model,
            timeout=manifest.timeout + _GRACE,
        )
        base_url = document.server_url(manifest.base_url)
        self._client = ServiceClient(manifest, base_url, self.policy, resolver=self._resolver)
        self._operations = {operation.tool.name: operation for operation in operations}

    def _on_blocked(self, ctx: Context) -> OnBlocked | None:
        if ctx.store is None:
            return None
        principal = ctx.principal
        return audit_blocked(
            ctx.store, actor=principal.user_id, tenant=principal.tenant, service=self.name
        )

    async def load(self, ctx: Context) -> bool:
        """Fetch the document at ``spec_url`` if not done yet; whether the tools are ready."""
        if self._operations is not None:
            return True
        async with self._lock:
            if self._operations is not None:
                return True
            if self._failed_at is not None and time.monotonic() - self._failed_at < RELOAD_AFTER:
                return False
            assert self.spec_url is not None
            try:
                document = await fetch_document(
                    self.spec_url,
                    self.policy,
                    on_blocked=self._on_blocked(ctx),
                    resolver=self._resolver,
                    timeout=self.manifest.timeout,
                )
                self._load(document)
            except GraftError as exc:
                self._failed_at = time.monotonic()
                log.error("service %s offers no tools for now: %s", self.name, exc.message)
                return False
            return True

    async def list_tools(self, ctx: Context) -> list[ToolDef]:
        """Every operation's tool (none while the document cannot be had)."""
        if not await self.load(ctx):
            return []
        return [operation.tool for operation in self.operations]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: Context) -> str:
        """Call the operation behind the tool ``name``; the answer's text for the model."""
        operation = (self._operations or {}).get(name) if await self.load(ctx) else None
        if operation is None or self._client is None:
            raise ToolNotFound(f"no tool named {name!r} in service {self.name!r}")
        return await self._client.call(operation, arguments, on_blocked=self._on_blocked(ctx))
