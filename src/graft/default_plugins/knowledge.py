"""Registers ``search_knowledge`` (``graft.knowledge.toolset``): document collections.

The toolset offers its tool only to assistants whose settings name ``collections``, and opens
the index in the store on the first search, so an installation without documents pays
nothing for it. It is registered always: an assistant created at run time
(``graft.assistants``) may name collections long after the plugins were loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from graft.hookspecs import hookimpl


@hookimpl
def register_tools(register: Callable[..., None]) -> None:
    """Register the knowledge toolset."""
    from graft.knowledge.toolset import KnowledgeToolset

    register(KnowledgeToolset())
