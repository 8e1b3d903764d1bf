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


def _live_index(name: str, *columns: str) -> Index:
    live = text("deleted_seq = -1")
    return Index(name, "tenant_id", *columns, "id_serial", postgresql_where=live, sqlite_where=live)


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
    )


class TicketHistory(Base):
    """One change of a ticket (creation included): who, when, and each field's old and new value."""

    __tablename__ = "ticket_history"

    tenant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(20))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[dict[str, Any]]
    changes: Mapped[list[Any]]

    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "ticket_id"], ["tickets.tenant_id", "tickets.id"], ondelete="CASCADE"
        ),
    )


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
