"""Where conversations live: the ``Store`` protocol, the SQL store and the in-memory store."""

from graft.crypto import DataKeys, KeySource
from graft.store.base import ConversationInfo, Store, StoredMessage, ToolRun, TurnInfo

__all__ = ["ConversationInfo", "Store", "StoredMessage", "ToolRun", "TurnInfo", "open_store"]


def open_store(url: str, *, data_keys: DataKeys | KeySource | None = None) -> Store:
    """Return the store for a SQLAlchemy URL (``memory://`` gives the in-memory store).

    ``data_keys`` encrypt contents at rest in a SQL store (``graft.crypto``); the in-memory
    store keeps nothing on disk and needs none.
    """
    if url == "memory://":
        from graft.store.memory import MemoryStore

        return MemoryStore()
    from graft.store.sql import SQLStore

    return SQLStore(url, data_keys=data_keys)
