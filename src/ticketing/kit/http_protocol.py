"""The HTTP/1.x protocol the server runs: uvicorn's httptools protocol, except that

- a request the parser cannot read (a control character or NUL in a header, a malformed
  request line, a version it does not know such as `HTTP/1.2`, `HTTP/3.0` or `HTTP/x.y`), and
- a request line the parser reads but this server does not serve: any version other than
  HTTP/1.0 and HTTP/1.1 (`HTTP/2.0`, `HTTP/0.9`, or no version at all, which is HTTP/0.9),

are answered 400 with the error envelope like every other refusal, not with uvicorn's plain
text or, for the second kind, served as if they were HTTP/1.1. HTTP/2 is not spoken on this
port, so an `HTTP/2.0` request line here is a client error, not a request to serve.

At a graceful shutdown (SIGTERM), an idle keep-alive connection is closed after a short grace
instead of at once: a client may have sent a request on it that the server has not read yet,
and closing it would drop that request unanswered. A request that arrives within the grace is
served, on a connection that then closes.
"""

from __future__ import annotations

import logging

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


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    _shutting_down = False

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
