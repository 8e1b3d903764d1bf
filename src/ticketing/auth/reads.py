"""Where a request's reads run: a streaming replica when one is fresh enough, else the primary.

`run_read` serves a read that changes nothing from a replica (see ticketing.kit.replicas for
which one and when), falling back to the primary when none qualifies or the replica fails
mid-read; the work is run again there from the start, which a read can afford. Replica
connections carry the caller's tenant like the primary's (row-level security): they come from
engines made the same way.

`mark_write` remembers, for each caller, that a write of theirs has committed, so that their
next reads wait for a replica to replay it, or go to the primary: a caller never reads older
data than they wrote. It marks any request with an unsafe method that was not itself a read
and did not fail with a 4xx (which changes nothing); it runs no statement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.types import Scope

from ticketing.auth.access import app_state, authenticate
from ticketing.kit.db import DATABASE_ERRORS, transaction

_T = TypeVar("_T")

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def run_read(
    request: Request, work: Callable[[AsyncSession], Awaitable[_T]], *, fresh: bool = False
) -> _T:
    """Runs `work` in a read transaction on a replica that has everything the caller wrote
    (and with `fresh`, everything committed before now), else on the primary."""
    state = app_state(request)
    replicas = state.replicas
    request.state.read_only = True
    if replicas is not None:
        # The caller is needed before the session: their writes decide which replica may serve.
        await authenticate(request)
        needed = await replicas.required_position(
            getattr(request.state, "caller", None), fresh=fresh
        )
        replica = await replicas.choose(needed)
        if replica is not None:
            try:
                async with transaction(replica.sessionmaker) as session:
                    result = await work(session)
            except DATABASE_ERRORS as exc:
                replicas.failed(replica, exc)
            else:
                replicas.on_read("replica")
                return result
        replicas.on_read("primary")
    async with transaction(state.sessionmaker) as session:
        return await work(session)


def mark_write(scope: Scope, status: int) -> None:
    """Notes a caller's committed write as its answer starts (see the module doc): the
    request-id middleware's `on_response` hook (ticketing.kit.requests)."""
    if scope["method"] in _SAFE_METHODS or 400 <= status < 500:
        return
    state = scope.get("state") or {}
    caller = state.get("caller")
    if caller is None or state.get("read_only"):
        return
    ticketing = getattr(scope["app"].state, "ticketing", None)
    replicas = getattr(ticketing, "replicas", None)
    if replicas is not None:
        replicas.note_write(caller)
