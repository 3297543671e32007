"""``[mcp_servers.NAME]``: how one MCP server is reached, named and trusted.

A server is either a command graft starts and talks to over stdio (``command``, ``args``,
``env``, ``cwd``) or a streamable-HTTP endpoint (``url``, ``headers``); which one follows from
the field that is set. Values of ``env`` and ``headers`` may be secret references
(``{ "$env" = "NAME" }``, ``graft.secrets``), resolved when the settings load; they are kept
as ``SecretStr`` so no dump or repr shows them. This module imports neither the ``mcp`` SDK
nor the rest of graft's settings, so ``graft.config`` can use it whether or not the ``mcp``
extra is installed.

```toml
[mcp_servers.files]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/shared"]
trust_hints = true                # believe its readOnlyHint annotations

[mcp_servers.wiki]
url = "http://wiki.corp:8000/mcp"
headers = { Authorization = { "$env" = "WIKI_MCP_TOKEN" } }
allow_hosts = ["wiki.corp"]       # an intranet host the network guard lets through
exclude = ["delete_*"]
```
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from graft.errors import ConfigError
from graft.netguard import AllowHosts
from graft.secrets import is_reference

__all__ = ["PREFIX_PATTERN", "MCPServerSettings"]

PREFIX_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
"""A prefix leaves room for the tool's own name within the 64 characters models accept."""


class MCPServerSettings(BaseModel):
    """One MCP server mounted as a toolset; its tools are named ``<prefix>_<tool>``."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(
        default=None, description="Program to start; graft talks to it over stdio."
    )
    args: list[str] = Field(default_factory=list, description="Arguments of `command`.")
    env: dict[str, SecretStr] = Field(
        default_factory=dict,
        repr=False,
        description="Environment of the started program, over a minimal inherited one "
        "(PATH, HOME, ...: never graft's own keys); values may be secret references.",
    )
    cwd: Path | None = Field(default=None, description="Working folder of the program.")
    url: str | None = Field(
        default=None, description="Streamable-HTTP endpoint (`https://host/mcp`)."
    )
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        repr=False,
        description="HTTP headers sent with every request (`Authorization`); values may be "
        "secret references, and credentials should be.",
    )
    allow_hosts: AllowHosts = Field(
        default_factory=list,
        description="Private hosts or CIDRs this server may be reached at, on top of "
        "`network.allow_hosts` (the URL's own port is always allowed).",
    )
    prefix: str | None = Field(
        default=None,
        pattern=PREFIX_PATTERN,
        description="Start of its tools' names; defaults to the server's name.",
    )
    timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds each call may take; the call that restarts a stopped server "
        "spends its start-up within it too.",
    )
    start_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds to start (or reach) the server and list its tools; a stdio "
        "server run with `npx` or `uvx` may install itself the first time.",
    )
    trust_hints: bool = Field(
        default=False,
        description="Believe the server's readOnlyHint: a tool it marks read-only (and not "
        "destructive) then runs without approval after untrusted input. Off, every tool of "
        "the server counts as one with side effects.",
    )
    include: list[str] | None = Field(
        default=None,
        description="The server's tools to offer, by name or glob (`search_*`); None: all.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="The server's tools never offered (globs too)."
    )
    assistants: list[str] | None = Field(
        default=None,
        description="Assistants that see this server's tools; None: every assistant whose "
        "`tools` list allows them.",
    )

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """``stdio`` for a command, ``http`` for a URL."""
        return "stdio" if self.command is not None else "http"

    @field_validator("env", "headers", mode="before")
    @classmethod
    def _references_resolved(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                if is_reference(item):
                    raise ValueError(
                        f"{key}: the secret reference was not resolved; it is resolved when "
                        "the settings load (graft.config)"
                    )
        return value

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"{value!r} is not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://host/mcp")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("set either `command` (stdio) or `url` (streamable HTTP)")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("`args`, `env` and `cwd` belong to a `command`, not a `url`")
        if self.command is not None and (self.headers or self.allow_hosts):
            raise ValueError("`headers` and `allow_hosts` belong to a `url`, not a `command`")
        return self

    def prefix_for(self, name: str) -> str:
        """The prefix of its tools: ``prefix``, or the server's ``name`` made name-safe."""
        if self.prefix is not None:
            return self.prefix
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:32]
        if not safe:
            raise ConfigError(f"mcp_servers.{name}: give the server a `prefix`")
        return safe
