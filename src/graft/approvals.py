"""Approvals: a person says yes or no before a risky tool call runs.

Prompt injection works by getting text the model reads (a tool's output, a retrieved
document) to steer it into doing something: sending mail, writing a file, calling an API
with the user's data in the URL. graft cannot tell injected instructions from real ones, so
it contains what they can do instead. Once a turn has read untrusted content, a call to a
tool that is not declared ``read_only`` waits for the user: the turn emits an
``ApprovalRequired`` event and pauses; ``POST /v1/approvals/{id}`` (or the terminal, in
``graft chat``) approves or denies it; no answer within ``limits.approval_timeout`` is a
denial. A denied call never runs, and the model is told it was denied.

``Approvals`` keeps the pending requests of one process, each tied to the principal whose
turn asked: only they may answer it (not even an admin: the call's arguments are part of a
private chat), and to anyone else it does not exist. Several workers need a shared registry;
that belongs with the rest of the multi-worker state.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from graft.context import Principal
from graft.errors import NotFound
from graft.messages import ToolCall, new_id

__all__ = ["Approval", "Approvals"]


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
    """The pending approvals of this process."""

    def __init__(self) -> None:
        self._pending: dict[str, Approval] = {}

    def request(
        self, principal: Principal, call: ToolCall, conversation_id: str | None
    ) -> Approval:
        """Open a request; the turn then ``wait``s for it."""
        approval = Approval(new_id("appr"), principal, call, conversation_id)
        approval.decision = asyncio.get_running_loop().create_future()
        self._pending[approval.id] = approval
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
        return approved, approval.reason

    def pending(self, principal: Principal) -> list[Approval]:
        """What ``principal`` may answer, oldest first."""
        return [a for a in self._pending.values() if _may_answer(principal, a)]

    def decide(
        self, approval_id: str, principal: Principal, approve: bool, reason: str = ""
    ) -> Approval:
        """Approve or deny a pending request.

        Raises:
            NotFound: No pending request with that id that ``principal`` may answer (also
                one already answered or timed out).
        """
        approval = self._pending.get(approval_id)
        if approval is None or not _may_answer(principal, approval):
            raise NotFound(f"no pending approval {approval_id!r}", code="approval_not_found")
        assert approval.decision is not None
        if approval.decision.done():
            raise NotFound(f"no pending approval {approval_id!r}", code="approval_not_found")
        approval.reason = reason
        approval.decision.set_result(approve)
        return approval


def _may_answer(principal: Principal, approval: Approval) -> bool:
    owner = approval.principal
    return principal.tenant == owner.tenant and principal.user_id == owner.user_id
