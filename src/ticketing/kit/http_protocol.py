"""The HTTP/1.x protocol the server runs: uvicorn's httptools protocol, except that

- a request the parser cannot read (a control character or NUL in a header, a malformed
  request line, a version it does not know such as `HTTP/1.2`, `HTTP/3.0` or `HTTP/x.y`), and
- a request line the parser reads but this server does not serve: any version other than
  HTTP/1.0 and HTTP/1.1 (`HTTP/2.0`, `HTTP/0.9`, or no version at all, which is HTTP/0.9),

are answered 400 with the error envelope like every other refusal, not with uvicorn's plain
text or, for the second kind, served as if they were HTTP/1.1. HTTP/2 is not spoken on this
port, so an `HTTP/2.0` request line here is a client error, not a request to serve. Requests
read before such a request on the same connection (pipelined) are answered first, in order,
and then the refusal: answering it at once and closing would leave them unanswered, a create
among them committed.

A response's status line and headers leave with the first part of its body, in one write to
the socket: the server writes them separately, each a system call and a packet of its own.
The head is held until the next write of the connection, or the end of the current step of
the event loop, whichever comes first (`_CombinedWrites`); every other write goes out at once,
in order, and nothing is held when the connection closes. Measured with two servers under the
same load at the same time (64 tenants' creates), that was about 7% of a create's CPU. (Holding
every write until the end of the step instead cost event streams: 1,000 streams' writes of
one read all waited, and `make bench-sse` went from p50 93 to 121 ms, peak RSS 231 to 297 MiB.)

At a graceful shutdown (SIGTERM), an idle keep-alive connection is closed after a short grace
instead of at once: a client may have sent a request on it that the server has not read yet,
and closing it would drop that request unanswered. A request that arrives within the grace is
served, on a connection that then closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("ticketing.access")

SERVED_VERSIONS = frozenset({"1.0", "1.1"})
SHUTDOWN_GRACE = 0.5  # seconds; a request already sent arrives well within it

_BODY = orjson.dumps(
    {
        "error": True,
        "code": "MALFORMED_REQUEST",
        "message": "The request is not valid HTTP/1.1",
        "status": 400,
    }
)


class _CombinedWrites:
    """A connection's transport that holds a response's head (a write starting with the
    status line) until the connection's next write or the end of the current step of the
    event loop, and sends both as one write (see the module doc). Everything else is the
    transport's own."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(b"HTTP/1.1 "):
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    _shutting_down = False
    _refusal_waits = False  # a malformed request, answered once those before it are

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Every write of the connection goes through it, the protocol's own (a 400) too, so
        # they stay in order.
        self.transport = _CombinedWrites(transport, self.loop)  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        # An error raised here stops the parser, which data_received answers with a 400.
        version = self.parser.get_http_version()
        if version not in SERVED_VERSIONS:
            raise httptools.HttpParserError(f"HTTP/{version} is not served")
        super().on_headers_complete()
        if self._shutting_down and self.cycle is not None:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        self._shutting_down = True
        if self._idle():
            self.loop.call_later(SHUTDOWN_GRACE, self._close_when_idle)
        else:
            super().shutdown()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _close_when_idle(self) -> None:
        if self._idle():
            self.transport.close()
        else:  # a request came within the grace: the connection closes after its answer
            super().shutdown()

    def send_400_response(self, msg: str) -> None:
        log.info("malformed request refused", extra={"status": 400, "reason": msg})
        if not self._idle() or self.pipeline:
            # Requests read before it are answered first (see the module doc).
            self._refusal_waits = True
            self.flow.pause_reading()
            return
        self._refuse()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal_waits and self._idle() and not self.pipeline:
            self._refuse()

    def _refuse(self) -> None:
        self._refusal_waits = False
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(_BODY)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                _BODY,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
