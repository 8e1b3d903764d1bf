"""The ASGI application: routers, error rendering, health check, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from ticketing import __version__
from ticketing.attachments.endpoints import router as attachments_router
from ticketing.attachments.tasks import periodic_gc
from ticketing.auth.access import app_state
from ticketing.auth.reads import mark_write
from ticketing.catalog.endpoints import router as catalog_router
from ticketing.config import Settings, get_settings
from ticketing.events.endpoints import router as events_router
from ticketing.events.hub import end_streams_on_signals
from ticketing.kit.cors import Cors
from ticketing.kit.db import DATABASE_ERRORS, database_unavailable
from ticketing.kit.direct import DirectRoutes, Middleware, find_route
from ticketing.kit.errors import (
    AuthenticationFailure,
    Forbidden,
    InputValidationFailure,
    NotFound,
    PermissionFailure,
    ServiceUnavailable,
    TenantNotFound,
    TicketingError,
)
from ticketing.kit.logs import configure_logging
from ticketing.kit.requests import RequestIdMiddleware, request_id_var
from ticketing.kit.responses import JsonResponse, error_response, unexpected_error_response
from ticketing.kit.schemas import install_openapi
from ticketing.metrics.endpoints import router as metrics_router
from ticketing.metrics.registry import CREATE_ROUTE, Metrics, RequestMetrics
from ticketing.notifications import generator as notification_generator
from ticketing.notifications.endpoints import router as notifications_router
from ticketing.portal.api import router as portal_sessions_router
from ticketing.portal.endpoints import router as portal_router
from ticketing.queues.endpoints import router as queues_router
from ticketing.relations.endpoints import router as relations_router
from ticketing.sla import sweeper as sla_sweeper
from ticketing.state import AppState
from ticketing.stream_tickets.endpoints import router as stream_tickets_router
from ticketing.tenants.endpoints import router as tenants_router
from ticketing.tickets.endpoints import router as tickets_router
from ticketing.webhooks.endpoints import router as webhooks_router

log = logging.getLogger("ticketing")
audit_log = logging.getLogger("ticketing.audit")
# Refusals written to the audit log: who was turned away from what, and why.
AUDITED = (AuthenticationFailure, PermissionFailure, Forbidden, TenantNotFound)


class _HttpError(TicketingError):
    """A routing-level error (unknown path, wrong method) in the seed's envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = _HTTP_CODES.get(status, "HTTP_ERROR")


_HTTP_CODES = {405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


_HEALTH = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unhealthy"]},
        "database": {"type": "string", "enum": ["ok", "unreachable"]},
        "replicas": {
            "type": "array",
            "description": "Each configured replica (TICKETING_DATABASE_REPLICA_URLS): ok "
            "serves reads; lagging, unreachable and not a replica are skipped (the primary "
            "serves their reads). A replica never makes the service unhealthy.",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "host:port/database"},
                    "status": {
                        "type": "string",
                        "enum": ["ok", "lagging", "unreachable", "not a replica"],
                    },
                    "lagSeconds": {
                        "type": ["number", "null"],
                        "description": "How far behind the primary; null when unreachable",
                    },
                },
                "required": ["name", "status", "lagSeconds"],
            },
        },
    },
    "required": ["status", "database"],
}

