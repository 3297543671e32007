"""Registers ``search_knowledge`` (``graft.knowledge.toolset``) for assistants with collections.

The toolset offers its tool only to assistants whose settings name ``collections``, and opens
the index in the store on the first search, so an installation without documents pays
nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable

from graft.config import Settings
from graft.hookspecs import hookimpl


@hookimpl
def register_tools(register: Callable[..., None], settings: Settings) -> None:
    """Register the knowledge toolset when an assistant names collections."""
    if not any(a.collections for a in settings.assistants.values()):
        return
    from graft.knowledge.toolset import KnowledgeToolset

    register(KnowledgeToolset())
