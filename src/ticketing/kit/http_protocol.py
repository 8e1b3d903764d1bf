"""The HTTP/1.1 protocol the server runs: uvicorn's httptools protocol, except that a request
the parser cannot read (a control character or NUL in a header, a malformed request line)
is answered with the error envelope like every other refusal, not uvicorn's plain text."""

from __future__ import annotations

import logging

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("ticketing.access")

_BODY = orjson.dumps(
    {
        "error": True,
        "code": "MALFORMED_REQUEST",
        "message": "The request is not valid HTTP/1.1",
        "status": 400,
    }
)


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
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
