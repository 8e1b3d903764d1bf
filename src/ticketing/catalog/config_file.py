"""The tenant configuration file (YAML or JSON): its schema and how it is read."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ticketing.attachments.content import DEFAULT_MAX_SIZE, DEFAULT_TYPES, FILE_TYPES
from ticketing.auth.dev_issuer import WRITE_ROLES
from ticketing.catalog.fields import FIELD_TYPES
from ticketing.sla.config import (
    OpeningHours,
    Priority,
    QueueConfig,
    SlaPolicyConfig,
    check_business_hours,
    check_desk_references,
)
from ticketing.webhooks.targets import check_url

CatalogType = Literal["template", "agent", "user"]
CATALOG_TYPES: tuple[CatalogType, ...] = ("template", "agent", "user")


def _id_string(value: Any) -> Any:
    # YAML reads `id: 16910` as a number; ids are strings in the API.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


IdString = Annotated[
    str, BeforeValidator(_id_string), Field(min_length=1, max_length=100, pattern=r"^[^/\s]+$")
]
Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Prefix = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
Roles = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class OptionConfig(_Strict):
    value: Annotated[str, BeforeValidator(_id_string), Field(min_length=1)]
    label: str | None = None


class FieldConfig(_Strict):
    id: uuid.UUID
    name: Name
    label: Name | None = None
    type: str
    required: bool = False
    default_value: Any = Field(default=None, alias="defaultValue")
    options: list[OptionConfig] = Field(default_factory=list)
    max_length: int | None = Field(default=None, alias="maxLength", ge=1)
    min_length: int | None = Field(default=None, alias="minLength", ge=0)
    # A whole number stays one (the limits are shown in messages and in discovery).
    min: int | float | None = None
    max: int | float | None = None
    # attachment fields: how many files one ticket may carry in the field.
    max_files: int | None = Field(default=None, alias="maxFiles", ge=1, le=100)

    @model_validator(mode="after")
    def _check(self) -> FieldConfig:
        kind = FIELD_TYPES.get(self.type)
        if kind is None:
            raise ValueError(
                f"unknown field type {self.type!r}; known: {', '.join(sorted(FIELD_TYPES))}"
            )
        if kind.has_options and not self.options:
            raise ValueError(f"a {self.type} field needs options")
        values = [o.value for o in self.options]
        if len(set(values)) != len(values):
            raise ValueError("option values must be unique")
        return self

    @property
    def limits(self) -> dict[str, Any]:
        limits = {
            "maxLength": self.max_length,
            "minLength": self.min_length,
            "min": self.min,
            "max": self.max,
            "maxFiles": self.max_files,
        }
        return {k: v for k, v in limits.items() if v is not None}


class StatusConfig(_Strict):
    name: Name
    category: Name
    initial: bool = False


def _default_statuses() -> list[StatusConfig]:
    return [
        StatusConfig(name="Open", category="To-do Category", initial=True),
        StatusConfig(name="In Progress", category="In-Progress Category"),
        StatusConfig(name="Resolved", category="Done Category"),
        StatusConfig(name="Closed", category="Done Category"),
    ]


class WorkflowConfig(_Strict):
    statuses: list[StatusConfig] = Field(default_factory=_default_statuses, min_length=1)
    transitions: dict[str, list[str]] | None = None

    @model_validator(mode="after")
    def _check(self) -> WorkflowConfig:
        names = [s.name for s in self.statuses]
        if len(set(names)) != len(names):
            raise ValueError("status names must be unique")
        initial = [s for s in self.statuses if s.initial]
        if len(initial) > 1:
            raise ValueError("only one status can be initial")
        if not initial:
            self.statuses[0].initial = True
        for source, targets in (self.transitions or {}).items():
            for name in (source, *targets):
                if name not in names:
                    raise ValueError(f"transition names unknown status {name!r}")
        return self


class TeamConfig(_Strict):
    id: Slug
    name: Name
    create_roles: Roles = Field(default_factory=lambda: list(WRITE_ROLES))


class TicketTypeConfig(_Strict):
    id: IdString
    name: Name
    prefix: Prefix | None = None
    create_roles: Roles = Field(default_factory=lambda: list(WRITE_ROLES))
    workflow: WorkflowConfig = Field(default_factory=WorkflowConfig)
    fields: list[FieldConfig] = Field(default_factory=list)
    # Routing (ticketing.sla.config): where the priority comes from, and the queue.
    priority_field: uuid.UUID | None = None
    priority_map: dict[str, Priority] | None = None
    default_priority: Priority | None = None
    queue: Annotated[str | None, BeforeValidator(_id_string)] = None

    @model_validator(mode="after")
    def _check(self) -> TicketTypeConfig:
        _unique([str(f.id) for f in self.fields], "field ids")
        return self


class OfferConfig(_Strict):
    id: IdString
    name: Name
    description: str = ""
    category: str | None = None
    item_type: IdString
    catalog_types: list[CatalogType] = Field(default_factory=lambda: list(CATALOG_TYPES))
    active: bool = True
    sla_id: IdString | None = None


class AttachmentPolicyConfig(_Strict):
    """What a tenant's users may upload."""

    max_size: int = Field(default=DEFAULT_MAX_SIZE, ge=1, le=1024**4)
    allowed_types: list[str] = Field(default_factory=lambda: list(DEFAULT_TYPES), min_length=1)

    @model_validator(mode="after")
    def _check(self) -> AttachmentPolicyConfig:
        self.allowed_types = [t.lower() for t in self.allowed_types]
        unknown = [t for t in self.allowed_types if t not in FILE_TYPES]
        if unknown:
            raise ValueError(f"unknown file types {unknown}; known: {', '.join(FILE_TYPES)}")
        _unique(self.allowed_types, "allowed_types")
        return self


