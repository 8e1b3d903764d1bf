"""Ticket queries: the only place ticket and display-ID SQL is written."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

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
from sqlalchemy.orm import aliased

from ticketing.events import outbox
from ticketing.kit.db import StatementPool
from ticketing.kit.tenancy import current_tenant
from ticketing.models import (
    DisplayIdCounter,
    IdempotencyKey,
    Tenant,
    Ticket,
    TicketComment,
    TicketHistory,
)
from ticketing.queues import repository as queue_repository

Executor = AsyncSession | AsyncConnection

NOT_DELETED = -1
# Written as a literal so that the planner can use the partial indexes on live tickets.
LIVE = Ticket.deleted_seq == literal_column(str(NOT_DELETED))


def _dialect(db: Executor) -> str:
    bind = db.get_bind() if isinstance(db, AsyncSession) else db
    return bind.dialect.name


def _insert_for(db: Executor) -> Any:
    return postgresql.insert if _dialect(db) == "postgresql" else sqlite.insert


# Counters kept beside the display-ID prefixes (which start with a letter): deletions, and
# live tickets per status (`#status:<status>`, whose sum is the number of live tickets).
DELETED_COUNTER = "#deleted"
STATUS_COUNTERS = "#status:"


def format_display_id(prefix: str, number: int) -> str:
    """`CTC-0054`: at least four digits, more when the number needs them (`CTC-10000`).

    The PostgreSQL create statement formats it the same way in SQL.
    """
    return f"{prefix}-{number:04d}"


def status_counter(status: str) -> str:
    """The counter of a tenant's live tickets in one status."""
    return f"{STATUS_COUNTERS}{status}"


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


async def count_live(session: AsyncSession, *, tenant_id: uuid.UUID) -> int:
    """The tenant's live tickets: the sum of its per-status counters (a few rows read by key).

    A create bumps its status's counter anyway, so no counter of its own is kept for the
    total: one hot row less for every create to update.
    """
    prefix = DisplayIdCounter.prefix
    # `;` follows `:`, so the range holds exactly the names that start with `#status:`.
    upper = STATUS_COUNTERS[:-1] + chr(ord(STATUS_COUNTERS[-1]) + 1)
    query = select(func.coalesce(func.sum(DisplayIdCounter.last_value), 0)).where(
        DisplayIdCounter.tenant_id == tenant_id, prefix >= STATUS_COUNTERS, prefix < upper
    )
    return int((await session.execute(query)).scalar_one())


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


