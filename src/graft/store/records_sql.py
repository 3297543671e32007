"""The audit log, privacy requests and stored assistants of ``SQLStore``.

``RecordsMethods`` is the part of ``SQLStore`` (``graft.store.sql``) that runs the SQL of
``graft.store.audit_sql`` (the hash-chained audit log), ``graft.store.privacy`` (a user's
export and erasure, retention purges, the admins' list of a tenant's conversations) and
``graft.store.assistants`` (assistants created at run time), mixed into that class so that
the store stays one object. As with ``graft.store.feedback_sql``, each function it calls is
one transaction on a connection the store began; deletions go in batches, each a write
transaction of its own, so turns go on in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy.engine import Connection

from graft.audit import AuditEvent, AuditRecord
from graft.store import assistants, audit_sql, privacy
from graft.store.base import ConversationInfo, StoredAssistant, check_page

if TYPE_CHECKING:
    from graft.store.base import Store

__all__ = ["RecordsMethods"]

T = TypeVar("T")


class RecordsMethods:
    """Audit, privacy and stored-assistant methods of ``SQLStore`` (its transactions)."""

    if TYPE_CHECKING:

        async def _read(self, fn: Callable[[Connection], T]) -> T: ...

        async def _write(
            self, fn: Callable[[Connection], T], *, alone: bool = False, size: int = 0
        ) -> T: ...

    # --- the audit log (graft.store.audit_sql does the SQL) -------------------------------

    async def append_audit(self, event: AuditEvent) -> AuditRecord:
        """Append ``event`` as the next record of the audit chain."""
        return await self._write(partial(audit_sql.append, event=event))

    async def list_audit(
        self, after_seq: int | None, limit: int, tenant: str | None = None
    ) -> list[AuditRecord]:
        """Audit records oldest first: ``limit`` after ``after_seq``, or the newest."""
        return await self._read(
            partial(audit_sql.list_records, after_seq=after_seq, limit=limit, tenant=tenant)
        )

    async def iter_audit(self, *, batch: int = 500) -> AsyncIterator[AuditRecord]:
        """Every audit record in ``seq`` order, one read transaction per ``batch``."""
        after = 0
        while True:
            page = await self.list_audit(after, batch)
            for record in page:
                yield record
            if len(page) < batch:
                return
            after = page[-1].seq

    # --- privacy: export, erasure, retention (graft.store.privacy does the SQL) -----------

    async def export_user_data(self, tenant: str, user: str) -> dict[str, Any]:
        """Every conversation of one user, oldest first, read one transaction each."""
        ids = await self._read(partial(privacy.user_conversation_ids, tenant=tenant, user=user))
        return await privacy.export_conversations(cast("Store", self), tenant, user, ids)

    async def delete_user_data(self, tenant: str, user: str) -> int:
        """Delete one user's conversations, ``privacy.BATCH`` per transaction."""
        return await self._delete_batches(
            partial(privacy.user_conversation_ids, tenant=tenant, user=user),
            partial(privacy.delete_user_conversations, tenant=tenant, user=user),
        )

    async def purge_conversations(self, assistant: str, older_than: datetime) -> int:
        """Delete the assistant's conversations not updated since ``older_than``, in batches."""
        privacy.check_aware(older_than)
        return await self._delete_batches(
            partial(privacy.expired_conversation_ids, assistant=assistant, older_than=older_than),
            partial(
                privacy.delete_expired_conversations, assistant=assistant, older_than=older_than
            ),
        )

    async def list_tenant_conversations(
        self, tenant: str, *, limit: int = 50, offset: int = 0
    ) -> list[ConversationInfo]:
        """A page of the tenant's conversations as metadata: no titles, message counts."""
        check_page(limit, offset)
        return await self._read(
            partial(privacy.list_tenant_conversations, tenant=tenant, limit=limit, offset=offset)
        )

    # --- stored assistants (graft.store.assistants does the SQL) ----------------------------

    async def put_assistant(
        self, tenant: str, name: str, definition: dict[str, Any], actor: str
    ) -> None:
        """Create or replace the tenant's assistant ``name``."""
        text = assistants.encode(definition)  # a long prompt is written off the event loop
        work = partial(assistants.put_assistant, tenant=tenant, name=name, text=text, actor=actor)
        await self._write(work, size=len(text))

    async def get_assistant(self, tenant: str, name: str) -> dict[str, Any] | None:
        """The definition of the tenant's assistant ``name``, or ``None``."""
        return await self._read(partial(assistants.get_assistant, tenant=tenant, name=name))

    async def list_assistants(self, tenant: str) -> list[StoredAssistant]:
        """The tenant's stored assistants, by name."""
        return await self._read(partial(assistants.list_assistants, tenant=tenant))

    async def delete_assistant(self, tenant: str, name: str) -> bool:
        """Delete the tenant's assistant ``name``; whether there was one."""
        return await self._write(partial(assistants.delete_assistant, tenant=tenant, name=name))

    async def _delete_batches(
        self, find: Callable[..., list[str]], remove: Callable[..., int]
    ) -> int:
        """Find ids in a read, delete them in a write of their own; again until none are left."""
        total = 0
        while True:
            ids = await self._read(partial(find, limit=privacy.BATCH))
            if ids:
                # Alone: never on the event loop, never sharing a commit with turns.
                total += await self._write(partial(remove, ids=ids), alone=True)
            if len(ids) < privacy.BATCH:
                return total
