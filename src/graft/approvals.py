"""Approvals: a person says yes or no before a risky tool call runs.

Prompt injection works by getting text the model reads (a tool's output, a retrieved
document) to steer it into doing something: sending mail, writing a file, calling an API
with the user's data in the URL. graft cannot tell injected instructions from real ones, so
it contains what they can do instead. Once a turn has read untrusted content, a call to a
tool that is not declared ``read_only`` waits for the user: the turn emits an
``ApprovalRequired`` event and pauses; ``POST /v1/approvals/{id}`` (or the terminal, in
``graft chat``) approves or denies it; no answer within ``limits.approval_timeout`` is a
denial. A denied call never runs, and the model is told it was denied.

``Approvals`` keeps the pending requests of this process, each tied to the principal whose
turn asked: only they may answer it (not even an admin: the call's arguments are part of a
private chat), and to anyone else it does not exist. With several workers
(``graft.coordination`` on Redis) ``open`` also shares each request under its owner's key,
``listed`` and ``answer`` find the requests of every worker, and an answer given on another
worker is published to all: the one whose turn waits resolves it. One worker wins an answer
(a claim key), so a request is decided once. The sync ``request``/``pending``/``decide``
stay for the callers that run the turn in their own process (the CLI, voice, evals).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from graft.context import Principal
from graft.coordination import Coordination
from graft.errors import NotFound
from graft.messages import ToolCall, new_id

__all__ = ["Approval", "Approvals"]

_TOPIC = "approval"
_GRACE_S = 30.0
"""Seconds a shared request outlives its timeout (a worker that crashed while waiting)."""


@dataclass(slots=True)
class Approval:
    """One pending request for approval."""

    id: str
    principal: Principal
    call: ToolCall
    conversation_id: str | None
    created: float = field(default_factory=time.time)
    decision: asyncio.Future[bool] | None = None
    reason: str = ""


class Approvals:
    """The pending approvals of this process, shared with the others through ``coordination``."""

    def __init__(self, coordination: Coordination | None = None) -> None:
        self._pending: dict[str, Approval] = {}
        self._coordination = coordination if coordination is not None else Coordination()
        self._coordination.subscribe(_TOPIC, self._on_answer)

    def request(
        self, principal: Principal, call: ToolCall, conversation_id: str | None
    ) -> Approval:
        """Open a request in this process; the turn then ``wait``s for it."""
        approval = Approval(new_id("appr"), principal, call, conversation_id)
        approval.decision = asyncio.get_running_loop().create_future()
        self._pending[approval.id] = approval
        return approval

    async def open(
        self, principal: Principal, call: ToolCall, conversation_id: str | None, within: float
    ) -> Approval:
        """Open a request that every worker can list and answer for ``within`` seconds."""
        approval = self.request(principal, call, conversation_id)
        if self._coordination.shared:
            record = {
                "id": approval.id,
                "call": [call.id, call.name, call.arguments],
                "conversation_id": conversation_id,
                "created": approval.created,
            }
            await self._coordination.put(
                _key(principal, approval.id), json.dumps(record), within + _GRACE_S
            )
        return approval

    async def wait(self, approval: Approval, within: float) -> tuple[bool, str]:
        """The decision, ``(approved, reason)``; no answer ``within`` seconds denies."""
        assert approval.decision is not None
        try:
            async with asyncio.timeout(within):
                approved = await asyncio.shield(approval.decision)
        except TimeoutError:
            return False, f"no answer within {within:g} s"
        finally:
            self._pending.pop(approval.id, None)
            if self._coordination.shared:
                await self._coordination.delete(_key(approval.principal, approval.id))
        return approved, approval.reason

    def pending(self, principal: Principal) -> list[Approval]:
        """What ``principal`` may answer in this process, oldest first."""
        return [a for a in self._pending.values() if _may_answer(principal, a)]

    async def listed(self, principal: Principal) -> list[Approval]:
        """What ``principal`` may answer on any worker, oldest first."""
        if not self._coordination.shared:
            return self.pending(principal)
        keys = await self._coordination.keys(_key(principal, ""))
        found = []
        for value in await self._coordination.get_many(keys):
            if value is not None:
                found.append(_from_record(principal, json.loads(value)))
        return sorted(found, key=lambda a: (a.created, a.id))

    def decide(
        self, approval_id: str, principal: Principal, approve: bool, reason: str = ""
    ) -> Approval:
        """Approve or deny a pending request of this process.

        Raises:
            NotFound: No pending request with that id that ``principal`` may answer (also
                one already answered or timed out).
        """
        approval = self._pending.get(approval_id)
        if approval is None or not _may_answer(principal, approval):
            raise _not_found(approval_id)
        assert approval.decision is not None
        if approval.decision.done():
            raise _not_found(approval_id)
        approval.reason = reason
        approval.decision.set_result(approve)
        return approval

    async def answer(
        self, approval_id: str, principal: Principal, approve: bool, reason: str = ""
    ) -> Approval:
        """Approve or deny a pending request of any worker (``decide``, across workers).

        Raises:
            NotFound: As ``decide``.
        """
        if not self._coordination.shared:
            return self.decide(approval_id, principal, approve, reason)
        key = _key(principal, approval_id)
        value = await self._coordination.get(key)
        if value is None:
            raise _not_found(approval_id)
        if not await self._coordination.claim(f"answered:{key}", "1", _GRACE_S):
            raise _not_found(approval_id)  # answered a moment ago, perhaps on another worker
        approval = _from_record(principal, json.loads(value))
        approval.reason = reason
        message = {"id": approval_id, "approve": approve, "reason": reason}
        await self._coordination.publish(_TOPIC, message)
        return approval

    def _on_answer(self, message: dict[str, Any]) -> None:
        """An answer published by a worker: resolve the request if it waits here."""
        approval = self._pending.get(str(message.get("id")))
        if approval is None or approval.decision is None or approval.decision.done():
            return
        approval.reason = str(message.get("reason") or "")
        approval.decision.set_result(bool(message.get("approve")))


def _owner(principal: Principal) -> str:
    # The lengths make the key unambiguous (one user's prefix never another's) whatever
    # the names contain.
    user = principal.user_id
    return f"{len(principal.tenant)}:{principal.tenant}:{len(user)}:{user}"


def _key(principal: Principal, approval_id: str) -> str:
    return f"appr:{_owner(principal)}:{approval_id}"


def _from_record(principal: Principal, record: dict[str, Any]) -> Approval:
    call_id, name, arguments = record["call"]
    return Approval(
        record["id"],
        principal,
        ToolCall(call_id, name, arguments),
        record.get("conversation_id"),
        created=float(record["created"]),
    )


def _not_found(approval_id: str) -> NotFound:
    return NotFound(f"no pending approval {approval_id!r}", code="approval_not_found")


def _may_answer(principal: Principal, approval: Approval) -> bool:
    owner = approval.principal
    return principal.tenant == owner.tenant and principal.user_id == owner.user_id