async def append_history(
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
    """Records a change that leaves the ticket at `version` (a relation change, or a comment
    meeting a clock): the next entry of that version. Callers serialise these per ticket:
    relation writes hold the tenant's relation lock and share locks on the tickets, a
    comment holds the ticket's row lock."""
    entries = aliased(TicketHistory)
    following = (
        select(func.coalesce(func.max(entries.entry), 0) + 1)
        .where(
            entries.tenant_id == tenant_id,
            entries.ticket_id == ticket_id,
            entries.version == version,
        )
        .scalar_subquery()
    )
    await session.execute(
        sa_insert(TicketHistory).values(
            tenant_id=tenant_id,
            ticket_id=ticket_id,
            version=version,
            entry=following,
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


async def search_candidates(
    session: AsyncSession, *, pattern: str, limit: int
) -> list[uuid.UUID] | None:
    """The ids of the bound tenant's tickets whose search text matches `pattern`, from the
    trigram index of migration 0013; None on SQLite, or when more than `limit` match (a
    common needle, better answered by reading in sort order)."""
    if _dialect(session) != "postgresql":
        return None
    found = (
        await session.execute(
            select(func.ticketing_search_candidates(func.lower(pattern), limit + 1).label("ids"))
        )
    ).scalar_one()
    ids = [uuid.UUID(str(i)) for i in found]
    return ids if len(ids) <= limit else None


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
        .order_by(TicketHistory.version, TicketHistory.entry)
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
    # Routing and SLA (migration 0008).
    "priority",
    "queue_id",
    "round_robin",
    "sla",
    "sla_due_at",
    "sla_breach_at",
    "sla_sweep_at",
)
# The counters' names and deltas are sent as array literals in text (see _text_array).
_AS_TEXT = {"names": "::text::text[]", "deltas": "::text::bigint[]"}
_PLACEHOLDERS = ", ".join(
    f"${n}{_AS_TEXT.get(name, '')}" for n, name in enumerate(_CREATE_POSTGRESQL_PARAMS, start=1)
)
_CREATE_POSTGRESQL = (
    f"SELECT new_number, new_serial, new_assignee FROM ticketing_create_ticket({_PLACEHOLDERS})"  # noqa: S608 (placeholders only)
)


class Companion(Protocol):
    """Writes that belong to a create's transaction (a relation to another ticket).

    `before` runs ahead of the ticket insert, so it can lock what it needs before the
    create holds the counter locks (the order updates and deletes take them in); `after`
    runs once the ticket exists. Either may raise to roll the whole create back.
    """

    async def before(self, conn: AsyncConnection) -> None: ...

    async def after(
        self, conn: AsyncConnection, *, ticket_id: uuid.UUID, object_id: str
    ) -> None: ...


# A ticket without priority, queue or SLA clocks (the columns of migration 0008).
_UNROUTED = dict.fromkeys(
    ("priority", "queue_id", "sla", "sla_due_at", "sla_breach_at", "sla_sweep_at")
)

_TENANT_GATES: dict[uuid.UUID, asyncio.Semaphore] = {}
# How many creates of one tenant a process lets wait at the database at once: enough that
# the next one is there when the row lock is released, few enough not to pile up.
TENANT_GATE_SIZE = int(os.environ.get("TICKETING_TENANT_GATE", "4"))


def _tenant_gate(tenant_id: uuid.UUID) -> asyncio.Semaphore:
    gate = _TENANT_GATES.get(tenant_id)
    if gate is None:
        gate = _TENANT_GATES[tenant_id] = asyncio.Semaphore(TENANT_GATE_SIZE)
    return gate


def _text_array(elements: Iterable[str]) -> str:
    """A PostgreSQL array literal of elements already in their literal form.

    The driver sends a Python list as an array after asking, for the list and again for each
    element, whether it is a sequence (about 25 abstract-class checks a create); the literal
    is one string, cast to the array type in the statement.
    """
    return "{" + ",".join(elements) + "}"


def _quoted(name: str) -> str:
    """A text array element's content inside double quotes: backslash and quote escaped."""
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class FileBinding(Protocol):
    """Uploads a create binds to its ticket, in the create's transaction
    (ticketing.attachments.service.FileBinding)."""

    async def claim(self, db: AsyncConnection) -> dict[str, Any]:
        """Checks and locks the uploads; the ticket's `attachments` map."""

    async def bind(self, db: AsyncConnection, ticket_id: uuid.UUID) -> None:
        """Marks them as the ticket's; raises (rolling back the create) if one was taken."""


def _create_args(
    values: dict[str, Any],
    *,
    scope: str,
    config_version: int,
    counters: dict[str, int],
    changed_by: dict[str, Any],
    changes: list[dict[str, Any]],
    idempotency: tuple[str, str] | None,
    round_robin: str | None,
) -> list[Any]:
    names = sorted(counters)
    params = {
        **_UNROUTED,
        **values,
        "scope": scope,
        "config_version": config_version,
        "names": _text_array(f'"{_quoted(name)}"' for name in names),
        "deltas": _text_array(str(counters[name]) for name in names),
        "data": _json(values["data"]),
        "attachments": _json(values["attachments"]),
        "ticket_relation": _json(values["ticket_relation"]),
        "changed_by": _json(changed_by),
        "changes": _json(changes),
        "idempotency_caller": idempotency[0] if idempotency else None,
        "idempotency_key": idempotency[1] if idempotency else None,
        "round_robin": round_robin,
        "sla": _json(values.get("sla")),
    }
    return [params[name] for name in _CREATE_POSTGRESQL_PARAMS]


async def insert_new_ticket(
    engine: AsyncEngine,
    *,
    statements: StatementPool | None,
    config_version: int,
    counters: dict[str, int],
    values: dict[str, Any],
    changed_by: dict[str, Any],
    changes: list[dict[str, Any]],
    idempotency: tuple[str, str] | None = None,
    files: FileBinding | None = None,
    companion: Companion | None = None,
    round_robin: str | None = None,
) -> tuple[int, int, str | None] | None:
    """Creates a ticket, its counters and its history entry atomically.

    On PostgreSQL, `statements` is the statement pool of the engine's database, where the
    create runs as one statement (None on SQLite).

    With `idempotency` (caller, key), the pending idempotency record of that key is linked
    to the new ticket in the same transaction. With `round_robin` (the name of the queue's
    counter, also in `counters`), the assignee is the member of `values["queue_id"]` at the
    counter's new value among the members available at that moment (none when none is).
    With `files`, the uploads it names are bound to the ticket in the same transaction too,
    and `values["attachments"]` is set to their metadata; with a `companion` (a relation to
    another ticket), its writes join that transaction as well. On PostgreSQL the create is
    then a transaction of a few statements instead of one.

    Returns (display number, id_serial, assignee), or None when the tenant's configuration
    version is no longer `config_version` (nothing is written then). `values` holds every
    ticket column except the display number, object id, id_serial and assignee, which the
    database assigns.
    """
    arguments = {
        "config_version": config_version,
        "counters": counters,
        "changed_by": changed_by,
        "changes": changes,
        "idempotency": idempotency,
        "round_robin": round_robin,
    }
    postgresql = engine.dialect.name == "postgresql"
    if postgresql and (files is not None or companion is not None):
        return await _insert_in_transaction(
            engine, values=values, files=files, companion=companion, **arguments
        )
    if postgresql:
        if statements is None:
            raise ValueError("creates on PostgreSQL run on the database's statement pool")
        # Creates of one tenant take turns on its counter rows anyway; queueing them here
        # first keeps many database sessions from queueing on the same row lock, which costs
        # the database far more than the wait costs this process.
        # The statement is its own transaction and sets the request's tenant itself
        # (StatementPool).
        args = _create_args(values, scope=current_tenant(), **arguments)  # type: ignore[arg-type]
        async with _tenant_gate(values["tenant_id"]):
            row = await statements.fetchrow(_CREATE_POSTGRESQL, *args)
        if not row:
            return None
        # The function wrote the created event too (migration 0009).
        outbox.committed()
        return int(row[0]), int(row[1]), row[2]

    # SQLite: the transaction holds the database's write lock from BEGIN (IMMEDIATE).
    async with engine.begin() as conn:
        if companion is not None:
            await companion.before(conn)
        if files is not None:
            values["attachments"] = await files.claim(conn)
        version = await conn.scalar(
            select(Tenant.config_version).where(Tenant.id == values["tenant_id"])
        )
        if version != config_version:
            return None
        bumped = await bump_counters(conn, tenant_id=values["tenant_id"], deltas=counters)
        number = bumped[values["display_prefix"]]
        object_id = format_display_id(values["display_prefix"], number)
        assignee = None
        if round_robin is not None:
            members = await queue_repository.available_members(
                conn, tenant_id=values["tenant_id"], queue_id=values["queue_id"]
            )
            if members:
                assignee = members[(bumped[round_robin] - 1) % len(members)]
                changes = [*changes, {"field": "assignee", "old": None, "new": assignee}]
        row_values = {
            **values,
            "display_number": number,
            "object_id": object_id,
            "assignee": assignee,
        }
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
        if files is not None:
            await files.bind(conn, values["id"])
        await outbox.record(
            conn,
            kind=outbox.TICKET_CREATED,
            ticket={**row_values, "id_serial": id_serial},
            actor=changed_by,
            changes=changes,
        )
        if companion is not None:
            # After the created event, as on PostgreSQL (the create function writes it): the
            # related ticket's event follows the new ticket's.
            await companion.after(conn, ticket_id=values["id"], object_id=object_id)
    outbox.committed()
    return number, id_serial, assignee


async def _insert_in_transaction(
    engine: AsyncEngine,
    *,
    values: dict[str, Any],
    files: FileBinding | None,
    companion: Companion | None,
    **arguments: Any,
) -> tuple[int, int, str | None] | None:
    """The PostgreSQL create with uploads or a relation: what they need is locked and checked,
    the create function runs, and they are written, in one transaction on one connection (the
    function's tenant setting lasts until that transaction ends)."""
    async with _tenant_gate(values["tenant_id"]), engine.begin() as conn:
        # The first statement opens the transaction that the function call below joins.
        if companion is not None:
            await companion.before(conn)
        if files is not None:
            values["attachments"] = await files.claim(conn)
        args = _create_args(values, scope=current_tenant(), **arguments)
        driver: Any = (await conn.get_raw_connection()).driver_connection
        row = await driver.fetchrow(_CREATE_POSTGRESQL, *args)
        if row is None:
            return None
        number, id_serial = int(row[0]), int(row[1])
        if files is not None:
            await files.bind(conn, values["id"])
        if companion is not None:
            object_id = format_display_id(values["display_prefix"], number)
            await companion.after(conn, ticket_id=values["id"], object_id=object_id)
    # The function wrote the created event too (migration 0009).
    outbox.committed()
    return number, id_serial, row[2]


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
