"""Where conversations live: the ``Store`` protocol, the SQL store and the in-memory store."""

from graft.store.base import ConversationInfo, Store, StoredMessage, ToolRun, TurnInfo

__all__ = ["ConversationInfo", "Store", "StoredMessage", "ToolRun", "TurnInfo", "open_store"]


def open_store(url: str) -> Store:
    """Return the store for a SQLAlchemy URL (``memory://`` gives the in-memory store)."""
    if url == "memory://":
        from graft.store.memory import MemoryStore

        return MemoryStore()
    from graft.store.sql import SQLStore

    return SQLStore(url)
