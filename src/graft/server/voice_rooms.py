"""``/v1/voice/rooms``: several people and the assistant in one voice room (WebRTC).

``POST /v1/voice/rooms/{room}/join`` takes a participant's SDP offer (non-trickle, as a
call's) and answers it; the room is made by its first join and goes away when the last
participant leaves. Each participant is a ``graft.voice.room.Participant``: their own peer
connection and session, running as them; the room mixes what everyone hears and lets the
assistant answer whoever calls it by name.

Rooms belong to a tenant: a room's name is looked up among the caller's tenant's rooms
only, so another tenant's room of the same name is a different room, and no answer tells
one tenant about another's rooms. The assistant is chosen by the first join and fixed;
everyone who joins must be allowed to use it (the check of a chat turn, audited the same
way when refused). A room holds ``MAX_PARTICIPANTS`` (409 ``room_full`` beyond), and each
participant counts as one of the process's ``voice.max_calls`` (503, as for calls).
``GET`` lists the tenant's rooms; ``DELETE .../participants/{id}`` removes a participant
(oneself, or anyone as an admin of the tenant; 404 otherwise). Joins and leaves are in the
audit log (``voice_room.join``, ``voice_room.leave``), and shutdown empties every room.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import JSONResponse, Response

from graft import audit
from graft.config import DEFAULT_ASSISTANT
from graft.context import Principal
from graft.errors import Conflict, InvalidRequest, NotFound
from graft.policy import ADMIN_ROLE
from graft.runtime import Graft
from graft.server.deps import CurrentGraft, CurrentPrincipal
from graft.server.ratelimit import call_limits
from graft.server.voice_rtc import (
    MAX_SDP_BYTES,
    answer_offer,
    authorize,
    end_details,
    over_max_calls,
    unavailable,
)
from graft.voice import VOICE_EXTRA_HINT

if TYPE_CHECKING:
    from graft.voice.room import Participant, Room

__all__ = ["MAX_NAME_CHARS", "PATH", "ROOM_NAME", "Rooms", "hang_up_all", "router", "seats_of"]

PATH = "/v1/voice/rooms"
ROOM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""What a room may be called: lower-case letters, digits, ``_`` and ``-``; 64 at most."""
MAX_NAME_CHARS = 64
"""The longest display name."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

router = APIRouter(prefix=PATH, tags=["voice"])


class JoinOffer(BaseModel):
    """``POST /v1/voice/rooms/{room}/join``: the participant's SDP offer and name."""

    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(max_length=MAX_SDP_BYTES, description="The offer, ICE gathering complete.")
    type: Literal["offer"] = Field(description="Always `offer`.")
    name: str | None = Field(
        default=None,
        max_length=MAX_NAME_CHARS,
        description="Your display name in the room (default: your user id).",
    )
    assistant: str = Field(
        default=DEFAULT_ASSISTANT,
        min_length=1,
        max_length=255,
        description="The room's assistant; used only by the join that creates the room.",
    )

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _CONTROL.search(value):
            raise ValueError("a display name cannot hold control characters (newlines...)")
        value = value.strip()
        if not value:
            raise ValueError("a display name cannot be blank")
        return value


class Rooms:
    """The process's rooms by (tenant, name)."""

    def __init__(self) -> None:
        self.rooms: dict[tuple[str, str], Room] = {}

    def seats(self) -> int:
        """Participants in every room, those being negotiated included."""
        return sum(len(room.members) for room in self.rooms.values())

    def of_tenant(self, tenant: str) -> list[Room]:
        """The tenant's rooms, oldest first."""
        rooms = [room for (owner, _), room in self.rooms.items() if owner == tenant]
        return sorted(rooms, key=lambda room: room.created_at)


def rooms_of(app: FastAPI) -> Rooms:
    """The app's ``Rooms`` (made on first use)."""
    rooms: Rooms | None = getattr(app.state, "voice_rooms", None)
    if rooms is None:
        rooms = app.state.voice_rooms = Rooms()
    return rooms


def seats_of(app: FastAPI) -> int:
    """Room participants of this process: they count against ``voice.max_calls``."""
    return rooms_of(app).seats()


async def hang_up_all(app: FastAPI) -> None:
    """Take everyone out of every room (the app is shutting down)."""
    members = [p for room in rooms_of(app).rooms.values() for p in room.members.values()]
    await asyncio.gather(*(p.close("shutdown") for p in members), return_exceptions=True)


def _room_json(room: Room) -> dict[str, Any]:
    return {
        "object": "voice.room",
        "name": room.name,
        "assistant": room.assistant,
        "created_at": int(room.created_at),
        "participants": [{"id": p.id, "name": p.name} for p in room.participants],
    }


