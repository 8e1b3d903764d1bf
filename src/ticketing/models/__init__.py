"""All tables. Every table is keyed by tenant first, so the schema can be sharded by tenant."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType, Any: JsonType}


class Tenant(Base):
    """An organisation; its users log in through one identity-provider realm."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    realm: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(20))
    # Bumped whenever the tenant's configuration changes; processes key their caches on it.
    config_version: Mapped[int] = mapped_column(Integer, default=1)
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    # The configuration file's `attachments` policy (ticketing.attachments); NULL: defaults.
    attachment_policy: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)


class Team(Base):
    """A team of a tenant, addressed by its slug (`teamId`)."""

    __tablename__ = "teams"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    create_roles: Mapped[list[Any]]

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


class TicketType(Base):
    """A ticket type (item type): its fields, workflow and display-ID prefix."""

    __tablename__ = "ticket_types"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str | None] = mapped_column(String(20))
    create_roles: Mapped[list[Any]]
    workflow: Mapped[dict[str, Any]]
    position: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


class TicketField(Base):
    """One typed field of a ticket type, keyed by UUID."""

    __tablename__ = "ticket_fields"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    ticket_type_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(30))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    default_value: Mapped[Any] = mapped_column(JsonType, nullable=True)
    options: Mapped[list[Any]]
    limits: Mapped[dict[str, Any]]

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "ticket_type_id"],
            ["ticket_types.tenant_id", "ticket_types.id"],
            ondelete="CASCADE",
        ),
    )


class Offer(Base):
    """A service catalog offer: what a requester picks; it names the ticket type it creates."""

    __tablename__ = "offers"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str | None] = mapped_column(String(200))
    item_type: Mapped[str] = mapped_column(String(100))
    catalog_types: Mapped[list[Any]]
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "item_type"],
            ["ticket_types.tenant_id", "ticket_types.id"],
            ondelete="CASCADE",
        ),
    )


class DisplayIdCounter(Base):
    """Per-tenant counters: the last display number of each prefix, and bookkeeping counters
    (names starting with `#`: live tickets, deletions, tickets per status) kept in step with
    the tickets in the same transactions."""

    __tablename__ = "display_id_counters"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    prefix: Mapped[str] = mapped_column(String(250), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


# Tickets that lists show by default: not deleted and not merged into another ticket.
LISTED = "deleted_seq = -1 AND moved_to IS NULL"
MERGED = "deleted_seq = -1 AND moved_to IS NOT NULL"


def _live_index(name: str, *columns: str, where: str = LISTED) -> Index:
    live = text(where)
    return Index(name, "tenant_id", *columns, "id_serial", postgresql_where=live, sqlite_where=live)


_ROUTING_COLUMNS = ("priority", "queue_id", "assignee")


def _set_index(name: str, column: str, *columns: str) -> Index:
    where = text(f"{LISTED} AND {column} IS NOT NULL")
    return Index(
        name, "tenant_id", column, *columns, "id_serial", postgresql_where=where, sqlite_where=where
    )


class Ticket(Base):
    """A ticket: field values in `data`, bound to a team and a ticket type."""

    __tablename__ = "tickets"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # PostgreSQL fills it from an identity; on SQLite the insert computes it (writes are serial).
    id_serial: Mapped[int] = mapped_column(BigInteger, Identity(), nullable=False)
    object_id: Mapped[str] = mapped_column(String(40))
    display_prefix: Mapped[str] = mapped_column(String(20))
    display_number: Mapped[int] = mapped_column(BigInteger)
    team_id: Mapped[str] = mapped_column(String(100))
    item_type_id: Mapped[str] = mapped_column(String(100))
    offer_id: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]
    attachments: Mapped[dict[str, Any]]
    ticket_relation: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    etag: Mapped[uuid.UUID] = mapped_column(Uuid)
    version: Mapped[int] = mapped_column(Integer)
    status_type: Mapped[str] = mapped_column(String(100))
    status_category: Mapped[str] = mapped_column(String(100))
    moved_to: Mapped[str | None] = mapped_column(String(100), nullable=True)
    deleted_seq: Mapped[int] = mapped_column(BigInteger, default=-1)
    submitted_by: Mapped[str] = mapped_column(String(320))
    is_support_request: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Routing and service levels (ticketing.queues, ticketing.sla): NULL when the tenant
    # configures none.
    priority: Mapped[str | None] = mapped_column(String(20), nullable=True)
    queue_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(320), nullable=True)
    # The SLA clocks' state (ticketing.sla.clocks), and three moments derived from it when
    # it is written, indexed: the earliest due time of a running clock (`slaDueAt`), the
    # moment the ticket is or will be in breach (`slaBreached` is `sla_breach_at <= now`),
    # and the next due time whose breach the sweeper has yet to record.
    sla: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    sla_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sla_breach_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sla_sweep_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        UniqueConstraint("tenant_id", "object_id", name="uq_tickets_tenant_object_id"),
        UniqueConstraint(
            "tenant_id", "display_prefix", "display_number", name="uq_tickets_display_number"
        ),
        Index("ix_tickets_tenant_id_serial", "tenant_id", "id_serial"),
        # The list endpoint's sorts (id_serial breaks ties) and common filters, over live
        # tickets only, so that counts can be answered from the index alone.
        _live_index("ix_tickets_tenant_created_at", "created_at"),
        _live_index("ix_tickets_tenant_updated_at", "updated_at"),
        _live_index("ix_tickets_tenant_status", "status_type", "created_at"),
        _live_index("ix_tickets_tenant_submitter", "submitted_by", "created_at"),
        _live_index("ix_tickets_tenant_team", "team_id", "created_at"),
        # Merged tickets, for the filters that ask for them (`movedTo`, `merged`).
        _live_index("ix_tickets_tenant_moved_to", "moved_to", where=MERGED),
        # Routing and SLA filters; only tickets that have the value are indexed, so tenants
        # without queues or SLAs pay nothing for them.
        *(_set_index(f"ix_tickets_tenant_{c}", c, "created_at") for c in _ROUTING_COLUMNS),
        *(_set_index(f"ix_tickets_tenant_{c}", c) for c in ("sla_due_at", "sla_breach_at")),
        Index(
            "ix_tickets_sla_sweep_at",
            "sla_sweep_at",
            postgresql_where=text("deleted_seq = -1 AND sla_sweep_at IS NOT NULL"),
            sqlite_where=text("deleted_seq = -1 AND sla_sweep_at IS NOT NULL"),
        ),
    )