_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _methods_for(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at the request's path."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]


# Young-generation collections after this many net allocations of tracked objects (the
# interpreter's default is 700).
GC_THRESHOLD = 50_000


class TicketingApp(FastAPI):
    """The application: FastAPI, with the create endpoint served as a direct route."""

    direct: DirectRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct
        if (
            direct is not None
            and scope["type"] == "http"
            and await direct.serve(scope, receive, send)
        ):
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the application for the given settings (default: from the environment)."""
    settings = settings or get_settings()
    if settings.json_logs:
        configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState.from_settings(settings)
        app.state.ticketing = state
        sweeper = asyncio.create_task(
            sla_sweeper.run_forever(
                state.engine, state.sessionmaker, interval=settings.sla_sweep_interval
            )
        )
        pool = state.engine.pool
        statements = state.statements
        metrics.watch(
            streams=lambda: state.hub.streams,
            pending_events=lambda: state.hub.waiting,
            pool_in_use=lambda: float(
                getattr(pool, "checkedout", lambda: 0)()
                + (statements.in_use() if statements else 0)
            ),
        )
        state.webhooks.on_outcome = lambda outcome: metrics.webhooks.labels(outcome).inc()
        if state.replicas is not None:
            state.replicas.on_read = lambda source: metrics.reads.labels(source).inc()
        if statements is not None:
            await statements.start()
        await state.hub.start()
        end_streams_on_signals()
        await state.webhooks.start()
        if state.replicas is not None:
            await state.replicas.start()
        # What is loaded by now (modules, routes, settings, the tenant caches' first entries)
        # lives as long as the process: keep the collector from walking it on every full
        # collection, and collect young objects less often (a request's objects are almost
        # all freed by reference counting; the collector is for the few cycles). Measured
        # with `perf record` under creates: the collector went from about 10% of the
        # process's CPU to under 1%.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        try:
            async with periodic_gc(settings, state.blobs):
                yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            if state.replicas is not None:
                await state.replicas.stop()
            await state.webhooks.stop()
            await state.hub.stop()
            if statements is not None:
                await statements.close()
            await state.engine.dispose()

    app = TicketingApp(
        title="Ticketing",
        version=__version__,
        description="Multi-tenant service desk API: create tickets from service catalog offers.",
        lifespan=lifespan,
    )
    metrics = Metrics()
    app.state.metrics = metrics
    # The application's middleware, innermost first.
    middleware: list[Middleware] = [
        partial(
            RequestIdMiddleware,
            # Only replicas need to know who wrote (read your writes).
            on_response=[mark_write] if settings.database_replica_urls.strip() else [],
            on_done=[RequestMetrics(metrics)],
        )
    ]
    origins = settings.resolved_cors_origins
    if origins:
        # Outermost, so that its headers are on every answer to a listed origin, also those
        # the request-id middleware makes itself (431, an unexpected error's 500). Not
        # installed without origins: other callers pay nothing for it.
        middleware.append(partial(Cors, origins=origins))
    for wrap in middleware:
        app.add_middleware(wrap)
    app.include_router(tickets_router)
    app.include_router(catalog_router)
    app.include_router(tenants_router)
    app.include_router(attachments_router)
    app.include_router(portal_router)
    app.include_router(portal_sessions_router)
    app.include_router(relations_router)
    app.include_router(queues_router)
    app.include_router(events_router)
    app.include_router(notifications_router)
    app.include_router(stream_tickets_router)
    app.include_router(webhooks_router)
    app.include_router(metrics_router)
    notification_generator.install()
    # The hot path: creates skip the framework's routing (ticketing.kit.direct).
    app.direct = DirectRoutes(
        app, [find_route(app, CREATE_ROUTE, "POST")], middleware=middleware[::-1]
    )
    install_openapi(app)

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Liveness and database reachability",
        responses={
            200: {"content": {"application/json": {"schema": _HEALTH}}},
            503: {
                "description": "The database cannot be reached",
                "content": {"application/json": {"schema": _HEALTH}},
            },
        },
    )
    async def healthz(request: Request) -> Response:
        state = app_state(request)
        replicas: dict[str, object] = {}
        if state.replicas is not None:
            # Checked now, not as of the last periodic check.
            await state.replicas.check()
            replicas["replicas"] = state.replicas.report()
        try:
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except DATABASE_ERRORS as exc:
            log.warning("health check: database unreachable: %r", exc)
            return JsonResponse(
                {"status": "unhealthy", "database": "unreachable", **replicas}, status_code=503
            )
        return JsonResponse({"status": "ok", "database": "ok", **replicas})

    # HEAD /healthz answers like GET without the body (load balancers probe with HEAD); not
    # a separate operation of the document.
    app.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)

    @app.exception_handler(TicketingError)
    async def on_ticketing_error(request: Request, exc: TicketingError) -> Response:
        if isinstance(exc, AUDITED):
            audit_log.warning(
                "access denied",
                extra={
                    "event": "access_denied",
                    "code": exc.code,
                    "status": exc.status,
                    "reason": exc.message,
                    "tenant": request.headers.get("x-tenantid", "")[:64] or None,
                    "subject": getattr(request.state, "subject", None),
                    "path": request.url.path,
                },
            )
        return error_response(exc, request_id=request_id_var.get())

    @app.exception_handler(RequestValidationError)
    async def on_request_validation(_request: Request, exc: RequestValidationError) -> Response:
        reasons: dict[str, list[str]] = {}
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"][1:]) or str(error["loc"][0])
            reasons.setdefault(key, []).append(str(error["msg"]))
        failure = InputValidationFailure(reasons, "Invalid request")
        return error_response(failure, request_id=request_id_var.get())

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> Response:
        error = (
            NotFound() if exc.status_code == 404 else _HttpError(exc.status_code, str(exc.detail))
        )
        response = error_response(error, request_id=request_id_var.get())
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            # The router names the methods of the first route the path matched; several
            # routes can share a path (GET and DELETE /ticket/{objectId}).
            response.headers["Allow"] = ", ".join(_methods_for(app, request))
        return response

    async def on_database_error(_request: Request, exc: Exception) -> Response:
        request_id = request_id_var.get()
        if database_unavailable(exc):
            log.error("database unavailable (request %s): %r", request_id, exc)
            failure: TicketingError = ServiceUnavailable(
                "The database is unavailable; retry shortly"
            )
        else:
            log.error("database error (request %s)", request_id, exc_info=exc)
            failure = TicketingError()
        return error_response(failure, request_id=request_id)

    # Registered per class (not only under Exception, whose handler answers and then lets the
    # server log the error and drop the connection) so that an outage is a plain 503.
    for error_class in DATABASE_ERRORS:
        app.add_exception_handler(error_class, on_database_error)

    # Errors no handler expects are answered by RequestIdMiddleware; this is the last resort
    # for one raised outside it.
    @app.exception_handler(Exception)
    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        return unexpected_error_response(exc, request_id=request_id_var.get())

    return app
