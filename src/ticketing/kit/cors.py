"""Cross-origin calls from browsers (CORS) for the origins in TICKETING_CORS_ORIGINS.

A page of a listed origin may call every endpoint with the API's own headers: its preflight
is answered 204 with `Access-Control-Allow-Origin` (the page's origin, never `*`), the
methods, the request headers the API reads, `Access-Control-Max-Age` and `Vary`; every
answer to it, errors included, carries `Access-Control-Allow-Origin` and
`Access-Control-Expose-Headers` naming the response headers a client needs (`ETag`,
`X-Request-ID`, `Retry-After`, ...), so browser code can read an error's envelope too. A
listed origin's page may be public and the service on a private network (Chromium's Private
Network Access preflight is allowed).

Credentials (cookies, TLS client certificates) are not allowed: the API authenticates with
the bearer token in `authorization`, and the portal's session cookie must not ride along on
another origin's calls. An event stream, which a browser's EventSource cannot open with
headers, is opened with a stream ticket instead (ticketing.events.stream_tickets).

Anything else is allowed nothing: a request with no `Origin` or from an origin not listed
is served as it would be and gets no `Access-Control-*` header (only `Vary: Origin`, so a
shared cache keeps the answers apart), and a preflight of an origin not listed is answered
204 with no `Access-Control-*` header, so the browser refuses the call. A preflight of a
listed origin asking for a method or header the API does not take is 400
INPUT_VALIDATION_FAILURE naming each, again with no `Access-Control-*` header.

Starlette's CORSMiddleware does the header work; what is changed is that nothing is added
for origins not listed (it adds `Access-Control-Expose-Headers` to their answers, and the
methods and headers to their refused preflights) and that refusals are the envelope.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing.kit.errors import InputValidationFailure, Reasons
from ticketing.kit.responses import error_response

METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
# The request headers the API reads (CORS-safelisted ones are allowed anyway).
REQUEST_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "if-match",
    "if-none-match",
    "issupportrequest",
    "last-event-id",
    "range",
    "realmname",
    "x-request-id",
    "x-tenantid",
)
# The response headers the API sends that a browser hides unless named.
RESPONSE_HEADERS = (
    "Accept-Ranges",
    "Allow",
    "Content-Disposition",
    "Content-Range",
    "ETag",
    "Idempotent-Replayed",
    "Retry-After",
    "WWW-Authenticate",
    "X-Request-ID",
)
# Seconds a browser may reuse a preflight's answer.
MAX_AGE = 600


class Cors(CORSMiddleware):
    """CORS for exactly the listed origins (see the module doc)."""

    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=METHODS,
            allow_headers=REQUEST_HEADERS,
            allow_credentials=False,
            allow_private_network=True,
            expose_headers=RESPONSE_HEADERS,
            max_age=MAX_AGE,
        )
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _origin(scope)
        if origin is None or origin not in self.origins:
            if (
                origin is not None
                and scope["method"] == "OPTIONS"
                and any(key == b"access-control-request-method" for key, _ in scope["headers"])
            ):
                # A preflight of an origin not listed: answered, and allowing nothing.
                await Response(status_code=204, headers={"Vary": "Origin"})(scope, receive, send)
                return
            await self.app(scope, receive, _vary_on_origin(send))
            return
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self.preflight_response(request_headers=headers)(scope, receive, send)
            return
        await self.simple_response(scope, receive, send, request_headers=headers)

    def preflight_response(self, request_headers: Headers) -> Response:
        """204 with the allowed methods and headers; 400 naming what the API does not take."""
        reasons = Reasons()
        method = request_headers["access-control-request-method"]
        if method not in self.allow_methods:
            reasons.add(
                "Access-Control-Request-Method",
                f"Method {method} is not allowed; allowed: {', '.join(METHODS)}",
            )
        requested = request_headers.get("access-control-request-headers") or ""
        for name in (h.strip().lower() for h in requested.split(",")):
            if name and name not in self.allow_headers:
                reasons.add("Access-Control-Request-Headers", f"Header {name} is not allowed")
        if reasons:
            return error_response(InputValidationFailure(reasons.reason, "CORS preflight refused"))
        headers = {
            **self.preflight_headers,
            "Access-Control-Allow-Origin": request_headers["origin"],
        }
        if request_headers.get("access-control-request-private-network") is not None:
            # A public page calling a service on a private network: the origin is listed.
            headers["Access-Control-Allow-Private-Network"] = "true"
        return Response(status_code=204, headers=headers)


def _origin(scope: Scope) -> str | None:
    """The request's Origin header (the first, as everywhere), without parsing the others."""
    for key, value in scope["headers"]:
        if key == b"origin":
            return str(value.decode("latin-1"))
    return None


def _vary_on_origin(send: Send) -> Send:
    """`send` with `Vary: Origin` on the response: a shared cache must not hand an answer
    without CORS headers to a listed origin's page, or the other way round."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.add_vary_header("Origin")
        await send(message)

    return sending