class TicketHistory(Base):
    """One change of a ticket (creation included): who, when, and each field's old and new value."""

    __tablename__ = "ticket_history"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Changes that leave the ticket's version alone (its relations) are numbered within the
    # version they were made at; a versioned change is entry 0.
    entry: Mapped[int] = mapped_column(Integer, primary_key=True, server_default=text("0"))
    action: Mapped[str] = mapped_column(String(20))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[dict[str, Any]]
    changes: Mapped[list[Any]]

    # Refers to the tenant, not the ticket (migration 0015): entries are only written beside
    # their ticket, and a key check against `tickets` in every create is one more lookup
    # whose plan can go bad as the table grows.
    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


class TicketComment(Base):
    """A comment on a ticket; internal ones are for agents and admins only."""

    __tablename__ = "ticket_comments"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    body: Mapped[str] = mapped_column(Text)
    internal: Mapped[bool] = mapped_column(Boolean)
    author: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
        ),
        Index("ix_ticket_comments_ticket", "tenant_id", "ticket_id", "created_at"),
    )


class IdempotencyKey(Base):
    """A client's Idempotency-Key: the request it was first used with and the answer given."""

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    caller: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # Set in the same statement that creates the ticket, so a crash cannot lose the link.
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    etag: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


# --- attachments (ticketing.attachments) ---

# Indexes that PostgreSQL has and the models do not describe, because SQLite cannot have
# them: the list search's trigram index over `ticketing_search_text(...)` (migration 0013).
POSTGRESQL_ONLY_INDEXES = frozenset({"ix_tickets_search"})

# Live tickets that carry at least one file: what `hasAttachments EQ true` selects. The text
# comparison is written the same way in the index predicate and in the filter, so that the
# planner can prove the one implies the other (an empty map is stored as exactly `{}`).
HAS_ATTACHMENTS_SQL = "CAST(attachments AS TEXT) <> '{}'"


class Attachment(Base):
    """An uploaded file: its metadata and the content hash naming its blob; bound to a ticket
    (and to one of its keys: an attachment field's UUID, or `ticket`) once a create or
    update uses it."""

    __tablename__ = "attachments"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    uploader: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(120))
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    field_key: Mapped[str | None] = mapped_column(String(36), nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(
            ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
        ),
        # Whether a blob is still referenced (garbage collection), and a ticket's files.
        Index("ix_attachments_tenant_sha256", "tenant_id", "sha256"),
        Index("ix_attachments_tenant_ticket", "tenant_id", "ticket_id"),
        # Uploads never bound, oldest first (garbage collection).
        Index(
            "ix_attachments_unbound_created_at",
            "created_at",
            postgresql_where=text("ticket_id IS NULL"),
            sqlite_where=text("ticket_id IS NULL"),
        ),
    )


Index(
    "ix_tickets_tenant_has_attachments",
    Ticket.tenant_id,
    Ticket.created_at,
    Ticket.id_serial,
    postgresql_where=text(f"deleted_seq = -1 AND {HAS_ATTACHMENTS_SQL}"),
    sqlite_where=text(f"deleted_seq = -1 AND {HAS_ATTACHMENTS_SQL}"),
)

# --- ticket relations ---


