"""The SQL side of stored assistants: one function per transaction, run by ``SQLStore``.

An assistant created at run time (``graft.assistants``) is one row of
``graft.store.schema.t_assistants``, keyed by tenant and name, its definition a JSON object.
Storing one again replaces its definition and ``updated_at`` in the same statement (an
upsert in each dialect: no read first, so two writers never race into a duplicate key),
and keeps who created it and when.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from graft.store.base import StoredAssistant
from graft.store.schema import t_assistants

__all__ = [
    "decode",
    "delete_assistant",
    "encode",
    "get_assistant",
    "list_assistants",
    "put_assistant",
]

_A = t_assistants.c
_KEY = (_A.tenant == bindparam("b_tenant")) & (_A.name == bindparam("b_name"))


def _upsert(stmt: Any) -> Any:
    """Insert an assistant, or replace the definition and ``updated_at`` of the stored one."""
    return stmt.on_conflict_do_update(
        index_elements=[_A.tenant, _A.name],
        set_={"definition": stmt.excluded.definition, "updated_at": stmt.excluded.updated_at},
    )


_UPSERT = {
    "postgresql": _upsert(postgresql.insert(t_assistants)),
    "sqlite": _upsert(sqlite.insert(t_assistants)),
}
_GET = select(_A.definition).where(_KEY)
_LIST = select(t_assistants).where(_A.tenant == bindparam("b_tenant")).order_by(_A.name)
_DELETE = delete(t_assistants).where(_KEY)


def encode(definition: dict[str, Any]) -> str:
    """A definition as the column keeps it: JSON, keys sorted, text as written."""
    return json.dumps(definition, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def decode(text: str) -> dict[str, Any]:
    """A stored definition as a dict."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("a stored assistant's definition is not a JSON object")
    return value


def put_assistant(conn: Connection, *, tenant: str, name: str, text: str, actor: str) -> None:
    """Create or replace an assistant (write); ``text`` is its ``encode``-d definition."""
    now = datetime.now(UTC)
    conn.execute(
        _UPSERT[conn.dialect.name],
        {
            "tenant": tenant,
            "name": name,
            "definition": text,
            "created_by": actor,
            "created_at": now,
            "updated_at": now,
        },
    )


def get_assistant(conn: Connection, *, tenant: str, name: str) -> dict[str, Any] | None:
    """One assistant's definition (read)."""
    text = conn.execute(_GET, {"b_tenant": tenant, "b_name": name}).scalar()
    return None if text is None else decode(text)


def list_assistants(conn: Connection, *, tenant: str) -> list[StoredAssistant]:
    """A tenant's assistants by name (read)."""
    return [
        StoredAssistant(
            tenant=row.tenant,
            name=row.name,
            definition=decode(row.definition),
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in conn.execute(_LIST, {"b_tenant": tenant})
    ]


def delete_assistant(conn: Connection, *, tenant: str, name: str) -> bool:
    """Delete an assistant (write); whether there was one."""
    return conn.execute(_DELETE, {"b_tenant": tenant, "b_name": name}).rowcount > 0
