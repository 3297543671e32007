"""Which columns the SQL store encrypts at rest, what binds each value, and re-encrypting them.

``graft.crypto`` owns the cipher, the keys and the sealed form; this module owns the list of
columns that hold user content, so that writing, reading and ``graft keys rotate-data-key``
agree on it. A value's context (its associated data) is ``<table>.<column>/<owner>``, the
owner being the id that decides who may read the row: the conversation's. A new table whose
columns must stay private (a plugin's or a data source's credentials) is added to
``ENCRYPTED_TABLES`` with the column that names its owner; the store encrypts and decrypts it
with ``seal`` and ``reveal``, and rotation re-encrypts it with the rest.

Titles are encrypted like the messages they come from (a title is the start of the first
user message, or what its owner renamed it to), and so are the comments users give with
their ratings of turns (their conversation owns them) and the passages each turn's answer
cited (``turns.citations``: document titles and text, ``graft.store.turn_citations``). Not
encrypted: ids, roles, tool names and call ids, model names, timestamps, token counts,
ratings, and ``turns.error``, which holds graft's and the upstream's error messages.

Re-encryption goes through a table in primary-key order, a batch of rows per write
transaction. Each value that is in plaintext or sealed with another key than the newest is
decrypted and sealed again; the ``UPDATE`` names the old value too, so a value that changed
meanwhile (a title set by a turn) is left to that turn's own write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Column, Table, bindparam, func, select, update
from sqlalchemy.engine import Connection, Engine

from graft.crypto import DataKeys, is_sealed, key_id_of, looks_damaged
from graft.errors import DataIntegrityError
from graft.store.schema import t_conversations, t_feedback, t_messages, t_tool_runs, t_turns

__all__ = [
    "CONVERSATIONS",
    "ENCRYPTED_TABLES",
    "FEEDBACK",
    "MESSAGES",
    "TOOL_RUNS",
    "TURNS",
    "Batch",
    "ColumnCounts",
    "EncryptedTable",
    "Reencrypted",
    "compact_sqlite",
    "count_values",
    "reencrypt_batch",
    "reveal",
    "seal",
]


@dataclass(frozen=True, slots=True)
class EncryptedTable:
    """A table with encrypted columns, and the column that names each row's owner."""

    table: Table
    owner: str
    columns: tuple[str, ...]

    @property
    def key(self) -> Column[Any]:
        """The primary key column, which re-encryption pages by."""
        [key] = self.table.primary_key.columns
        return key

    def context(self, column: str, owner: str) -> str:
        """The associated data of ``column`` in a row owned by ``owner``."""
        return f"{self.table.name}.{column}/{owner}"


CONVERSATIONS = EncryptedTable(t_conversations, "id", ("title",))
MESSAGES = EncryptedTable(t_messages, "conversation_id", ("content", "tool_calls"))
TOOL_RUNS = EncryptedTable(t_tool_runs, "conversation_id", ("arguments", "result"))
FEEDBACK = EncryptedTable(t_feedback, "conversation_id", ("comment",))
TURNS = EncryptedTable(t_turns, "conversation_id", ("citations",))
ENCRYPTED_TABLES: tuple[EncryptedTable, ...] = (
    CONVERSATIONS,
    MESSAGES,
    TOOL_RUNS,
    FEEDBACK,
    TURNS,
)
"""Every encrypted column of the database, by table."""


def seal(keys: DataKeys | None, value: str | None, context: str) -> str | None:
    """``value`` as it is to be stored: sealed when ``keys`` encrypt; ``None`` and ``""`` as is."""
    if not value or keys is None or not keys.encrypting:
        return value
    return keys.encrypt(value, context)


def reveal(keys: DataKeys | None, value: str | None, context: str) -> str | None:
    """A stored value's plaintext (a value stored in plaintext, as it is).

    Raises:
        DataIntegrityError: The value fails its integrity check, or it is sealed and there
            are no keys.
    """
    if not value:
        return value
    if keys is not None:
        return keys.decrypt(value, context)
    if is_sealed(value) or looks_damaged(value):
        raise DataIntegrityError(
            f"stored data is encrypted ({context}) and no data key is configured: set "
            "GRAFT_DATA_KEY or data_key_file to the key it was encrypted with"
        )
    return value


@dataclass(slots=True)
class ColumnCounts:
    """What re-encryption did to one column."""

    column: str
    reencrypted: int = 0
    """Values that were sealed with an older key."""
    encrypted: int = 0
    """Values that were stored in plaintext (before encryption was on)."""
    current: int = 0
    """Values already sealed with the newest key."""

    def add(self, other: ColumnCounts) -> None:
        """Add ``other``'s counts to these."""
        self.reencrypted += other.reencrypted
        self.encrypted += other.encrypted
        self.current += other.current