class TicketRelation(Base):
    """A link between two tickets of a tenant, stored once in its canonical direction:
    `parent` (source is the child of target), `blocks` (source blocks target),
    `duplicate_of` (source duplicates target), `relates_to` (symmetric: source is the lower
    ticket id)."""

    __tablename__ = "ticket_relations"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    source_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    type: Mapped[str] = mapped_column(String(20), primary_key=True)
    target_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[dict[str, Any]]

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "source_id"],
            ["tickets.tenant_id", "tickets.id"],
            ondelete="CASCADE",
            name="fk_ticket_relations_source_tickets",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "target_id"],
            ["tickets.tenant_id", "tickets.id"],
            ondelete="CASCADE",
            name="fk_ticket_relations_target_tickets",
        ),
        # The other direction: a ticket's children, the tickets it blocks, its duplicates.
        Index("ix_ticket_relations_target", "tenant_id", "target_id", "type", "source_id"),
        # At most one parent per ticket, whatever races.
        Index(
            "uq_ticket_relations_one_parent",
            "tenant_id",
            "source_id",
            unique=True,
            postgresql_where=text("type = 'parent'"),
            sqlite_where=text("type = 'parent'"),
        ),
    )


# --- queues and SLAs (ticketing.queues, ticketing.sla) ---


class TenantDesk(Base):
    """A tenant's service-desk settings from its configuration file: business hours,
    holidays, SLA policies and queues (ticketing.sla.settings reads them)."""

    __tablename__ = "tenant_desks"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    settings: Mapped[dict[str, Any]]

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


class QueueMember(Base):
    """A user in a queue, and whether round-robin assignment may pick them now."""

    __tablename__ = "queue_members"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(320), primary_key=True)
    availability: Mapped[str] = mapped_column(String(20), default="available")
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


# --- ticket events, notifications and webhooks (ticketing.events, .notifications, .webhooks) ---


class TicketEvent(Base):
    """One change of a ticket, written in the transaction of the change (the outbox).

    `position` is the order readers follow: on PostgreSQL assigned after commit (migration
    0009, ticketing.events.outbox), on SQLite equal to `id`."""

    __tablename__ = "ticket_events"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    position: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The writing transaction's id (PostgreSQL fills it in).
    xid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    object_id: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    submitted_by: Mapped[str] = mapped_column(String(320))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("ix_ticket_events_tenant_position", "tenant_id", "position"),
        Index("ix_ticket_events_position", "position"),
        Index(
            "ix_ticket_events_unnumbered",
            "id",
            postgresql_where=text("position IS NULL"),
            sqlite_where=text("position IS NULL"),
        ),
    )


class EventHorizon(Base):
    """The last event position of a tenant that was pruned: a replay from before it resets."""

    __tablename__ = "event_horizons"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    pruned_through: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


class Notification(Base):
    """A notice for one user (by username or email) made from a ticket event."""

    __tablename__ = "notifications"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    object_id: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]]
    read: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("ix_notifications_recipient", "tenant_id", "recipient", "created_at"),
    )


class Webhook(Base):
    """A tenant's webhook: where to post which events, signed with its secret."""

    __tablename__ = "webhooks"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]]
    secret: Mapped[str] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # When it was last created or activated: it receives the events from then on (NULL:
    # loaded before this was recorded, every event).
    active_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


class WebhookDelivery(Base):
    """One event to post to one webhook: the exact body, its attempts and their results."""

    __tablename__ = "webhook_deliveries"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    # pending, delivered, failed (gave up)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    log: Mapped[list[Any]]

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "webhook_id"],
            ["webhooks.tenant_id", "webhooks.id"],
            ondelete="CASCADE",
        ),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )


class StreamTicket(Base):
    """A single-use ticket to open one event stream as one user without headers (a browser's
    EventSource sends none): what the stream needs of the user's token, until it is used or
    expires (ticketing.events.stream_tickets)."""

    __tablename__ = "stream_tickets"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # SHA-256 of the ticket, in hex: the ticket itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # `list` or `notifications`
    stream: Mapped[str] = mapped_column(String(20))
    realm: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(255))
    # The rest of the user as the token said (roles, scopes, names), to act as them.
    claims: Mapped[dict[str, Any]]
    # When the bearer token the ticket was issued for expires: the stream ends then.
    token_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),)


# --- portal sessions (ticketing.portal.sessions) ---


class PortalSession(Base):
    """A signed-in portal session. The browser's cookie holds only the session's random id;
    the row is found by the id's SHA-256 and holds the bearer token (and the ID token for
    the provider's logout) encrypted with a key derived from the id, so neither the cookie
    nor the table alone gives the token away. Sign-out, an admin, or the token's expiry end
    it."""

    __tablename__ = "portal_sessions"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # SHA-256 (hex) of the session id in the cookie.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255))
    username: Mapped[str] = mapped_column(String(320))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    realm: Mapped[str] = mapped_column(String(200))
    token: Mapped[bytes] = mapped_column(LargeBinary)
    id_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The token's expiry: the session cannot outlive it.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        Index("ix_portal_sessions_username", "tenant_id", "username"),
        Index("ix_portal_sessions_email", "tenant_id", "email"),
        Index("ix_portal_sessions_expires_at", "tenant_id", "expires_at"),
    )
