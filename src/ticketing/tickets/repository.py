"""Ticket queries: the only place ticket and display-ID SQL is written."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Select,
    delete,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from ticketing.events import outbox
from ticketing.kit.tenancy import scoped_by_statement
from ticketing.models import (
    DisplayIdCounter,
    IdempotencyKey,
    Tenant,
    Ticket,
    TicketComment,
    TicketHistory,
)

Executor = AsyncSession | AsyncConnection

NOT_DELETED = -1
# Written as a literal so that the planner can use the partial indexes on live tickets.
LIVE = Ticket.deleted_seq == literal_column(str(NOT_DELETED))


def _dialect(db: Executor) -> str:
    bind = db.get_bind() if isinstance(db, AsyncSession) else db
    return bind.dialect.name


def _insert_for(db: Executor) -> Any:
    return postgresql.insert if _dialect(db) == "postgresql" else sqlite.insert


# Counters kept beside the display-ID prefixes (which start with a letter).
LIVE_COUNTER = "#live"
DELETED_COUNTER = "#deleted"


def format_display_id(prefix: str, number: int) -> str:
    """`CTC-0054`: at least four digits, more when the number needs them (`CTC-10000`).

    The PostgreSQL create statement formats it the same way in SQL.
    """
    return f"{prefix}-{number:04d}"


def status_counter(status: str) -> str:
    """The counter of a tenant's live tickets in one status."""
    return f"#status:{status}"


async def bump_counters(
    session: Executor, *, tenant_id: uuid.UUID, deltas: dict[str, int]
) -> dict[str, int]:
    """Adds each delta to the tenant's named counter in one statement; returns the new values.

    The upsert locks the counter rows until the transaction ends, so display numbers are
    unique across processes, and a rolled-back create gives its number back: no gaps. Rows
    are locked in name order, so two transactions never wait on each other in a cycle.
    """
    insert = _insert_for(session)
    rows = [
        {"tenant_id": tenant_id, "prefix": name, "last_value": delta}
        for name, delta in sorted(deltas.items())
    ]
    statement = insert(DisplayIdCounter).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[DisplayIdCounter.tenant_id, DisplayIdCounter.prefix],
        set_={"last_value": DisplayIdCounter.last_value + statement.excluded.last_value},
    ).returning(DisplayIdCounter.prefix, DisplayIdCounter.last_value)
    result = await session.execute(statement)
    return {name: int(value) for name, value in result.all()}


async def sum_counters(session: AsyncSession, *, tenant_id: uuid.UUID, names: list[str]) -> int:
    """The sum of some of the tenant's counters (a missing counter is 0)."""
    query = select(func.coalesce(func.sum(DisplayIdCounter.last_value), 0)).where(
        DisplayIdCounter.tenant_id == tenant_id, DisplayIdCounter.prefix.in_(names)
    )
    return int((await session.execute(query)).scalar_one())


async def insert_ticket(session: Executor, *, values: dict[str, Any]) -> int:
    """Inserts a ticket row and returns its id_serial."""
    insert = _insert_for(session)
    if _dialect(session) == "sqlite":
        # SQLite has no identity for a non-key column; its writers are serialised, so the
        # next value can be read inside the insert.
        values = {
            **values,
            "id_serial": select(func.coalesce(func.max(Ticket.id_serial), 0) + 1).scalar_subquery(),
        }
    statement = insert(Ticket).values(**values).returning(Ticket.id_serial)
    return int((await session.execute(statement)).scalar_one())


async def insert_history(
    session: Executor,
    *,
    tenant_id: uuid.UUID,
    ticket_id: uuid.UUID,
    version: int,
    action: str,
    at: Any,
    by: dict[str, Any],
    changes: list[dict[str, Any]],
) -> None:
    """Records one change of a ticket."""
    await session.execute(
        sa_insert(TicketHistory).values(
            tenant_id=tenant_id,
            ticket_id=ticket_id,
            version=version,
            action=action,
            changed_at=at,
            changed_by=by,
            changes=changes,
        )
    )


def scoped(tenant_id: uuid.UUID, *, submitted_by: str | None = None) -> Select[Any]:
    """The one place ticket reads are scoped: the tenant's live tickets (and, for callers who
    may only see their own, the ones they submitted)."""
    query = select(Ticket.__table__).where(Ticket.tenant_id == tenant_id, LIVE)
    if submitted_by is not None:
        query = query.where(Ticket.submitted_by == submitted_by)
    return query


async def get_ticket(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    object_id: str,
    submitted_by: str | None = None,
    for_update: bool = False,
) -> RowMapping | None:
    """Gets a live ticket by its display ID."""
    query = scoped(tenant_id, submitted_by=submitted_by).where(Ticket.object_id == object_id)
    if for_update:
        query = query.with_for_update()
    row: RowMapping | None = (await session.execute(query)).mappings().first()
    return row