WebhookEvent = Literal["ticket.created", "ticket.updated", "ticket.deleted", "comment.created"]


class RichTextConfig(_Strict):
    """How rich text fields and comments are kept (ticketing.kit.html)."""

    # Keep <img> sources on other sites: off by default, since rendering them tells the
    # other site who read the ticket.
    remote_images: bool = False


class WebhookConfig(_Strict):
    id: IdString
    url: Annotated[
        str,
        Field(min_length=8, max_length=2000, pattern=r"^https?://[^\s/]+(/\S*)?$"),
        AfterValidator(check_url),
    ]
    events: Annotated[list[WebhookEvent], Field(min_length=1)]
    secret: Annotated[str, Field(min_length=16, max_length=500)]
    active: bool = True


class TenantConfig(_Strict):
    id: uuid.UUID
    name: Name
    # Keycloak's characters for a realm name (ticketing.auth.tokens.REALM_NAME): it becomes
    # part of the identity provider's URLs.
    realm: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")]
    prefix: Prefix
    teams: list[TeamConfig] = Field(default_factory=list)
    ticket_types: list[TicketTypeConfig] = Field(default_factory=list)
    offers: list[OfferConfig] = Field(default_factory=list)
    attachments: AttachmentPolicyConfig | None = None
    rich_text: RichTextConfig | None = None
    # Service desk (ticketing.sla.config).
    business_hours: dict[str, OpeningHours] | None = None
    holidays: list[date] = Field(default_factory=list)
    sla_policies: list[SlaPolicyConfig] = Field(default_factory=list)
    queues: list[QueueConfig] = Field(default_factory=list)

    @field_validator("business_hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        return check_business_hours(value)

    webhooks: list[WebhookConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> TenantConfig:
        _unique([t.id for t in self.teams], "team ids")
        type_ids = [t.id for t in self.ticket_types]
        _unique(type_ids, "ticket type ids")
        _unique([o.id for o in self.offers], "offer ids")
        _unique([w.id for w in self.webhooks], "webhook ids")
        for index, offer in enumerate(self.offers):
            if offer.item_type not in type_ids:
                raise ValueError(
                    f"offers[{index}]: offer {offer.id!r} names item_type {offer.item_type!r}, "
                    "which is not a ticket type of this tenant"
                )
        check_desk_references(self)
        return self


class ConfigFile(_Strict):
    tenants: list[TenantConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ConfigFile:
        _unique([str(t.id) for t in self.tenants], "tenant ids")
        return self


def _unique(values: list[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} must be unique; {value!r} appears twice")
        seen.add(value)


class ConfigError(ValueError):
    """A configuration file that cannot be loaded; `problems` name each bad entry."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_config(data: Any, *, source: str) -> ConfigFile:
    """Validates parsed configuration data; raises ConfigError naming source, path and reason."""
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            problems.append(f"{source}: {_path(error['loc'])}: {error['msg']}")
        raise ConfigError(problems) from None


def read_config(path: Path) -> ConfigFile:
    """Reads a YAML or JSON configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            [f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"]
        ) from None
    return parse_config(data, source=str(path))
