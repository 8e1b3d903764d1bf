"""The portal's settings, the demo users of its development sign-in, and its page models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ticketing.demo import DEMO_TENANT


class PortalSettings(BaseSettings):
    """What the portal reads from the environment (`TICKETING_PORTAL_*`)."""

    model_config = SettingsConfigDict(env_prefix="TICKETING_PORTAL_", extra="ignore")

    client_id: str = Field(
        default="ticketing-portal",
        description="OAuth client id of the portal at the identity provider.",
    )
    scopes: str = Field(
        default="openid tickets:read tickets:write",
        description="Scopes the sign-in asks the identity provider for (space-separated); "
        "the access token must come back able to read tickets.",
    )

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: str) -> str:
        # An OpenID Connect sign-in: without `openid` the provider sends no ID token.
        if "openid" not in value.split():
            raise ValueError("TICKETING_PORTAL_SCOPES must include openid")
        return " ".join(value.split())

    tenant: str = Field(
        default=DEMO_TENANT,
        description="Tenant whose realm the sign-in uses when the URL names none (?tenant=).",
    )
    base_url: str | None = Field(
        default=None,
        description="External base URL of the service, for the OIDC redirect URI; "
        "unset: taken from the request.",
    )
    session_ttl: int = Field(
        default=8 * 3600,
        description="Lifetime in seconds of the tokens the development sign-in mints.",
    )


@dataclass(frozen=True)
class DemoUser:
    """A person the development sign-in can sign in as, with one click."""

    key: str
    role_label: str
    username: str
    first_name: str
    last_name: str
    roles: tuple[str, ...]
    teams: tuple[str, ...] = ("james",)

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


# The seed's requester (Jane Doe), an agent and an admin of the demo tenant.
DEMO_USERS = (
    DemoUser("requester", "Requester", "user@example.com", "Jane", "Doe", ("ticket_user",)),
    DemoUser("agent", "Agent", "agent@example.com", "Alex", "Agent", ("ticket_agent",), ("james",)),
    DemoUser(
        "admin",
        "Administrator",
        "admin@example.com",
        "Ada",
        "Admin",
        ("tenant_admin", "ticket_agent"),
        ("james", "service-desk"),
    ),
)


@dataclass
class FieldView:
    """One control of a generated form: what the template needs to render it."""

    id: str
    input_name: str
    label: str
    type: str
    macro: str
    required: bool
    value: Any
    options: list[dict[str, str]] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class ShownValue:
    """A stored value as a page shows it: plain text, or sanitized HTML."""

    label: str
    text: str
    html: str | None = None
    # An attachment field's files: name, size and the portal's download link of each.
    files: list[dict[str, str]] | None = None


@dataclass
class Page:
    """A page of tickets and how to reach the others."""

    tickets: list[dict[str, Any]]
    count: int
    page: int
    pages: int


def demo_banner(base_url: str, *, dev_sign_in: bool = True) -> str:
    """What `ticketing demo` prints about the portal: its address and who can sign in."""
    users = "\n".join(f"  {u.role_label:<14} {u.display_name:<11} {u.username}" for u in DEMO_USERS)
    if not dev_sign_in:
        return f"Web portal (requesters and agents): {base_url}/portal/ (identity provider)\n"
    return (
        f"Web portal (requesters and agents): {base_url}/portal/\n"
        f"Sign in with one click as one of the demo users:\n{users}\n"
    )


class SessionsEnded(BaseModel):
    """The answer of DELETE /sessions/{user}."""

    success: bool = True
    status: int = 200
    ended: int = Field(description="How many live portal sessions of the user were ended.")