async def update_ticket(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    ticket_id: uuid.UUID,
    expected_etag: uuid.UUID,
    values: dict[str, Any],
) -> RowMapping | None:
    """Writes `values` only if the ticket's etag is still `expected_etag`; None otherwise."""
    statement = (
        update(Ticket)
        .where(
            Ticket.tenant_id == tenant_id,
            Ticket.id == ticket_id,
            Ticket.etag == expected_etag,
            LIVE,
        )
        .values(**values)
        .returning(*Ticket.__table__.columns)
    )
    row: RowMapping | None = (await session.execute(statement)).mappings().first()
    return row


async def list_tickets(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    submitted_by: str | None,
    where: ColumnElement[bool],
    order_by: tuple[Any, ...],
    top: int,
    offset: int,
) -> list[RowMapping]:
    """Gets one page of the tenant's tickets matching `where`."""
    query = (
        scoped(tenant_id, submitted_by=submitted_by)
        .where(where)
        .order_by(*order_by)
        .limit(top)
        .offset(offset)
    )
    return list((await session.execute(query)).mappings().all())


async def count_tickets(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    submitted_by: str | None,
    where: ColumnElement[bool],
) -> int:
    """Counts the tenant's tickets matching `where`."""
    inner = scoped(tenant_id, submitted_by=submitted_by).where(where).with_only_columns(Ticket.id)
    query = select(func.count()).select_from(inner.subquery())
    return int((await session.execute(query)).scalar_one())


async def list_history(
    session: AsyncSession, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID
) -> list[TicketHistory]:
    """Gets every recorded change of a ticket, oldest first."""
    query = (
        select(TicketHistory)
        .where(TicketHistory.tenant_id == tenant_id, TicketHistory.ticket_id == ticket_id)
        .order_by(TicketHistory.version)
    )
    return list((await session.scalars(query)).all())


async def insert_comment(session: AsyncSession, *, comment: TicketComment) -> None:
    """Adds a comment."""
    session.add(comment)
    await session.flush()


async def list_comments(
    session: AsyncSession, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID, internal: bool
) -> list[TicketComment]:
    """Gets a ticket's comments, oldest first; internal ones only when `internal`."""
    query = select(TicketComment).where(
        TicketComment.tenant_id == tenant_id, TicketComment.ticket_id == ticket_id
    )
    if not internal:
        query = query.where(TicketComment.internal.is_(False))
    query = query.order_by(TicketComment.created_at, TicketComment.id)
    return list((await session.scalars(query)).all())


# The whole create is one call of the database function of migration 0005: one statement,
# so that PostgreSQL holds the counter locks only while it runs and commits (in autocommit
# mode no client round trip happens while they are held), and it sets the request's tenant
# for itself. Its guard makes the create a no-op when the tenant's configuration changed
# since the request was validated.
_CREATE_POSTGRESQL_PARAMS = (
    "scope",
    "tenant_id",
    "config_version",
    "names",
    "deltas",
    "id",
    "display_prefix",
    "team_id",
    "item_type_id",
    "offer_id",
    "source",
    "summary",
    "data",
    "attachments",
    "ticket_relation",
    "etag",
    "version",
    "status_type",
    "status_category",
    "submitted_by",
    "is_support_request",
    "created_at",
    "changed_by",
    "changes",
    "idempotency_caller",
    "idempotency_key",
)
_PLACEHOLDERS = ", ".join(f"${n}" for n in range(1, len(_CREATE_POSTGRESQL_PARAMS) + 1))
_CREATE_POSTGRESQL = f"SELECT new_number, new_serial FROM ticketing_create_ticket({_PLACEHOLDERS})"  # noqa: S608 (placeholders only)


_TENANT_GATES: dict[uuid.UUID, asyncio.Semaphore] = {}
# How many creates of one tenant a process lets wait at the database at once: enough that
# the next one is there when the row lock is released, few enough not to pile up.
TENANT_GATE_SIZE = int(os.environ.get("TICKETING_TENANT_GATE", "4"))