async def _seat_room(
    rooms: Rooms, graft: Graft, principal: Principal, name: str, assistant: str
) -> tuple[Room, bool]:
    """The caller's tenant's room ``name`` (made when missing), once they may join it.

    Returns the room and whether this join made it. Checked again after each wait, since
    the room may come or go meanwhile.
    """
    from graft.voice.room import Room

    key = (principal.tenant, name)
    authorized: str | None = None
    while True:
        room = rooms.rooms.get(key)
        wanted = room.assistant if room is not None else assistant
        if wanted != authorized:
            await authorize(graft, principal, wanted)
            authorized = wanted
            continue  # awaited: look again
        if room is None:
            room = rooms.rooms[key] = Room(name, principal.tenant, wanted)
            return room, True
        return room, False


@router.post(
    "/{room}/join",
    status_code=201,
    summary="Join a voice room (WebRTC): post an SDP offer, get the answer",
    responses={
        201: {"description": "`{sdp, type: 'answer', room, participant_id, participants}`"},
        403: {"description": "You may not use the room's assistant"},
        409: {"description": "The room is full (`room_full`)"},
        503: {"description": "`voice.max_calls` reached (`Retry-After`), or no voice extra"},
    },
)
async def join_room(
    room: str,
    body: JoinOffer,
    request: Request,
    graft: CurrentGraft,
    principal: CurrentPrincipal,
) -> Response:
    """Answer the offer; the participant is then in the room until they leave."""
    if not ROOM_NAME.match(room):
        raise InvalidRequest(
            f"{room[:80]!r} is not a room name: 1 to 64 of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit",
            param="room",
            code="invalid_room_name",
        )
    try:
        from graft.voice.room import Participant
    except ImportError:
        return unavailable(f"aiortc is not installed; {VOICE_EXTRA_HINT}")
    rooms = rooms_of(request.app)
    seated, created = await _seat_room(rooms, graft, principal, room, body.assistant)
    busy = over_max_calls(request.app, graft.settings.voice.max_calls)
    if busy is not None:
        _drop_if_empty(rooms, seated)
        return busy
    if seated.full():
        raise Conflict(f"room {room!r} is full: {seated.capacity} people at most", code="room_full")
    try:
        participant = Participant(
            seated,
            graft,
            principal,
            seated.unique_name(body.name or principal.user_id[:MAX_NAME_CHARS]),
            metrics=request.app.state.metrics,
            gate=call_limits(request.scope, principal),  # the day's token budget, per turn
            greet=created,
            on_closed=_left(request.app),
        )
    except BaseException:  # voice.ice_servers unusable: nobody joins, the room goes
        _drop_if_empty(rooms, seated)
        raise
    seated.reserve(participant)  # a seat from now: negotiating takes a while (ICE)
    answer = await answer_offer(participant, body.sdp)
    if not isinstance(answer, str):
        return answer  # no voice extra
    seated.join(participant)
    details = {
        "participant_id": participant.id,
        "name": participant.name,
        "assistant": seated.assistant,
        "created": created,
    }
    await audit.record_ok(graft.store, "voice_room.join", principal, room, details)
    return JSONResponse(
        {
            "sdp": answer,
            "type": "answer",
            "room": room,
            "participant_id": participant.id,
            "name": participant.name,
            "assistant": seated.assistant,
            "participants": seated.names(),
        },
        201,
    )


def _drop_if_empty(rooms: Rooms, room: Room) -> None:
    key = (room.tenant, room.name)
    if not room.members and rooms.rooms.get(key) is room:
        del rooms.rooms[key]


def _left(app: FastAPI) -> Callable[[Participant], Awaitable[None]]:
    """The ``on_closed`` of a participant: the last one out closes the room; audit it."""

    async def left(participant: Participant) -> None:
        room = participant.room
        _drop_if_empty(rooms_of(app), room)
        if not participant.joined:
            return  # never answered: nobody joined
        details = {
            "participant_id": participant.id,
            "name": participant.name,
            "assistant": room.assistant,
            "room_closed": not room.members,
            **end_details(participant),
        }
        store = participant.graft.store
        await audit.record_ok(store, "voice_room.leave", participant.principal, room.name, details)

    return left


@router.get("", summary="List your tenant's voice rooms")
async def list_rooms(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """The rooms of the caller's tenant in this process, oldest first."""
    rooms = rooms_of(request.app).of_tenant(principal.tenant)
    return {"object": "list", "data": [_room_json(room) for room in rooms]}


@router.delete(
    "/{room}/participants/{participant_id}",
    status_code=204,
    summary="Take a participant out of a voice room",
    responses={204: {"description": "They left the room"}},
)
async def remove_participant(
    room: str, participant_id: str, request: Request, principal: CurrentPrincipal
) -> Response:
    """Leave a room yourself, or (an admin of the tenant) take anyone out. Others: 404."""
    found = rooms_of(request.app).rooms.get((principal.tenant, room))
    if found is None:
        raise NotFound(f"no voice room {room[:64]!r}", code="room_not_found")
    participant = found.members.get(participant_id)
    own = participant is not None and participant.principal.user_id == principal.user_id
    if participant is None or not (own or ADMIN_ROLE in principal.roles):
        raise NotFound(
            f"no participant {participant_id[:64]!r} in room {room!r}",
            code="participant_not_found",
        )
    await participant.close("deleted" if own else "deleted_by_admin")
    return Response(status_code=204)
