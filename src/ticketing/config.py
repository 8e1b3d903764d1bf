"""Settings read from the environment (`TICKETING_*`)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The role `ticketing migrate` creates for the service to work as (PostgreSQL).
APP_ROLE = "ticketing_app"


def _seconds(default: float, description: str, *, zero_allowed: bool = False) -> Any:
    """A setting in seconds: above zero, or at least zero when `zero_allowed` (0 turning the
    thing off, or not waiting)."""
    if zero_allowed:
        return Field(default=default, ge=0, description=description)
    return Field(default=default, gt=0, description=description)


def comma_list(value: str) -> list[str]:
    """The items of a comma-separated setting or option, trimmed, empty ones left out."""
    return [item.strip() for item in value.split(",") if item.strip()]


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/ticketing`, else `~/.local/share/ticketing`.

    One folder whatever the working directory: `ticketing token` run from anywhere signs with
    the key that `ticketing serve` trusts. (The XDG spec ignores a relative XDG_DATA_HOME.)
    """
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "ticketing"


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="TICKETING_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Folder for the SQLite database and the development signing key; "
        "default $XDG_DATA_HOME/ticketing, else ~/.local/share/ticketing.",
    )
    database_url: str | None = Field(
        default=None,
        description="sqlite:///path or postgresql://user@host:port/db; "
        "default: SQLite in data_dir.",
    )
    oidc_base_url: str | None = Field(
        default=None,
        description="Identity provider base URL; tokens must have iss = {base}/realms/{realm}. "
        "Unset: the development issuer is the trusted one.",
    )
    oidc_audience: str | None = Field(
        default=None, description="When set, tokens must carry this audience."
    )
    dev_sign_in: bool = Field(
        default=False,
        description="Serve the portal's one-click development sign-in (demo tenant only), "
        "which mints tokens for anyone who can reach the port; `ticketing demo` turns it on. "
        "Refused together with oidc_base_url.",
    )
    dev_issuer_url: str = Field(
        default="http://localhost:8000",
        description="Base URL the development issuer puts in its tokens' iss.",
    )
    jwks_refresh_interval: float = Field(
        default=30.0,
        description="Least number of seconds between two JWKS fetches of one issuer caused "
        "by an unknown kid or to retry a failed fetch (expired keys are fetched again when "
        "they expire).",
    )
    jwks_timeout: float = Field(default=5.0, description="Seconds to wait for the JWKS endpoint.")
    jwks_max_age: float = _seconds(
        600.0,
        "Seconds an issuer's fetched keys are trusted before the next verification refetches "
        "them (less when the JWKS's Cache-Control max-age is shorter; at least a second), "
        "so a key the provider withdraws is refused after that.",
        zero_allowed=True,
    )
    jwks_stale_grace: float = _seconds(
        3600.0,
        "Seconds after its keys expired that an issuer whose provider fails to answer keeps "
        "being verified with its last good keys; after that its tokens are 503.",
        zero_allowed=True,
    )
    clock_skew: int = Field(default=30, description="Leeway in seconds for exp and nbf.")
    log_level: str = Field(default="info", description="Least level logged.")
    json_logs: bool = Field(default=True, description="Log JSON lines to stderr.")
    db_pool_size: int = Field(default=20, description="Connections per process (PostgreSQL).")
    db_timeout: float = Field(
        default=5.0,
        description="Seconds to wait for a database connection (statements get twice that).",
    )
    sla_sweep_interval: float = _seconds(
        30.0, "Seconds between two sweeps that record SLA breaches in ticket histories."
    )

    # --- slow clients (ticketing.kit.http_protocol) ---
    body_timeout: float = _seconds(
        30.0,
        "Seconds a request's body has to arrive, from the server's first read of it, for "
        "each MiB begun (an upload of 10 MiB has ten times this); past it the request is "
        "408 and its connection closes.",
    )
    header_timeout: float = _seconds(
        10.0,
        "Seconds a new connection has to send a request's headers whole, and a connection "
        "has to finish the headers of a request it has begun; past it the connection "
        "closes (408 when part of a request came).",
    )
    keep_alive_timeout: float = _seconds(
        5.0,
        "Seconds an idle connection is kept between requests. Behind a load balancer or "
        "with clients that pool connections longer, set it above theirs (e.g. 95 s against "
        "a balancer's 60 s) so that they close first and never send a request on a "
        "connection being closed.",
    )

    sse_heartbeat: float = _seconds(15.0, "Seconds between heartbeat events on SSE streams.")
    sse_max_per_user: int = Field(
        default=10,
        ge=1,
        description="Event streams one user (tenant and token subject) may keep open per "
        "process; a newer one ends their oldest (error event TOO_MANY_STREAMS).",
    )
    sse_max: int = Field(
        default=10_000,
        ge=1,
        description="Event streams one process serves at once; beyond it a new stream is "
        "503 with Retry-After.",
    )
    cors_origins: str = Field(
        default="",
        description="Origins whose pages may call the API from a browser (CORS), "
        "comma-separated, each exactly as browsers send it: scheme://host[:port]. Empty: none. "
        "A wildcard is refused.",
    )
    events_poll_interval: float = _seconds(
        1.0, "Seconds between two reads of the outbox when no wake-up arrives."
    )
    events_read_interval: float = _seconds(
        0.1,
        "Least seconds between two reads of the outbox: under load, each read "
        "carries several events and every stream writes them at once.",
        zero_allowed=True,
    )
    events_keep_seconds: float = _seconds(
        600.0, "Events are kept at least this long for replay.", zero_allowed=True
    )
    events_keep_count: int = Field(
        default=10_000, ge=0, description="The newest events of each tenant kept for replay."
    )

    webhooks_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach loopback and private addresses (refused otherwise).",
    )
    webhooks_timeout: float = _seconds(10.0, "Seconds a webhook receiver has to answer.")
    webhooks_concurrency: int = Field(
        default=16, ge=1, description="Webhook posts in flight at once, per process."
    )
    webhooks_retry_base: float = _seconds(
        10.0, "Seconds before the first retry; each retry waits twice as long (jittered)."
    )

    database_replica_urls: str = Field(
        default="",
        description="Streaming replicas of the PostgreSQL database, comma-separated, each "
        "written like database_url; reads that change nothing are served by them.",
    )
    replica_max_lag: float = _seconds(
        5.0, "Seconds a replica may be behind the primary and still serve reads."
    )
    replica_wait: float = _seconds(
        0.2,
        "Seconds a caller's read waits for a replica to replay the caller's own "
        "last write before the primary serves it instead.",
        zero_allowed=True,
    )
    replica_check_interval: float = _seconds(
        1.0, "Seconds between two checks of each replica's lag."
    )

    portal_secret: str | None = Field(
        default=None,
        description="The service secret: signs the portal's session cookie and encrypts the "
        "event ids streams and webhooks show; processes behind one load balancer share it. "
        "Unset: a random key kept in the data folder (portal-secret).",
    )

    db_role: str = Field(
        default=APP_ROLE,
        pattern=r"^([a-z_][a-z0-9_]{0,62})?$",
        description="PostgreSQL role the service works as, subject to the tenant row-level "
        "security policies; `ticketing migrate` creates it and grants it to the login user. "
        "Empty: work as the login user (policies do not apply to the tables' owner).",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in comma_list(value):
            problem = origin_problem(origin)
            if problem is not None:
                raise ValueError(f"TICKETING_CORS_ORIGINS: {origin!r} {problem}")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once, so every message names the folder actually used.
        return value.expanduser().absolute()

    # --- attachments (ticketing.attachments) ---
    blob_url: str | None = Field(
        default=None,
        description="Where uploaded files are kept: file:///path, or s3://bucket/prefix "
        "(credentials and region as the AWS SDK reads them); default file://{data_dir}/blobs.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible object store (for s3:// blob URLs); unset: AWS.",
    )
    upload_ttl: float = _seconds(
        24 * 3600.0, "Seconds an upload may stay unbound to a ticket before `gc` removes it."
    )
    gc_interval: float = _seconds(
        3600.0,
        "Seconds between two garbage collections run by `serve`; 0: none.",
        zero_allowed=True,
    )

    @property
    def resolved_blob_url(self) -> str:
        """The blob store URL (the default: a folder in the data folder)."""
        return self.blob_url or f"file://{(self.data_dir / 'blobs').resolve()}"

    @property
    def resolved_database_url(self) -> str:
        """The database URL with the async driver the service uses."""
        return async_database_url(
            self.database_url or f"sqlite:///{self.data_dir / 'ticketing.db'}"
        )

    @property
    def resolved_replica_urls(self) -> list[str]:
        """The replicas' URLs with the async driver (PostgreSQL only)."""
        resolved = [async_database_url(url) for url in comma_list(self.database_replica_urls)]
        if resolved and not self.resolved_database_url.startswith("postgresql"):
            raise ValueError("TICKETING_DATABASE_REPLICA_URLS needs a PostgreSQL database_url")
        for url in resolved:
            if not url.startswith("postgresql"):
                raise ValueError(f"a replica must be PostgreSQL: {url.split('://', 1)[0]!r}")
        return resolved

    @property
    def resolved_cors_origins(self) -> list[str]:
        """The origins allowed to call the API from a browser."""
        return comma_list(self.cors_origins)

    @property
    def dev_key_path(self) -> Path:
        return self.data_dir / "dev-signing-key.pem"


def origin_problem(origin: str) -> str | None:
    """What is wrong with `origin` as an allowed CORS origin, or None. A browser sends its
    page's origin serialised one way (lower case, no default port, nothing after the
    port): an entry written otherwise would never match, so it is refused rather than
    silently useless; so is any wildcard, which would open the API to every page."""
    if "*" in origin:
        return "is a wildcard: list each origin exactly"
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return "is not an origin (scheme://host[:port])"
    host = parts.hostname
    if (
        parts.scheme not in ("http", "https")
        or not host
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or origin.endswith(("?", "#"))
    ):
        return "is not an origin (scheme://host[:port], nothing after it)"
    default_port = 443 if parts.scheme == "https" else 80
    shown_host = f"[{host}]" if ":" in host else host
    shown_port = f":{port}" if port is not None and port != default_port else ""
    canonical = f"{parts.scheme}://{shown_host}{shown_port}"
    if canonical != origin:
        return f"is not written as browsers send it: {canonical}"
    return None


def async_database_url(url: str) -> str:
    """Maps a database URL as people write it to the async driver's dialect."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    base = scheme.split("+", 1)[0]
    if base in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    raise ValueError(f"unsupported database {scheme!r}: use sqlite:/// or postgresql://")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
