"""Who is asking, and for what: the principal and the per-turn context object.

Every tool, middleware and model call receives a ``Context``. Identity is never a global:
a tool that needs the user reads ``ctx.principal``, and the security layers deepen this
object rather than adding side channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graft.config import AssistantSettings, Settings
from graft.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from graft.models.base import Model
    from graft.store.base import Store
    from graft.voice.video import FrameStore

__all__ = ["Context", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated identity: user id, roles, groups and tenant."""

    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    groups: frozenset[str] = field(default_factory=frozenset)
    tenant: str = "default"
    key_id: str | None = field(default=None, compare=False)
    """Public id of the API key the request came with, for per-key rate limits; not compared:
    two keys of one user are the same principal."""

    def has_any_role(self, roles: list[str] | frozenset[str]) -> bool:
        """True when the principal holds at least one of ``roles``."""
        return not self.roles.isdisjoint(roles)


@dataclass(slots=True)
class Context:
    """Everything a tool or middleware may know about the turn it runs in."""

    principal: Principal
    settings: Settings
    assistant_name: str
    assistant: AssistantSettings
    conversation_id: str | None = None
    turn_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    """Scratch space that middleware and tools of one turn may share."""
    store: Store | None = None
    """Where the turn is stored, for plugins that keep what they learn with it."""
    get_model: Callable[[str], Model] | None = field(default=None, repr=False, compare=False)
    """The process's models by id (``openai:gpt-4o-mini``), for plugins that call one."""
    frames: FrameStore | None = field(default=None, repr=False, compare=False)
    """The latest camera frames of the process's calls (``graft.voice.video``), for ``look``;
    None outside a turn, where no call can be."""

    def plugin_config(self, plugin: str, *, known: Collection[str] | None = None) -> dict[str, Any]:
        """Settings of one plugin: ``[plugins.NAME]``, then the assistant's own on top.

        An assistant's ``[assistants.NAME.plugins.PLUGIN]`` table overrides the global
        values key by key. With ``known``, a key outside it raises ``ConfigError`` (a typo
        must not silently turn a feature off).
        """
        config = self.settings.plugin_config(plugin)
        config.update(self.assistant.plugins.get(plugin, {}))
        unknown = sorted(set(config) - set(known)) if known is not None else []
        if unknown:
            names = ", ".join(sorted(known or ()))
            raise ConfigError(f"unknown setting plugins.{plugin}.{unknown[0]} (known: {names})")
        return config
