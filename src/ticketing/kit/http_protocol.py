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

Slow clients hold a connection for a bounded time only (the server's own protocol bounds none
of it but the idle time after an answer):

- A new connection has `header_timeout` (TICKETING_HEADER_TIMEOUT) to send a request's headers
  whole, and a request begun after an answer has as long from its first byte: a connection
  that sends nothing, or half a head, or a head a byte at a time, is closed then, with a 408
  in the envelope when part of a request came. Between requests an idle connection is kept
  the keep-alive timeout (TICKETING_KEEP_ALIVE_TIMEOUT), not the header timeout.
- A request's body has `body_timeout` (TICKETING_BODY_TIMEOUT) for each MiB begun, from the
  application's first read of it while it has not all come: past it the read raises
  RequestTimeout, which the application answers 408 in the envelope like any error. Every
  way of reading a body (`read_body`, the streamed uploads and forms) is bounded alike. A
  JSON body (1 MiB at most) has the timeout; an upload, which only the tenant's limit bounds,
  has it again for every further MiB received, so a large file over a slow link still
  arrives (a MiB per timeout: 35 KB/s at the default) while a client dribbling a few bytes
  is cut off as any other. The deadline is kept here rather than around the application's
  `receive`: the protocol knows whether the body has come, and a body that came with its
  headers (most) costs no timer, where one per read cost 10-20 us a request. Endpoints read
  their body before any transaction begins, so that a slow body never holds a pooled
  connection; this bounds how long the connection waits for it.
- An answer begun before its request's body has all arrived (a 408 for a body too slow; a
  401 given without reading the body) says `connection: close`, and the connection closes
  after it: reading on would let the client keep it as long as it likes.
- Such a close, and every other while the client may still be sending, lingers: the server
  ends its side (FIN) and discards what still comes for up to LINGER seconds before it closes.
  Closing a socket with unread data resets the connection, and a reset can destroy the answer
  before the client has read it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httptools
import orjson
from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ticketing.kit.errors import RequestTimeout

log = logging.getLogger("ticketing.access")

SERVED_VERSIONS = frozenset({"1.0", "1.1"})
SHUTDOWN_GRACE = 0.5  # seconds; a request already sent arrives well within it
HEADER_TIMEOUT = 10.0  # seconds; the default of TICKETING_HEADER_TIMEOUT
BODY_TIMEOUT = 30.0  # seconds per MiB; the default of TICKETING_BODY_TIMEOUT
MIB = 1024 * 1024
# Seconds a closing connection still reads (and drops) what the client sends: enough for the
# rest of a request in flight to arrive, so that closing does not reset the connection.
LINGER = 2.0

_MALFORMED = orjson.dumps(
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

    __slots__ = ("_close", "_closed", "_held", "_loop", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        loop: asyncio.AbstractEventLoop,
        close: Callable[[], None],
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._close = close  # the protocol's: it lingers when the client may be sending
        self._closed = False

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
        self._closed = True
        self._close()

    def is_closing(self) -> bool:
        return self._closed or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Cycle(RequestResponseCycle):
    """uvicorn's request and its answer, except that a read of the body waits until the
    body's deadline at most, and an answer begun before the body has all arrived closes the
    connection (see the module doc)."""

    body_timeout = BODY_TIMEOUT
    _body_started: float | None = None
    _received = 0

    async def receive(self) -> ASGIReceiveEvent:
        if not self.more_body or self.disconnected or self.response_complete:
            return await super().receive()  # what is left of the body is here, or none is
        if self._body_started is None:
            self._body_started = asyncio.get_running_loop().time()
        deadline = self._body_started + self.body_timeout * (1 + self._received // MIB)
        try:
            async with asyncio.timeout_at(deadline):
                message = await super().receive()
        except TimeoutError:
            per = " per MiB" if self._received >= MIB else ""
            raise RequestTimeout(
                f"The request body did not arrive within {self.body_timeout:g} s{per}"
            ) from None
        if message["type"] == "http.request":
            self._received += len(message["body"])
        return message

    async def send(self, message: ASGISendEvent) -> None:
        if not self.response_started and self.more_body and not self.disconnected:
            self.keep_alive = False
        await super().send(message)


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    _shutting_down = False
    _refusal_waits = False  # a malformed request, answered once those before it are
    _begun = False  # part of a request's head has come, not all of it
    _begun_at = 0.0  # when it began (the event loop's clock)
    _lingering = False
    _header_timer: asyncio.TimerHandle | None = None
    _linger_timer: asyncio.TimerHandle | None = None

    def __init__(
        self,
        *args: Any,
        header_timeout: float = HEADER_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._socket = transport
        # Every write of the connection goes through it, the protocol's own (a 400) too, so
        # they stay in order.
        self.transport = _CombinedWrites(transport, self.loop, self._close)  # type: ignore[assignment]
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a request that is not read (see the module doc)
        super().data_received(data)
        if self._begun and self._header_timer is None and not self.transport.is_closing():
            # A head that did not come whole with its first bytes (most do, and cost no timer).
            self._header_timer = self.loop.call_at(
                self._begun_at + self.header_timeout, self._headers_late
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._begun_at = self.loop.time()

    def on_headers_complete(self) -> None:
        self._begun = False
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        # An error raised here stops the parser, which data_received answers with a 400.
        version = self.parser.get_http_version()
        if version not in SERVED_VERSIONS:
            raise httptools.HttpParserError(f"HTTP/{version} is not served")
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.__class__ is RequestResponseCycle:
            # Made by uvicorn's own code just now, before its task has run.
            cycle.__class__ = _Cycle
            cycle.body_timeout = self.body_timeout  # type: ignore[attr-defined]
        if self._shutting_down and cycle is not None:
            cycle.keep_alive = False

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if not self._idle():
            # A request pipelined behind one being answered: the connection closes after it.
            self.cycle.keep_alive = False
        elif self._begun:
            self._answer_and_close(
                b"HTTP/1.1 408 Request Timeout\r\n",
                orjson.dumps(
                    {
                        "error": True,
                        "code": "REQUEST_TIMEOUT",
                        "message": "The request headers did not arrive within "
                        f"{self.header_timeout:g} s",
                        "status": 408,
                    }
                ),
            )
        else:
            self.transport.close()

    def _client_sending(self) -> bool:
        """Whether the client may still be sending the current request."""
        cycle = self.cycle
        return self._begun or (cycle is not None and cycle.more_body and not cycle.disconnected)

    def _close(self) -> None:
        """Closes the connection; lingering when the client may still be sending."""
        socket = self._socket
        if self._lingering or socket.is_closing():
            return
        if not self._client_sending() or not socket.can_write_eof():
            socket.close()
            return
        self._lingering = True
        socket.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER, socket.close)

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
        self._answer_and_close(b"HTTP/1.1 400 Bad Request\r\n", _MALFORMED)

    def _answer_and_close(self, status_line: bytes, body: bytes) -> None:
        """Answers with the error envelope `body` and closes the connection."""
        content = [status_line]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
