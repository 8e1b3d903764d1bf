"""What one server process holds for its lifetime: engine, sessions, verifier, caches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ticketing.attachments.storage import BlobStore, open_store
from ticketing.auth.dev_issuer import load_or_create_dev_key
from ticketing.auth.tokens import (
    DevKeySource,
    KeySource,
    OidcKeySource,
    RealmDirectory,
    TokenVerifier,
)
from ticketing.catalog import repository as catalog_repository
from ticketing.catalog.service import CatalogCache
from ticketing.config import Settings
from ticketing.events.hub import HUB_CONNECTION_NAME, EventHub
from ticketing.events.ids import EventIds
from ticketing.kit.db import (
    StatementPool,
    create_engine,
    create_sessionmaker,
    driver_connector,
    split_pool_size,
)
from ticketing.kit.replicas import ReplicaSet
from ticketing.kit.secrets import load_or_create_secret
from ticketing.webhooks.worker import WebhookWorker


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    verifier: TokenVerifier
    catalogs: CatalogCache
    blobs: BlobStore
    hub: EventHub
    webhooks: WebhookWorker
    # Connections for the create statement (PostgreSQL; None on SQLite).
    statements: StatementPool | None = None
    # The service secret (TICKETING_PORTAL_SECRET, else the data folder's portal-secret):
    # the portal's cookies and the event ids are keyed from it.
    secret: str = ""
    # Streaming replicas that serve reads (None: the primary serves everything).
    replicas: ReplicaSet | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AppState:
        engine_size, statements_size = split_pool_size(settings.db_pool_size)
        engine = create_engine(
            settings.resolved_database_url,
            pool_size=engine_size,
            timeout=settings.db_timeout,
            role=settings.db_role or None,
        )
        statements = (
            StatementPool(
                settings.resolved_database_url,
                size=statements_size,
                timeout=settings.db_timeout,
                role=settings.db_role or None,
            )
            if engine.dialect.name == "postgresql"
            else None
        )
        sessionmaker = create_sessionmaker(engine)
        secret = settings.portal_secret or load_or_create_secret(
            settings.data_dir / "portal-secret"
        )
        hub = EventHub(
            engine,
            ids=EventIds(secret),
            max_streams=settings.sse_max,
            max_streams_per_user=settings.sse_max_per_user,
            connect=(
                driver_connector(
                    settings.resolved_database_url,
                    timeout=settings.db_timeout,
                    role=settings.db_role or None,
                    name=HUB_CONNECTION_NAME,
                )
                if statements is not None
                else None
            ),
            reader=(
                StatementPool(
                    settings.resolved_database_url,
                    size=1,
                    timeout=settings.db_timeout,
                    role=settings.db_role or None,
                )
                if statements is not None
                else None
            ),
            poll_interval=settings.events_poll_interval,
            read_interval=settings.events_read_interval,
            keep_seconds=settings.events_keep_seconds,
            keep_count=settings.events_keep_count,
        )
        replica_urls = settings.resolved_replica_urls
        replicas = (
            ReplicaSet.from_urls(
                engine,
                replica_urls,
                pool_size=settings.db_pool_size,
                timeout=settings.db_timeout,
                role=settings.db_role or None,
                max_lag=settings.replica_max_lag,
                wait=settings.replica_wait,
                interval=settings.replica_check_interval,
            )
            if replica_urls
            else None
        )
        return cls(
            secret=secret,
            replicas=replicas,
            statements=statements,
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            verifier=build_verifier(
                settings, realms=lambda: catalog_repository.tenant_realms(engine, statements)
            ),
            catalogs=CatalogCache(),
            blobs=blob_store(settings),
            hub=hub,
            webhooks=WebhookWorker(
                engine,
                sessionmaker,
                hub,
                allow_private=settings.webhooks_allow_private,
                timeout=settings.webhooks_timeout,
                concurrency=settings.webhooks_concurrency,
                retry_base=settings.webhooks_retry_base,
                poll_interval=settings.events_poll_interval,
                statements=statements,
            ),
        )


def blob_store(settings: Settings) -> BlobStore:
    """The store for attachment contents the settings name."""
    return open_store(
        settings.resolved_blob_url,
        endpoint_url=settings.s3_endpoint_url,
        spool=settings.data_dir / "spool",
    )


def build_verifier(
    settings: Settings, realms: Callable[[], Awaitable[set[str]]] | None = None
) -> TokenVerifier:
    """Trusts the configured OIDC provider, or the development issuer when there is none.
    With a provider, `realms` lists the configured tenants' realms: no other realm's keys
    are fetched."""
    keys: KeySource
    directory = None
    if settings.oidc_base_url:
        if realms is not None:
            directory = RealmDirectory(realms)
        base = settings.oidc_base_url
        keys = OidcKeySource(
            refresh_interval=settings.jwks_refresh_interval,
            timeout=settings.jwks_timeout,
            max_age=settings.jwks_max_age,
            stale_grace=settings.jwks_stale_grace,
        )
    else:
        base = settings.dev_issuer_url
        keys = DevKeySource(load_or_create_dev_key(settings.dev_key_path))
    return TokenVerifier(
        issuer_base=base,
        keys=keys,
        leeway=settings.clock_skew,
        audience=settings.oidc_audience,
        realms=directory,
    )