@dataclass(slots=True)
class Batch:
    """One re-encrypted batch: how far it got and what it did."""

    rows: int
    last: Any
    """The primary key of its last row: the next batch starts after it."""
    counts: list[ColumnCounts] = field(default_factory=list)


@dataclass(slots=True)
class Reencrypted:
    """What a whole re-encryption did."""

    counts: dict[str, ColumnCounts]
    """By column (``table.column``)."""
    scrubbed: bool | None
    """SQLite: whether the file was compacted and its WAL emptied (``False``: another
    connection kept it busy, so old copies may remain until the next checkpoint); ``None``
    for PostgreSQL, which keeps old row versions until ``VACUUM``."""

    @property
    def changed(self) -> int:
        """How many values were sealed again or for the first time."""
        return sum(c.reencrypted + c.encrypted for c in self.counts.values())


def count_values(conn: Connection, spec: EncryptedTable) -> int:
    """How many rows of ``spec``'s table re-encryption goes through."""
    return int(conn.execute(select(func.count()).select_from(spec.table)).scalar_one())


def reencrypt_batch(
    conn: Connection,
    spec: EncryptedTable,
    keys: DataKeys,
    after: Any,
    limit: int,
    *,
    secure_delete: bool = False,
) -> Batch:
    """Seal again, with the newest key, the values of up to ``limit`` rows after ``after``.

    Runs in the caller's write transaction. ``after`` is ``None`` for the first batch. With
    ``secure_delete`` (SQLite) the pages the updates free are overwritten, so the old values
    leave the file.

    Raises:
        DataIntegrityError: A value fails its integrity check; nothing of the batch is kept.
    """
    if secure_delete:
        conn.exec_driver_sql("PRAGMA secure_delete=ON")
    key = spec.key
    owner = spec.table.c[spec.owner]
    query = select(key, owner, *(spec.table.c[c] for c in spec.columns)).order_by(key)
    if after is not None:
        query = query.where(key > after)
    rows = conn.execute(query.limit(limit)).all()
    counts = [ColumnCounts(f"{spec.table.name}.{column}") for column in spec.columns]
    changes: list[list[dict[str, Any]]] = [[] for _ in spec.columns]
    for row in rows:
        for index, column in enumerate(spec.columns):
            value = row[2 + index]
            if not value:
                continue
            kid = key_id_of(value)
            if kid == keys.current_id:
                counts[index].current += 1
                continue
            context = spec.context(column, row[1])
            plaintext = keys.decrypt(value, context)
            changes[index].append(
                {"b_key": row[0], "b_old": value, "b_new": keys.encrypt(plaintext, context)}
            )
            if kid is None:
                counts[index].encrypted += 1
            else:
                counts[index].reencrypted += 1
    for column, params in zip(spec.columns, changes, strict=True):
        if params:
            conn.execute(_update(spec, column), params)
    return Batch(len(rows), rows[-1][0] if rows else after, counts)


WriteBatch = Callable[[Callable[[Connection], Batch]], Awaitable[Batch]]
"""Runs one batch in a write transaction of the store (off the event loop)."""


async def reencrypt_tables(
    write: WriteBatch,
    keys: DataKeys,
    *,
    batch_size: int,
    progress: Callable[[int], None] | None,
    secure_delete: bool,
) -> dict[str, ColumnCounts]:
    """Every table of ``ENCRYPTED_TABLES``, a batch of rows per write transaction."""
    found: dict[str, ColumnCounts] = {}
    for spec in ENCRYPTED_TABLES:
        after = None
        while True:
            batch = await write(
                partial(
                    reencrypt_batch,
                    spec=spec,
                    keys=keys,
                    after=after,
                    limit=batch_size,
                    secure_delete=secure_delete,  # old values leave the file's pages
                )
            )
            for counts in batch.counts:
                found.setdefault(counts.column, ColumnCounts(counts.column)).add(counts)
            if progress is not None:
                progress(batch.rows)
            if batch.rows < batch_size:
                break
            after = batch.last
    return found


def _update(spec: EncryptedTable, column: str) -> Any:
    target = spec.table.c[column]
    return (
        update(spec.table)
        .where((spec.key == bindparam("b_key")) & (target == bindparam("b_old")))
        .values({column: bindparam("b_new")})
    )


def compact_sqlite(engine: Engine) -> bool:
    """VACUUM the SQLite file and empty its WAL; ``False`` if another connection kept it."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            driver.execute("VACUUM")
            busy, _, _ = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:
            return False
        return not busy
