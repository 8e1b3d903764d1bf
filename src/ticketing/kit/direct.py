"""Direct routes: hot endpoints served without walking the framework's routing.

A request to a FastAPI application passes the framework's own middleware (error and
telemetry wrappers, a body limit), the exception middleware, an exit stack for
dependencies, and a router that tries the path against every route in turn, before its
endpoint runs. For an endpoint that declares no dependencies and reads its request itself
(the create endpoint: `ticketing.tickets.endpoints.create_ticket`), that walk was about a
fifth of the process's CPU per create (measured with `make bench`'s per-create CPU figure:
1.15 -> 0.91 ms).

`DirectRoutes` matches such a route's method and path first and calls its endpoint with
the same application middleware the framework would have applied (the request id and access
log, metrics, write marks), the route in the scope (for the metrics' route label), and the
application's own exception handlers. Everything else goes to the framework unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Middleware = Callable[[ASGIApp], ASGIApp]


class IndexedHeaders(Headers):
    """A request's headers, looked up in a dict made once: the framework's scan the list of
    headers on every lookup, and a create looks up seven. The first of repeated headers
    is the one found, as there."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope=scope)
        index: dict[str, str] = {}
        for key, value in reversed(self._list):
            index[key.decode("latin-1")] = value.decode("latin-1")
        self._index = index

    def __getitem__(self, key: str) -> str:
        return self._index[key.lower()]

    def get(self, key: str, default: Any = None) -> Any:
        return self._index.get(key.lower(), default)

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower() in self._index


class DirectRequest(Request):
    """The request a direct route's endpoint gets: the framework's, with IndexedHeaders."""

    @property
    def headers(self) -> Headers:
        headers: Headers | None = self.__dict__.get("_headers")
        if headers is None:
            headers = self._headers = IndexedHeaders(self.scope)
        return headers


class _Direct:
    """One route: its endpoint behind the application's middleware."""

    def __init__(self, app: FastAPI, route: APIRoute, middleware: Sequence[Middleware]) -> None:
        endpoint: Endpoint = route.endpoint
        self.app = app
        self.route = route
        self.methods = frozenset(route.methods or ())

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            request = DirectRequest(scope, receive)
            try:
                response = await endpoint(request)
            except Exception as exc:
                handler = self._handler(exc)
                if handler is None:
                    raise  # answered by the request-id middleware, as for any route
                response = await handler(request, exc)
            await response(scope, receive, send)

        handled: ASGIApp = serve
        for wrap in reversed(middleware):
            handled = wrap(handled)
        self.handled = handled

    def _handler(
        self, exc: Exception
    ) -> Callable[[Request, Exception], Awaitable[Response]] | None:
        """The handler the application registered for this error's class (not the
        catch-all for Exception, which the request-id middleware stands in for)."""
        handlers: dict[Any, Any] = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]  # type: ignore[no-any-return]
        return None

    def match(self, scope: Scope) -> dict[str, str] | None:
        if scope["method"] not in self.methods:
            return None
        found = self.route.path_regex.match(scope["path"])
        return found.groupdict() if found else None


class DirectRoutes:
    """Serves the given routes of `app` directly (see the module doc)."""

    def __init__(
        self, app: FastAPI, routes: Sequence[APIRoute], middleware: Sequence[Middleware]
    ) -> None:
        self.routes = [_Direct(app, route, middleware) for route in routes]
        self.app = app

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serves an HTTP request to one of the routes and says so; False for any other."""
        for direct in self.routes:
            params = direct.match(scope)
            if params is not None:
                scope["app"] = self.app
                scope["route"] = direct.route
                scope["endpoint"] = direct.route.endpoint
                scope["path_params"] = params
                await direct.handled(scope, receive, send)
                return True
        return False


def find_route(app: FastAPI, path: str, method: str) -> APIRoute:
    """The application's route for `method` on the path template `path` (routers included
    without a prefix of their own, as this application's are)."""
    routes: list[Any] = list(app.routes)
    while routes:
        route = routes.pop()
        if isinstance(route, APIRoute):
            if route.path == path and method in (route.methods or ()):
                return route
        else:
            # An included router (kept whole by FastAPI) holds its routes.
            routes.extend(getattr(getattr(route, "original_router", None), "routes", ()))
    raise LookupError(f"no route {method} {path}")
