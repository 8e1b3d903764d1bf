"""A tenant's catalog compiled for request handling, cached per configuration version."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.attachments.content import AttachmentPolicy
from ticketing.catalog import repository
from ticketing.catalog.fields import FieldSpec, default_for
from ticketing.sla import repository as sla_repository
from ticketing.sla.settings import NO_DESK, DeskSettings, compile_desk


@dataclass(frozen=True)
class Status:
    name: str
    category: str


@dataclass(frozen=True)
class TicketTypeSpec:
    """A ticket type ready for validation: fields by UUID, defaults, initial status."""

    id: str
    name: str
    prefix: str
    own_prefix: str | None
    create_roles: frozenset[str]
    workflow: dict[str, Any]
    initial_status: Status
    fields: tuple[FieldSpec, ...]
    fields_by_id: dict[str, FieldSpec]
    # (field id, value) for each optional field whose defaultValue is a valid value.
    defaults: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class TeamSpec:
    id: str
    name: str
    create_roles: frozenset[str]


@dataclass(frozen=True)
class OfferSpec:
    id: str
    name: str
    description: str
    category: str | None
    item_type: str
    catalog_types: tuple[str, ...]
    active: bool
    sla_id: str | None = None


@dataclass(frozen=True)
class TenantCatalog:
    """Everything about one tenant's configuration a request needs, immutable."""

    tenant_id: uuid.UUID
    name: str
    realm: str
    prefix: str
    version: int
    teams: dict[str, TeamSpec]
    ticket_types: dict[str, TicketTypeSpec]
    offers: dict[str, OfferSpec]
    attachments: AttachmentPolicy = field(default_factory=AttachmentPolicy)
    # SLA policies, queues and routing (ticketing.sla.settings).
    desk: DeskSettings = NO_DESK


class StaleCatalog(Exception):
    """The tenant's configuration changed after its catalog was read; read it again."""


class CatalogCache:
    """Per-process cache of compiled catalogs, keyed by tenant and configuration version.

    Reads check the tenant's current version (one indexed lookup), so a `load` run by another
    process is seen by the next request. Creates use the cached catalog as it is and make
    their insert conditional on the version they validated against (see `peek`).
    """

    def __init__(self) -> None:
        self._catalogs: dict[uuid.UUID, TenantCatalog] = {}

    def peek(self, tenant_id: uuid.UUID) -> TenantCatalog | None:
        """The cached catalog, unchecked: its user must verify `version` when it writes."""
        return self._catalogs.get(tenant_id)

    def forget(self, tenant_id: uuid.UUID) -> None:
        """Drops a catalog found to be out of date."""
        self._catalogs.pop(tenant_id, None)

    async def get(self, session: AsyncSession, *, tenant_id: uuid.UUID) -> TenantCatalog | None:
        """Gets the tenant's catalog, compiling it when its configuration has changed."""
        current = await repository.get_tenant_version(session, tenant_id=tenant_id)
        if current is None:
            return None
        cached = self._catalogs.get(tenant_id)
        if cached is not None and cached.version == current[1]:
            return cached
        catalog = await compile_catalog(session, tenant_id=tenant_id)
        # A replica behind the primary may show an older version than one already cached;
        # it serves this read, and the newer one stays for the creates that peek.
        if catalog is not None and (cached is None or catalog.version >= cached.version):
            self._catalogs[tenant_id] = catalog
        return catalog


async def compile_catalog(session: AsyncSession, *, tenant_id: uuid.UUID) -> TenantCatalog | None:
    """Reads a tenant's catalog rows and builds its TenantCatalog."""
    tenant = await repository.get_tenant(session, tenant_id=tenant_id)
    if tenant is None:
        return None
    teams, ticket_types, field_rows, offers = await repository.list_catalog_rows(
        session, tenant_id=tenant_id
    )
    desk = compile_desk(await sla_repository.get_desk_settings(session, tenant_id=tenant_id))
    fields_by_type: dict[str, list[FieldSpec]] = {}
    for field_row in field_rows:
        fields_by_type.setdefault(field_row.ticket_type_id, []).append(
            FieldSpec(
                id=str(field_row.id),
                name=field_row.name,
                label=field_row.label,
                type=field_row.type,
                required=field_row.required,
                default_value=field_row.default_value,
                options=tuple(field_row.options),
                limits=dict(field_row.limits),
                remote_images=desk.remote_images,
            )
        )
    types: dict[str, TicketTypeSpec] = {}
    for row in ticket_types:
        fields = tuple(fields_by_type.get(row.id, ()))
        statuses = row.workflow.get("statuses") or [{"name": "Open", "category": "To-do Category"}]
        initial = next((s for s in statuses if s.get("initial")), statuses[0])
        defaults = []
        for spec in fields:
            if not spec.required:
                ok, value = default_for(spec)
                if ok:
                    defaults.append((spec.id, value))
        types[row.id] = TicketTypeSpec(
            id=row.id,
            name=row.name,
            prefix=row.prefix or tenant.prefix,
            own_prefix=row.prefix,
            create_roles=frozenset(row.create_roles),
            workflow=row.workflow,
            initial_status=Status(initial["name"], initial["category"]),
            fields=fields,
            fields_by_id={f.id: f for f in fields},
            defaults=tuple(defaults),
        )
    return TenantCatalog(
        tenant_id=tenant.id,
        name=tenant.name,
        realm=tenant.realm,
        prefix=tenant.prefix,
        version=tenant.config_version,
        teams={
            t.id: TeamSpec(id=t.id, name=t.name, create_roles=frozenset(t.create_roles))
            for t in teams
        },
        ticket_types=types,
        offers={
            o.id: OfferSpec(
                id=o.id,
                name=o.name,
                description=o.description,
                category=o.category,
                item_type=o.item_type,
                catalog_types=tuple(o.catalog_types),
                active=o.active,
                sla_id=desk.offer_policies.get(o.id),
            )
            for o in offers
        },
        desk=desk,
        attachments=_attachment_policy(tenant.attachment_policy),
    )


def _attachment_policy(stored: dict[str, Any] | None) -> AttachmentPolicy:
    if not stored:
        return AttachmentPolicy()
    return AttachmentPolicy(
        max_size=int(stored["max_size"]), allowed_types=tuple(stored["allowed_types"])
    )
