"""The FastAPI application: routes, error mapping, limits, metrics, lifespan.

``create_app(graft)`` wraps one ``Graft`` instance; the lifespan starts it (migrations,
configuration checks) and closes it. ASGI middleware order, outermost first: metrics,
security headers, CORS (only with ``cors_origins``; a preflight needs no credentials),
authentication (``graft.server.auth``: once, before routing), rate limits (they need the
principal; ``graft.server.ratelimit``), then the body-size limit, so even refused requests
are counted and carry the headers; innermost, ``POST /v1/chat/completions`` goes straight to
its endpoint instead of through the router (``graft.server.fastpath``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse, Response

from graft.retention import purging
from graft.runtime import Graft
from graft.secrets import install_secret_masking
from graft.server import (
    admin,
    admin_users,
    approvals,
    assistants,
    cancel,
    catalog,
    chat,
    conversations,
    feedback,
    health,
    keys,
    knowledge,
    me,
    model_stats,
    oidc,
    privacy,
    sentiment,
    sessions,
    uploads,
    voice_rooms,
    voice_rtc,
    voice_ws,
)
from graft.server.auth import PUBLIC_PATHS, Authenticate
from graft.server.body import add_body_schemas
from graft.server.errors import document_errors, install_error_handlers
from graft.server.fastpath import ChatFastPath
from graft.server.headers import SecurityHeaders, install_cors
from graft.server.health import graft_version
from graft.server.limits import BodySizeLimit
from graft.server.metrics import Metrics, MetricsMiddleware
from graft.server.ratelimit import RateLimit
from graft.server.requestid import RequestId
from graft.server.static import install_ui, warn_if_missing
from graft.telemetry import fastapi_config, setup_tracing, shutdown_tracing

__all__ = ["create_app"]


def create_app(graft: Graft, *, static_dir: Path | None = None) -> FastAPI:
    """Build the HTTP app around ``graft``.

    ``static_dir``: where the built web UI is (default: the package's; ``graft.server.static``).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The server's log handlers exist by now (uvicorn makes them as it starts): from here
        # on nothing they print shows a configured secret or a credential.
        install_secret_masking()
        warn_if_missing(static_dir)  # the web UI at / (one warning when it is not built)
        await graft.start()
        try:
            async with purging(graft.store, graft.settings):  # retention_days, hourly
                yield
        finally:
            await voice_rtc.hang_up_all(app)  # before the store closes: they audit
            await voice_rooms.hang_up_all(app)
            await graft.aclose()
            shutdown_tracing()  # the spans still queued leave now

    app = FastAPI(
        title="graft",
        version=graft_version(),
        summary="OpenAI-compatible chat with tools, services and knowledge grafted on.",
        lifespan=lifespan,
        # HTTP request spans joining the caller's traceparent, only with [telemetry] traces.
        telemetry=fastapi_config(setup_tracing(graft.settings.telemetry)),
    )
    metrics = Metrics()
    app.state.graft = graft
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(assistants.router)
    app.include_router(conversations.router)
    app.include_router(keys.router)
    app.include_router(sessions.router)
    app.include_router(oidc.router)
    app.include_router(admin.router)
    app.include_router(privacy.router)
    app.include_router(approvals.router)
    app.include_router(cancel.router)  # POST /v1/conversations/{id}/cancel
    app.include_router(sentiment.router)
    app.include_router(knowledge.router)
    app.include_router(uploads.router)
    app.include_router(me.router)
    app.include_router(catalog.router)
    app.include_router(admin_users.router)
    app.include_router(feedback.router)
    app.include_router(model_stats.router)  # GET /v1/admin/models/stats
    app.include_router(voice_ws.router)  # GET /v1/voice/ws (WebSocket; authenticates itself)
    app.include_router(voice_rtc.router)  # /v1/voice/calls (WebRTC)
    app.include_router(voice_rooms.router)  # /v1/voice/rooms (WebRTC rooms)

    app.include_router(health.router)  # GET /healthz, GET /readyz

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
    )
    async def metrics_endpoint() -> Response:
        """Metrics in the Prometheus text format."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    install_ui(app, static_dir)  # /, /index.html, /assets/*, /favicon.svg; not in OpenAPI

    _complete_openapi(app)

    app.add_middleware(ChatFastPath, fastapi=app, endpoint=chat.chat_completions)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=graft.settings.limits.max_body_bytes,
        # Document uploads only: still refused before buffering when over their own limit.
        routes={uploads.UPLOAD_PATH: graft.settings.knowledge.max_upload_bytes},
    )
    app.add_middleware(RateLimit, graft=graft)  # added after = runs before: inside Authenticate
    app.add_middleware(Authenticate, graft=graft)
    install_cors(app, graft.settings.cors_origins)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestId)  # outermost: every log line of the request carries its id
    return app


def _complete_openapi(app: FastAPI) -> None:
    """Complete ``app``'s OpenAPI document with what FastAPI cannot see.

    The bodies the routes parse themselves (``graft.server.body``) and graft's error answers
    (``graft.server.errors``).
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            add_body_schemas(spec)
            document_errors(spec, public=PUBLIC_PATHS)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
