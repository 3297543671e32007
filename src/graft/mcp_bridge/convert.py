"""Translating between MCP's tool shapes and graft's: names, hints, results.

- **Names.** A mounted tool is called ``<prefix>_<tool>``, made to fit the names models
  accept (``^[A-Za-z0-9_-]{1,64}$``): other characters become ``_``; a name too long, or one
  that would collide with another after that, keeps a short hash of the original.
- **Hints.** An MCP tool's ``readOnlyHint`` and ``destructiveHint`` are claims by the server,
  which may be wrong or lying. graft counts a mounted tool as ``read_only`` (so it runs
  without approval after untrusted input, ``graft.approvals``) only when the admin set
  ``trust_hints`` for that server, the tool claims ``readOnlyHint`` and does not claim
  ``destructiveHint``. Anything else is a tool with side effects, the safe default.
- **Results.** Text blocks are the result; with none, the structured content as JSON. Images,
  audio and binary resources are summarised (type and size), never passed on as base64 the
  model cannot read; embedded text resources keep their text. ``isError`` becomes a
  ``ToolError`` carrying the server's message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import mcp_types as types

from graft.errors import ToolError
from graft.tools.base import ToolDef

__all__ = ["implementation", "is_read_only", "result_text", "tool_defs", "tool_name"]

_MAX_NAME = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(prefix: str, remote: str) -> str:
    """``<prefix>_<remote>``, sanitised; a long name keeps a hash of the original."""
    name = f"{prefix}_{_UNSAFE.sub('_', remote)}"
    if len(name) <= _MAX_NAME:
        return name
    return f"{name[: _MAX_NAME - 9]}_{_digest(remote)}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def is_read_only(tool: types.Tool, *, trust_hints: bool) -> bool:
    """Whether graft treats ``tool`` as read-only: only on trusted, consistent hints."""
    hints = tool.annotations
    if not trust_hints or hints is None:
        return False
    return hints.read_only_hint is True and hints.destructive_hint is not True


def tool_defs(
    prefix: str, tools: Iterable[types.Tool], *, trust_hints: bool, timeout: float
) -> tuple[list[ToolDef], dict[str, str]]:
    """Definitions of ``tools`` for graft, and the remote name behind each graft name."""
    definitions: list[ToolDef] = []
    remote_names: dict[str, str] = {}
    for tool in tools:
        name = tool_name(prefix, tool.name)
        if name in remote_names:  # "a.b" and "a_b" would share a name
            name = f"{name[: _MAX_NAME - 9]}_{_digest(tool.name)}"
        if name in remote_names:
            continue
        remote_names[name] = tool.name
        schema = dict(tool.input_schema) if tool.input_schema else {}
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        definitions.append(
            ToolDef(
                name=name,
                description=tool.description or tool.title or "",
                parameters=schema,
                timeout=timeout,
                read_only=is_read_only(tool, trust_hints=trust_hints),
            )
        )
    return definitions, remote_names


def result_text(result: types.CallToolResult) -> str:
    """The text the model reads for ``result``; raises ``ToolError`` for ``isError``."""
    parts = [_block_text(block) for block in result.content]
    texts = [part for part in parts if part]
    has_text = any(isinstance(block, types.TextContent) for block in result.content)
    if not has_text and result.structured_content is not None:
        texts.insert(0, json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(texts)
    if result.is_error:
        raise ToolError(text or "the MCP server reported an error without a message")
    return text


def _block_text(block: Any) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        return f"[{block.type}: {block.mime_type}, {_decoded_size(block.data)} bytes]"
    if isinstance(block, types.ResourceLink):
        mime = f", {block.mime_type}" if block.mime_type else ""
        return f"[resource link: {block.name} <{block.uri}>{mime}]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return f"[resource <{resource.uri}>]\n{resource.text}"
        mime = resource.mime_type or "binary"
        return f"[resource <{resource.uri}>: {mime}, {_decoded_size(resource.blob)} bytes]"
    return f"[{getattr(block, 'type', 'unknown')} content]"


def _decoded_size(base64_text: str) -> int:
    """Bytes that a base64 string decodes to, without decoding it."""
    padding = base64_text[-2:].count("=")
    return max(len(base64_text) * 3 // 4 - padding, 0)


def implementation() -> types.Implementation:
    """How graft introduces itself to MCP peers: its name and installed version."""
    try:
        installed = version("graft")
    except PackageNotFoundError:
        installed = "0"
    return types.Implementation(name="graft", version=installed)
