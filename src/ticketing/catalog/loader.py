"""Writes a tenant configuration file into the database, idempotently."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.catalog import repository
from ticketing.catalog.config_file import ConfigFile, TenantConfig
from ticketing.kit.time import utcnow
from ticketing.models import Offer, Team, Tenant, TenantDesk, TicketField, TicketType
from ticketing.queues import repository as queue_repository
from ticketing.sla.config import desk_settings
from ticketing.webhooks import repository as webhooks_repository

Outcome = Literal["created", "updated", "unchanged"]


def config_hash(tenant: TenantConfig) -> str:
    """A digest of a tenant's normalised configuration; equal digests mean nothing to do."""
    normal = tenant.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()


async def load_config(session: AsyncSession, config: ConfigFile) -> list[tuple[str, Outcome]]:
    """Creates or updates every tenant of the file in the caller's transaction.

    Teams, ticket types and offers are upserted by id; a ticket type's fields are replaced
    by the file's list. Entries missing from the file are kept (retire an offer or a webhook
    with `active: false`; a retired webhook's pending deliveries are not sent). A tenant
    whose configuration is unchanged is not touched.
    """
    outcomes: list[tuple[str, Outcome]] = []
    for tenant_config in config.tenants:
        outcomes.append((str(tenant_config.id), await _load_tenant(session, tenant_config)))
    return outcomes


async def _load_tenant(session: AsyncSession, config: TenantConfig) -> Outcome:
    digest = config_hash(config)
    tenant = await repository.get_tenant(session, tenant_id=config.id)
    if tenant is not None and tenant.config_hash == digest:
        return "unchanged"
    outcome: Outcome = "created" if tenant is None else "updated"
    if tenant is None:
        tenant = Tenant(id=config.id, config_version=0)
        session.add(tenant)
    tenant.name = config.name
    tenant.realm = config.realm
    tenant.prefix = config.prefix
    tenant.config_hash = digest
    tenant.attachment_policy = (
        config.attachments.model_dump(mode="json") if config.attachments else None
    )
    tenant.config_version = tenant.config_version + 1
    await session.flush()

    for team in config.teams:
        await session.merge(
            Team(tenant_id=config.id, id=team.id, name=team.name, create_roles=team.create_roles)
        )
    for position, ticket_type in enumerate(config.ticket_types):
        await session.merge(
            TicketType(
                tenant_id=config.id,
                id=ticket_type.id,
                name=ticket_type.name,
                prefix=ticket_type.prefix,
                create_roles=ticket_type.create_roles,
                workflow=ticket_type.workflow.model_dump(mode="json", exclude_none=True),
                position=position,
            )
        )
        await session.flush()
        await repository.replace_fields(
            session,
            tenant_id=config.id,
            ticket_type_id=ticket_type.id,
            fields=[
                TicketField(
                    tenant_id=config.id,
                    ticket_type_id=ticket_type.id,
                    id=field.id,
                    position=index,
                    name=field.name,
                    label=field.label or field.name,
                    type=field.type,
                    required=field.required,
                    default_value=field.default_value,
                    options=[o.model_dump(exclude_none=True) for o in field.options],
                    limits=field.limits,
                )
                for index, field in enumerate(ticket_type.fields)
            ],
        )
    await session.flush()
    for offer in config.offers:
        await session.merge(
            Offer(
                tenant_id=config.id,
                id=offer.id,
                name=offer.name,
                description=offer.description,
                category=offer.category,
                item_type=offer.item_type,
                catalog_types=list(offer.catalog_types),
                active=offer.active,
            )
        )
    now = utcnow()
    for webhook in config.webhooks:
        await webhooks_repository.save_webhook(
            session,
            tenant_id=config.id,
            webhook_id=webhook.id,
            url=webhook.url,
            events=list(webhook.events),
            secret=webhook.secret,
            active=webhook.active,
            now=now,
        )
    await session.flush()
    await _load_desk(session, config)
    return outcome


async def _load_desk(session: AsyncSession, config: TenantConfig) -> None:
    """The tenant's desk settings as one document (replaced); the file's queue members are
    added to their queues (members added or removed through the API are kept)."""
    await session.merge(TenantDesk(tenant_id=config.id, settings=desk_settings(config)))
    for queue in config.queues:
        await queue_repository.add_members(
            session, tenant_id=config.id, queue_id=queue.id, user_ids=queue.members
        )
    await session.flush()