def _tenant_gate(tenant_id: uuid.UUID) -> asyncio.Semaphore:
    gate = _TENANT_GATES.get(tenant_id)
    if gate is None:
        gate = _TENANT_GATES[tenant_id] = asyncio.Semaphore(TENANT_GATE_SIZE)
    return gate


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def insert_new_ticket(
    engine: AsyncEngine,
    *,
    config_version: int,
    counters: dict[str, int],
    values: dict[str, Any],
    changed_by: dict[str, Any],
    changes: list[dict[str, Any]],
    idempotency: tuple[str, str] | None = None,
) -> tuple[int, int] | None:
    """Creates a ticket, its counters and its history entry atomically.

    With `idempotency` (caller, key), the pending idempotency record of that key is linked
    to the new ticket in the same transaction.

    Returns (display number, id_serial), or None when the tenant's configuration version is
    no longer `config_version` (nothing is written then). `values` holds every ticket column
    except the display number, object id and id_serial, which the database assigns.
    """
    if engine.dialect.name == "postgresql":
        params = {
            **values,
            "config_version": config_version,
            "names": sorted(counters),
            "deltas": [counters[name] for name in sorted(counters)],
            "data": _json(values["data"]),
            "attachments": _json(values["attachments"]),
            "ticket_relation": _json(values["ticket_relation"]),
            "changed_by": _json(changed_by),
            "changes": _json(changes),
            "idempotency_caller": idempotency[0] if idempotency else None,
            "idempotency_key": idempotency[1] if idempotency else None,
        }
        # Creates of one tenant take turns on its counter rows anyway; queueing them here
        # first keeps many database sessions from queueing on the same row lock, which costs
        # the database far more than the wait costs this process.
        # The driver's connections run each statement in its own transaction unless told
        # otherwise, which is what this statement wants.
        # The statement sets the request's tenant itself, so the connection is not given it.
        with scoped_by_statement() as params["scope"]:
            args = [params[name] for name in _CREATE_POSTGRESQL_PARAMS]
            async with _tenant_gate(values["tenant_id"]), engine.connect() as conn:
                driver: Any = (await conn.get_raw_connection()).driver_connection
                try:
                    row = await driver.fetchrow(_CREATE_POSTGRESQL, *args)
                except BaseException:
                    # The pool cannot see what failed on the driver's connection: never hand
                    # it out again.
                    await conn.invalidate()
                    raise
        if not row:
            return None
        # The function wrote the created event too (migration 0009).
        outbox.committed()
        return int(row[0]), int(row[1])

    # SQLite: the transaction holds the database's write lock from BEGIN (IMMEDIATE).
    async with engine.begin() as conn:
        version = await conn.scalar(
            select(Tenant.config_version).where(Tenant.id == values["tenant_id"])
        )
        if version != config_version:
            return None
        number = (await bump_counters(conn, tenant_id=values["tenant_id"], deltas=counters))[
            values["display_prefix"]
        ]
        object_id = format_display_id(values["display_prefix"], number)
        row_values = {**values, "display_number": number, "object_id": object_id}
        id_serial = await insert_ticket(conn, values=row_values)
        await insert_history(
            conn,
            tenant_id=values["tenant_id"],
            ticket_id=values["id"],
            version=values["version"],
            action="create",
            at=values["created_at"],
            by=changed_by,
            changes=changes,
        )
        if idempotency is not None:
            await conn.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.tenant_id == values["tenant_id"],
                    IdempotencyKey.caller == idempotency[0],
                    IdempotencyKey.key == idempotency[1],
                )
                .values(ticket_id=values["id"])
            )
        await outbox.record(
            conn,
            kind=outbox.TICKET_CREATED,
            ticket={**row_values, "id_serial": id_serial},
            actor=changed_by,
            changes=changes,
        )
    outbox.committed()
    return number, id_serial


async def claim_idempotency_key(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    caller: str,
    key: str,
    request_hash: str,
    now: datetime,
    expires_before: datetime,
    abandoned_before: datetime,
) -> IdempotencyKey | None:
    """Claims a key for a new request: None when the caller now owns it (a pending record
    was written), else the record of the request that used it first.

    An expired record, or a pending one whose request died before creating anything, is
    taken over.
    """
    insert = _insert_for(session)
    inserted = await session.execute(
        insert(IdempotencyKey)
        .values(
            tenant_id=tenant_id, caller=caller, key=key, request_hash=request_hash, created_at=now
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    )
    if inserted.first() is not None:
        return None
    record = (
        await session.execute(
            select(IdempotencyKey)
            .where(
                IdempotencyKey.tenant_id == tenant_id,
                IdempotencyKey.caller == caller,
                IdempotencyKey.key == key,
            )
            .with_for_update()
        )
    ).scalar_one()
    expired = record.created_at.replace(tzinfo=UTC) < expires_before
    abandoned = (
        record.status_code is None
        and record.ticket_id is None
        and record.created_at.replace(tzinfo=UTC) < abandoned_before
    )
    if expired or abandoned:
        record.request_hash = request_hash
        record.created_at = now
        record.ticket_id = None
        record.status_code = None
        record.response = None
        record.etag = None
        await session.flush()
        return None
    return record


async def finish_idempotency_key(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    caller: str,
    key: str,
    status_code: int,
    response: str,
    etag: str | None,
) -> None:
    """Records the answer given for a key."""
    await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.caller == caller,
            IdempotencyKey.key == key,
        )
        .values(status_code=status_code, response=response, etag=etag)
    )


async def release_idempotency_key(
    session: AsyncSession, *, tenant_id: uuid.UUID, caller: str, key: str
) -> None:
    """Drops a pending key whose request failed on the server side, so a retry can run."""
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.caller == caller,
            IdempotencyKey.key == key,
            IdempotencyKey.status_code.is_(None),
            IdempotencyKey.ticket_id.is_(None),
        )
    )


async def get_ticket_by_id(
    session: AsyncSession, *, tenant_id: uuid.UUID, ticket_id: uuid.UUID
) -> RowMapping | None:
    """Gets a ticket by its record id, deleted or not."""
    query = select(Ticket.__table__).where(Ticket.tenant_id == tenant_id, Ticket.id == ticket_id)
    row: RowMapping | None = (await session.execute(query)).mappings().first()
    return row
