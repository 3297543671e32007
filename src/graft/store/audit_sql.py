"""The SQL side of the audit log: one function per transaction, run by ``SQLStore``.

``append`` reads the newest record and inserts the next one (``seq + 1``, chained to its
hash by ``graft.audit.seal``) in the write transaction ``SQLStore`` began, and nothing else
may append in between:

- on PostgreSQL it first takes a transaction-level advisory lock (``pg_advisory_xact_lock``
  with a fixed key), which every appender of every process waits for and which is released
  at commit or rollback; under READ COMMITTED the read after it sees every earlier append;
- on SQLite every write goes through the store's one writer and begins with
  ``BEGIN IMMEDIATE``, which holds the database's write lock (against other processes too)
  for the whole transaction.

Rows are only ever inserted: nothing here updates or deletes one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection

from graft.audit import GENESIS_HASH, AuditEvent, AuditRecord, seal
from graft.store.base import check_page
from graft.store.schema import t_audit_log

__all__ = ["append", "list_records"]

_PG_AUDIT_LOCK = 0x61756469  # "audi": any fixed bigint apart from the migration lock's
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_NEWEST = select(t_audit_log.c.seq, t_audit_log.c.hash).order_by(t_audit_log.c.seq.desc()).limit(1)
_INSERT = insert(t_audit_log)


def append(conn: Connection, event: AuditEvent) -> AuditRecord:
    """Append ``event`` as the next record of the chain (write)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_LOCK, {"key": _PG_AUDIT_LOCK})
    newest = conn.execute(_NEWEST).first()
    seq, prev_hash = (newest.seq + 1, newest.hash) if newest else (1, GENESIS_HASH)
    record = seal(event, seq=seq, prev_hash=prev_hash)
    conn.execute(
        _INSERT,
        {
            "seq": record.seq,
            "at": record.at,
            "tenant": record.tenant,
            "actor": record.actor,
            "action": record.action,
            "target": record.target,
            "outcome": record.outcome,
            "details": record.details,
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        },
    )
    return record


def list_records(
    conn: Connection, after_seq: int | None, limit: int, tenant: str | None
) -> list[AuditRecord]:
    """Records oldest first: ``limit`` after ``after_seq``, or the newest ``limit`` (read)."""
    check_page(limit, 0)
    query = select(t_audit_log)
    if tenant is not None:
        query = query.where(t_audit_log.c.tenant == tenant)
    if after_seq is None:
        newest = conn.execute(query.order_by(t_audit_log.c.seq.desc()).limit(limit)).all()
        return [_record(row) for row in reversed(newest)]
    query = query.where(t_audit_log.c.seq > after_seq).order_by(t_audit_log.c.seq).limit(limit)
    return [_record(row) for row in conn.execute(query)]


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        at=row.at,
        tenant=row.tenant,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        details=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
