"""``/v1/voice/calls``: voice calls over WebRTC, one embedded aiortc peer per call.

``POST`` takes the client's SDP offer (non-trickle: every ICE candidate in it) and answers
with graft's, once its own candidates are gathered; the call then runs on its own
(``graft.voice.rtc.RtcCall``: audio in and out, the ``events`` data channel) until either
side hangs up. ``DELETE`` hangs a call up, ``GET`` lists the caller's (an admin's: the
tenant's). Authentication is the ``Authenticate`` middleware's, as for every route; the
caller must be allowed to use the assistant (the same check as a chat turn, audited the
same way when refused), and a ``conversation_id`` must be theirs.

The calls live in this process (``Calls`` on ``app.state``), at most ``voice.max_calls`` at
once, counting those being negotiated; one more answers 503 with ``Retry-After``. A call
that belongs to someone else answers 404, as if it did not exist. Starting and ending a call
are recorded in the audit log (``voice_call.start`` / ``voice_call.end``: user, assistant,
duration, why it ended), and the app's shutdown hangs every call up (``hang_up_all``).
aiortc is imported only when a call is made: without the ``voice`` extra the routes answer
503 ``voice_unavailable``.

A room's join (``graft.server.voice_rooms``) is a call of another kind, and shares what is
the same: the assistant check (``authorize``), the count against ``voice.max_calls``
(``over_max_calls``), answering the offer (``answer_offer``) and the audit records
(``graft.audit.record_ok``, ``end_details``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse, Response

from graft import audit
from graft.config import DEFAULT_ASSISTANT
from graft.context import Principal
from graft.errors import NotFound, PermissionDenied
from graft.policy import ADMIN_ROLE, authorize_assistant
from graft.server.deps import CurrentGraft, CurrentPrincipal
from graft.server.errors import error_response
from graft.server.ratelimit import call_limits
from graft.voice import VOICE_EXTRA_HINT, VoiceUnavailable

if TYPE_CHECKING:
    from graft.runtime import Graft
    from graft.voice.rtc import RtcCall, RtcPeer

__all__ = [
    "MAX_SDP_BYTES",
    "PATH",
    "RETRY_AFTER_S",
    "Calls",
    "answer_offer",
    "authorize",
    "end_details",
    "hang_up_all",
    "over_max_calls",
    "router",
    "unavailable",
]

PATH = "/v1/voice/calls"
MAX_SDP_BYTES = 64 * 1024
"""The largest offer accepted (a browser's, with audio, video and data, is about 5 KiB)."""
RETRY_AFTER_S = 30
"""``Retry-After`` of a call refused because ``voice.max_calls`` are running."""

router = APIRouter(prefix=PATH, tags=["voice"])


class CallOffer(BaseModel):
    """``POST /v1/voice/calls``: the client's SDP offer and what the call is for."""

    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(max_length=MAX_SDP_BYTES, description="The offer, ICE gathering complete.")
    type: Literal["offer"] = Field(description="Always `offer`.")
    assistant: str = Field(default=DEFAULT_ASSISTANT, min_length=1, max_length=255)
    conversation_id: str | None = Field(
        default=None, max_length=255, description="Continue this conversation of yours."
    )


class Calls:
    """The process's WebRTC calls by id, and the slots for those still being negotiated."""

    def __init__(self) -> None:
        self.active: dict[str, RtcCall] = {}
        self.opening = 0

    def visible_to(self, principal: Principal) -> list[RtcCall]:
        """The calls ``principal`` may see: their own; an admin's, their tenant's."""
        return [call for call in self.active.values() if _may_see(principal, call)]


def calls_of(app: FastAPI) -> Calls:
    """The app's ``Calls`` (made on first use)."""
    calls: Calls | None = getattr(app.state, "voice_calls", None)
    if calls is None:
        calls = app.state.voice_calls = Calls()
    return calls


async def hang_up_all(app: FastAPI) -> None:
    """Hang up every call (the app is shutting down)."""
    calls = calls_of(app)
    await asyncio.gather(
        *(call.close("shutdown") for call in list(calls.active.values())),
        return_exceptions=True,
    )


def _may_see(principal: Principal, call: RtcCall) -> bool:
    owner = call.principal
    if owner.tenant != principal.tenant:
        return False
    return owner.user_id == principal.user_id or ADMIN_ROLE in principal.roles


def _json(call: RtcCall) -> dict[str, Any]:
    return {
        "id": call.call_id,
        "object": "voice.call",
        "user": call.principal.user_id,
        "assistant": call.assistant,
        "conversation_id": call.conversation_id,
        "state": call.state,
        "created_at": int(call.started_at),
        "duration_s": round(call.duration_s(), 1),
    }


def unavailable(message: str) -> JSONResponse:
    """503 ``voice_unavailable``: the voice extra (or one of its models) is missing."""
    return error_response(503, message, "server_error", "voice_unavailable")


async def authorize(graft: Graft, principal: Principal, assistant: str) -> None:
    """As for a chat turn: the assistant must exist for ``principal``, and allow them.

    Raises:
        UnknownAssistant: No such assistant (404).
        PermissionDenied: ``principal`` may not use it (recorded as ``access.denied``).
    """
    settings = await graft.resolve_assistant(assistant, principal)
    try:
        authorize_assistant(principal, assistant, settings)
    except PermissionDenied as exc:
        await audit.record_denied(graft.store, principal, f"assistant:{assistant}", exc)
        raise


def over_max_calls(app: FastAPI, limit: int) -> JSONResponse | None:
    """503 ``too_many_calls`` (with ``Retry-After``) once ``limit`` voices are connected.

    Calls and room participants count alike, those being negotiated included; ``None``
    while there is room for one more.
    """
    from graft.server.voice_rooms import seats_of  # (voice_rooms imports this module)

    calls = calls_of(app)
    if len(calls.active) + calls.opening + seats_of(app) < limit:
        return None
    return error_response(
        503,
        f"{limit} voice calls and room participants are connected, the most this server "
        "takes (voice.max_calls)",
        "server_error",
        "too_many_calls",
        headers={"retry-after": str(RETRY_AFTER_S)},
    )


async def answer_offer(peer: RtcPeer, sdp: str) -> str | JSONResponse:
    """``peer``'s answer to the offer ``sdp``, or 503 when the voice extra is missing.

    A peer whose answer fails is closed (``failed``) before the error goes on.
    """
    try:
        return await peer.answer(sdp)
    except VoiceUnavailable as exc:
        await peer.close("failed")
        return unavailable(exc.message)
    except BaseException:
        await peer.close("failed")
        raise


def end_details(peer: RtcPeer) -> dict[str, Any]:
    """What the audit record of a peer's end says.

    Its conversation, how long it lasted, why it ended, and the call log (turns and their
    first-audio latency).
    """
    return {
        "conversation_id": peer.conversation_id,
        "duration_s": round(peer.duration_s(), 1),
        "reason": peer.end_reason,
        **peer.session.summary(),
    }


@router.post(
    "",
    status_code=201,
    summary="Start a voice call (WebRTC): post an SDP offer, get the answer",
    responses={
        201: {"description": "`{sdp, type: 'answer', call_id}`: the call is up"},
        403: {"description": "You may not use the assistant"},
        503: {"description": "`voice.max_calls` reached (`Retry-After`), or no voice extra"},
    },
)
async def start_call(
    body: CallOffer, request: Request, graft: CurrentGraft, principal: CurrentPrincipal
) -> Response:
    """Answer the offer; the call then runs until either side hangs up."""
    await authorize(graft, principal, body.assistant)
    if body.conversation_id is not None:
        await graft.store.load_history(body.conversation_id, principal)  # yours, or 404
    try:
        from graft.voice.rtc import RtcCall
    except ImportError:
        return unavailable(f"aiortc is not installed; {VOICE_EXTRA_HINT}")
    busy = over_max_calls(request.app, graft.settings.voice.max_calls)
    if busy is not None:
        return busy
    calls = calls_of(request.app)
    calls.opening += 1  # a slot from now: negotiating takes a while (ICE gathering)
    try:
        call = RtcCall(
            graft,
            principal,
            assistant=body.assistant,
            conversation_id=body.conversation_id,
            metrics=request.app.state.metrics,
            gate=call_limits(request.scope, principal),  # the day's token budget, per turn
            on_closed=_ended(request.app),
        )
        answer = await answer_offer(call, body.sdp)
    finally:
        calls.opening -= 1
    if not isinstance(answer, str):
        return answer  # no voice extra
    calls.active[call.call_id] = call
    details = {"assistant": body.assistant, "conversation_id": body.conversation_id}
    await audit.record_ok(graft.store, "voice_call.start", principal, call.call_id, details)
    return JSONResponse({"sdp": answer, "type": "answer", "call_id": call.call_id}, 201)


def _ended(app: FastAPI) -> Callable[[RtcCall], Awaitable[None]]:
    """The ``on_closed`` of a call: unregister it and audit its end (if it had started)."""

    async def ended(call: RtcCall) -> None:
        if calls_of(app).active.pop(call.call_id, None) is None:
            return  # never answered: no call started
        details = {"assistant": call.assistant, **end_details(call)}
        await audit.record_ok(
            call.graft.store, "voice_call.end", call.principal, call.call_id, details
        )

    return ended


@router.get("", summary="List voice calls (yours; an admin: the tenant's)")
async def list_calls(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """The calls running now in this process, oldest first."""
    calls = sorted(calls_of(request.app).visible_to(principal), key=lambda c: c.started_at)
    return {"object": "list", "data": [_json(call) for call in calls]}


@router.delete(
    "/{call_id}",
    status_code=204,
    summary="Hang up a voice call",
    responses={204: {"description": "Hung up"}},
)
async def hang_up(call_id: str, request: Request, principal: CurrentPrincipal) -> Response:
    """Hang up one of your calls (an admin: any of the tenant's). Others' answer 404."""
    call = calls_of(request.app).active.get(call_id)
    if call is None or not _may_see(principal, call):
        raise NotFound(f"no voice call {call_id[:64]!r}", code="call_not_found")
    own = call.principal.user_id == principal.user_id  # (the tenant is the same: _may_see)
    await call.close("deleted" if own else "deleted_by_admin")
    return Response(status_code=204)
