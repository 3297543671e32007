"""``/v1/auth/oidc``: a browser signs in at the OpenID Connect issuer (``graft.oidc``).

Both routes are public (``PUBLIC_PATHS``): they are how a browser without a session starts
one. ``GET /login`` sends the browser (302) to the issuer's authorization endpoint and sets
the short-lived ``graft_oidc`` cookie with the sign-in's state: ``SameSite=Lax``, since it
must come back on the issuer's top-level redirect, which a ``Strict`` cookie would not, and
``HttpOnly``, scoped to ``/v1/auth/oidc``. ``GET /callback`` refuses a state that is not
that cookie's (400: a callback URL sent to someone else's browser signs nobody in), lets
``OidcClient`` exchange the code and check the ID token, finds (or creates) the user and
opens a session exactly as ``POST /v1/auth/session`` does (same cookies, same store rows),
records ``session.create`` with ``via: oidc``, and redirects to ``/``. Refused sign-ins are
recorded as ``session.create`` with the outcome ``denied``. Without ``auth.oidc_issuer``
both answer 404.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Query, Request
from starlette.requests import cookie_parser
from starlette.responses import RedirectResponse

from graft import audit
from graft.errors import GraftError, InvalidRequest, NotFound
from graft.oidc import OidcClient, oidc_key_for, user_for_claims
from graft.runtime import Graft
from graft.server.deps import CurrentGraft
from graft.server.sessions import set_session_cookies
from graft.sessions import open_session

__all__ = ["CALLBACK_PATH", "LOGIN_PATH", "STATE_COOKIE", "router"]

LOGIN_PATH = "/v1/auth/oidc/login"
CALLBACK_PATH = "/v1/auth/oidc/callback"
STATE_COOKIE = "graft_oidc"
"""The cookie that ties a callback to the browser that started the sign-in."""

router = APIRouter(prefix="/v1/auth/oidc", tags=["sessions"])


def _client(request: Request, graft: Graft) -> OidcClient:
    """The app's OIDC client (made at first use); 404 when OIDC is off."""
    if not graft.settings.auth.oidc_issuer:
        raise NotFound("OpenID Connect sign-in is not configured", code="oidc_off")
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        client = request.app.state.oidc = OidcClient(graft.settings.auth)
    return client


def _state_cookie(request: Request, graft: Graft, value: str, max_age: int) -> str:
    parts = [
        f"{STATE_COOKIE}={value}",
        f"Max-Age={max_age}",
        "Path=/v1/auth/oidc",
        "SameSite=Lax",
        "HttpOnly",
    ]
    if request.url.scheme == "https" or graft.settings.auth.secure_cookies:
        parts.append("Secure")
    return "; ".join(parts)


@router.get("/login", summary="Sign in a browser at the OpenID Connect issuer")
async def login(request: Request, graft: CurrentGraft) -> RedirectResponse:
    """Redirect (302) to the issuer's sign-in page."""
    client = _client(request, graft)
    url, state = await client.begin(str(request.url_for("oidc_callback")))
    response = RedirectResponse(url, status_code=302)
    response.headers["cache-control"] = "no-store"
    response.headers.append("set-cookie", _state_cookie(request, graft, state, 600))
    return response


@router.get("/callback", name="oidc_callback", summary="Where the issuer sends the browser back")
async def callback(
    request: Request,
    graft: CurrentGraft,
    code: str | None = Query(default=None, description="The authorization code."),
    state: str | None = Query(default=None, description="The sign-in's state."),
    error: str | None = Query(default=None, description="The issuer's error, if it refused."),
) -> RedirectResponse:
    """Finish the sign-in: session cookies, then a redirect (302) to ``/``."""
    client = _client(request, graft)
    cookie = cookie_parser(request.headers.get("cookie", "")).get(STATE_COOKIE, "")
    if not state or not cookie or not hmac.compare_digest(cookie.encode(), state.encode()):
        raise InvalidRequest(
            f"this sign-in was not started by this browser: start again at {LOGIN_PATH}",
            code="oidc_state",
        )
    if error or not code:
        raise InvalidRequest(f"the issuer did not sign you in: {error or 'no code'}"[:300])
    settings = graft.settings
    try:
        claims = await client.finish(state, code)
        user = await user_for_claims(graft.store, claims, settings.auth)
    except GraftError as exc:
        if exc.status in (401, 403):
            event = audit.AuditEvent(
                "session.create",
                "anonymous",
                settings.auth.oidc_tenant,
                "",
                "denied",
                {"via": "oidc", "reason": exc.message, "code": exc.code},
            )
            await audit.record(graft.store, event)
        raise
    key_id = await oidc_key_for(graft.store, user)
    token, session = await open_session(graft.store, key_id, settings)
    event = audit.AuditEvent(
        "session.create",
        user.name,
        user.tenant,
        user.name,
        "ok",
        {"via": "oidc", "key_id": key_id, "expires_at": session.expires_at.isoformat()},
    )
    await audit.record(graft.store, event)
    response = RedirectResponse("/", status_code=302)
    response.headers["cache-control"] = "no-store"
    set_session_cookies(response, request, graft, token, round(settings.auth.session_hours * 3600))
    response.headers.append("set-cookie", _state_cookie(request, graft, "", 0))
    return response
