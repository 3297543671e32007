"""``/v1/auth/session``: a browser signs in with an API key, asks who it is, signs out.

``POST`` is authenticated by the key it carries, like any request (``graft.server.auth``),
and turns it into a session (``graft.sessions``): the answer sets the ``graft_session``
cookie (the token: HttpOnly, so no script reads it) and the ``graft_csrf`` cookie (the
CSRF token, for the page's scripts), both ``SameSite=Strict``, ``Path=/``, with
``Max-Age`` from ``auth.session_hours``, and ``Secure`` on HTTPS or with
``auth.secure_cookies``. Only a key made for a user of the store signs in (the session is
stored against that user and key). ``DELETE`` signs out: the session ends on the server and
both cookies are expired. Sign-ins and sign-outs are recorded in the audit log, never with
a token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from graft import audit
from graft.context import Principal
from graft.default_plugins.api_key_auth import bearer_token
from graft.errors import InvalidRequest, NotFound
from graft.identity import key_id_of
from graft.runtime import Graft
from graft.server.deps import CurrentGraft, CurrentPrincipal
from graft.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_token_for,
    find_session,
    open_session,
    presents_key,
    session_id_of,
    session_token,
)
from graft.store.base import StoredSession

__all__ = ["router", "set_session_cookies"]

router = APIRouter(prefix="/v1/auth/session", tags=["sessions"])


def _cookie(name: str, value: str, max_age: int, *, http_only: bool, secure: bool) -> str:
    """A ``Set-Cookie`` value for one of the session's cookies."""
    parts = [f"{name}={value}", f"Max-Age={max_age}", "Path=/", "SameSite=Strict"]
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def set_session_cookies(
    response: Response, request: Request, graft: Graft, token: str, max_age: int
) -> None:
    """Set (``max_age`` > 0) or expire (``max_age`` 0) both cookies (also OIDC's sign-in)."""
    secure = request.url.scheme == "https" or graft.settings.auth.secure_cookies
    csrf = csrf_token_for(token) if token else ""
    for name, value, http_only in ((SESSION_COOKIE, token, True), (CSRF_COOKIE, csrf, False)):
        cookie = _cookie(name, value, max_age, http_only=http_only, secure=secure)
        response.headers.append("set-cookie", cookie)


def _json(principal: Principal, session: StoredSession | None, token: str | None) -> dict[str, Any]:
    def when(moment: datetime | None) -> int | None:
        return int(moment.timestamp()) if moment else None

    return {
        "object": "session",
        "user": principal.user_id,
        "tenant": principal.tenant,
        "roles": sorted(principal.roles),
        "key_id": principal.key_id,
        "expires_at": when(session.expires_at) if session else None,
        "csrf_token": csrf_token_for(token) if session and token else None,
    }


async def _cookie_session(
    request: Request, graft: Graft, principal: Principal
) -> tuple[str, StoredSession] | tuple[None, None]:
    """The request's own live session, if its cookie names one of ``principal``'s."""
    token = session_token(request.headers)
    session = await find_session(graft.store, token) if token else None
    if token is None or session is None:
        return None, None
    if (session.user.tenant, session.user.name) != (principal.tenant, principal.user_id):
        return None, None
    return token, session


@router.post("", status_code=201, summary="Sign in a browser with an API key")
async def sign_in(
    request: Request, graft: CurrentGraft, principal: CurrentPrincipal
) -> JSONResponse:
    """Turn the API key of this request into a browser session held in cookies."""
    key = bearer_token(request.headers)
    key_id = key_id_of(key) if key else None
    if key_id is None or key_id != principal.key_id:
        raise InvalidRequest(
            "sign in with a user's API key (gk_...) in 'Authorization: Bearer <key>'",
            code="key_required",
        )
    token, session = await open_session(graft.store, key_id, graft.settings)
    max_age = round(graft.settings.auth.session_hours * 3600)
    event = audit.AuditEvent(
        "session.create",
        principal.user_id,
        principal.tenant,
        principal.user_id,
        "ok",
        {"key_id": key_id, "expires_at": session.expires_at.isoformat()},
    )
    await audit.record(graft.store, event)
    response = JSONResponse(_json(principal, session, token), status_code=201)
    response.headers["cache-control"] = "no-store"
    set_session_cookies(response, request, graft, token, max_age)
    return response


@router.get("", summary="Who is signed in")
async def whoami(
    request: Request, graft: CurrentGraft, principal: CurrentPrincipal
) -> JSONResponse:
    """The signed-in user and roles; with a session cookie, its end and CSRF token too."""
    token, session = (
        (None, None)
        if presents_key(request.headers)
        else await _cookie_session(request, graft, principal)
    )
    response = JSONResponse(_json(principal, session, token))
    response.headers["cache-control"] = "no-store"
    return response


@router.delete("", summary="Sign out")
async def sign_out(
    request: Request,
    graft: CurrentGraft,
    principal: CurrentPrincipal,
    everywhere: bool = Query(default=False, description="End every session of yours."),
) -> JSONResponse:
    """End this browser's session (or all of yours) and expire its cookies."""
    token, session = await _cookie_session(request, graft, principal)
    ended = 0
    if everywhere:
        try:
            ended = await graft.store.delete_user_sessions(principal.tenant, principal.user_id)
        except NotFound:  # a user of the settings file, or single-user mode: no sessions
            ended = 0
    elif token is not None and session is not None:
        ended = int(await graft.store.delete_session(session_id_of(token)))
    event = audit.AuditEvent(
        "session.delete",
        principal.user_id,
        principal.tenant,
        principal.user_id,
        "ok",
        {"ended": ended, "everywhere": everywhere},
    )
    await audit.record(graft.store, event)
    response = JSONResponse({"object": "session.deleted", "ended": ended})
    set_session_cookies(response, request, graft, "", 0)
    return response
