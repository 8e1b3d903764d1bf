"""Every request body has a deadline: a client that sends its body slowly, or never finishes
it, is answered 408 (`REQUEST_TIMEOUT`, in the error envelope) and its connection closes.

The deadline is kept in one place, around the server's `receive` of every HTTP request
(`BodyDeadline`), so that every way of reading a body (`read_body`, the streamed uploads and
forms) is bounded alike. It runs from the application's first read of the body, not from the
request's start, so that time the server spends before reading (authorizing the caller) is
not counted against the client. A body has `TICKETING_BODY_TIMEOUT` for each MiB it has begun:
a JSON body (1 MiB at most) has the timeout; an upload, whose size only the tenant's limit
bounds, has the timeout again for every further MiB received, so a large file over a slow
link still arrives (at a MiB per timeout, 35 KB/s at the default) while a client dribbling a
few bytes is cut off after the timeout as any other.

The deadline does not protect the database by itself: endpoints read their whole body before
any transaction begins, so that a slow body never holds a pooled connection; this bounds how
long a connection waits for one.
"""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive

from ticketing.kit.errors import RequestTimeout

MIB = 1024 * 1024


class BodyDeadline:
    """A request's `receive`, refusing (RequestTimeout) to wait for body past its deadline
    (see the module doc). Once the body is whole, it waits as the server's own: what comes
    after is the client going away, which a streamed answer listens for as long as it lasts."""

    __slots__ = ("_receive", "_received", "_started", "_timeout", "_whole")

    def __init__(self, receive: Receive, timeout: float) -> None:
        self._receive = receive
        self._timeout = timeout
        self._started: float | None = None
        self._received = 0
        self._whole = False

    async def __call__(self) -> Message:
        if self._whole:
            return await self._receive()
        now = asyncio.get_running_loop().time()
        if self._started is None:
            self._started = now
        deadline = self._started + self._timeout * (1 + self._received // MIB)
        try:
            async with asyncio.timeout_at(deadline):
                message = await self._receive()
        except TimeoutError:
            raise RequestTimeout(
                f"The request body did not arrive within {self._timeout:g} s"
                + (" per MiB" if self._received >= MIB else "")
            ) from None
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            self._whole = not message.get("more_body", False)
        else:  # the client went away
            self._whole = True
        return message
