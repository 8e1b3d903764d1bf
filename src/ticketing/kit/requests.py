"""Request ids (taken from X-Request-ID when sane, else made) and the access log line."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from functools import lru_cache
from itertools import chain

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing.kit.direct import DirectRequest
from ticketing.kit.errors import PayloadTooLarge
from ticketing.kit.ids import new_request_id
from ticketing.kit.numbers import parse_digits
from ticketing.kit.responses import unexpected_error_response

MAX_BODY_BYTES = 1024 * 1024
# All request headers together; real clients send a few KiB (a bearer token is ~1 KiB).
MAX_HEADER_BYTES = 32 * 1024

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


access_log = logging.getLogger("ticketing.access")


# Called as a response starts, with the request's scope and the response's status.
OnResponse = Callable[[Scope, int], None]
# Called once a request is done: its scope, the response's status, seconds taken.
OnDone = Callable[[Scope, int, float], None]


class RequestIdMiddleware:
    """Gives every request an id, echoes it in X-Request-ID, and logs the request once done:
    request id, tenant, route, status and latency.

    What else watches every answer (the metrics, the replicas' write marks) hooks in here
    rather than as middleware of its own: each layer of middleware wraps the request and
    every message of its answer again (with creates over 64 tenants, two more layers were
    about 4% of the process's CPU per create).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        on_response: Sequence[OnResponse] = (),
        on_done: Sequence[OnDone] = (),
    ) -> None:
        self.app = app
        self.on_response = tuple(on_response)
        self.on_done = tuple(on_done)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(map(len, chain.from_iterable(scope["headers"]))) > MAX_HEADER_BYTES:
            await _refuse_headers(send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _SANE.match(incoming) else new_request_id()
        # Not reset afterwards: each request runs in its own task, and the error handlers
        # that render a 500 run after this middleware has been unwound.
        request_id_var.set(request_id)
        header = (b"x-request-id", request_id.encode())

        started = time.perf_counter()
        status = 500
        responding = False

        on_response = self.on_response

        async def send_with_id(message: Message) -> None:
            nonlocal status, responding
            if message["type"] == "http.response.start":
                status = message["status"]
                responding = True
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                message["headers"] = [*headers, header]
                for hook in on_response:
                    hook(scope, status)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Answered here, not by the framework's last-resort handler: that one answers and
            # then re-raises, and the server drops the connection, so a keep-alive client
            # would meet a reset on its next request.
            if responding:
                raise
            response = unexpected_error_response(exc, request_id=request_id)
            await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            for done in self.on_done:
                done(scope, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                _log_request(scope, status, seconds)


def _log_request(scope: Scope, status: int, seconds: float) -> None:
    route = scope.get("route")
    access_log.info(
        "request",
        extra={
            "method": scope["method"],
            "route": getattr(route, "path", scope["path"]),
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
            "tenant": _header(scope, b"x-tenantid"),
        },
    )


async def _refuse_headers(send: Send) -> None:
    body = orjson.dumps(
        {
            "error": True,
            "code": "REQUEST_HEADER_FIELDS_TOO_LARGE",
            "message": f"Request headers must not exceed {MAX_HEADER_BYTES} bytes",
            "status": 431,
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 431,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))[:64]
    return None


@lru_cache(maxsize=1024)
def _parsed_query(raw: bytes) -> QueryParams:
    return QueryParams(raw)


def query_params(request: Request) -> QueryParams:
    """The request's query parameters; a short query string is parsed once per distinct
    string (an integration sends the same few over and over; the parsed form cannot be
    changed), a long one every time (the cache holds short ones only)."""
    raw: bytes = request.scope["query_string"]
    return _parsed_query(raw) if len(raw) <= 256 else QueryParams(raw)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """Reads the request body, refusing (413) anything over `limit` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if (parse_digits(declared) or 0) > limit:
        raise PayloadTooLarge(f"Request body must not exceed {limit} bytes")
    chunks: list[bytes] = []
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body must not exceed {limit} bytes")
        chunks.append(chunk)

    if isinstance(request, DirectRequest):
        # Nothing read a direct route's body before its endpoint: straight from the server
        # (the framework's reading goes through an async generator).
        receive = request.receive
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            take(message.get("body", b""))
            more = message.get("more_body", False)
    else:
        async for chunk in request.stream():
            take(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
