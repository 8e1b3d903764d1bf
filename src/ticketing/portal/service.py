"""What the portal's pages do, through the same service functions as the API endpoints.

Forms are turned into the API's request bodies and handed to the functions the endpoints
call (create, update, comment, list, history), so every check, every validation message and
every permission is the API's own. Pages get plain values back; templates never query.
"""

from __future__ import annotations

import html
import math
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import nh3
import orjson

from ticketing.attachments import repository as attachment_rows
from ticketing.attachments import service as attachments
from ticketing.attachments.content import AttachmentPolicy
from ticketing.attachments.service import MAX_FORM_TEXT, MULTIPART_SLACK
from ticketing.attachments.validation import TICKET_KEY, is_file_field, max_files
from ticketing.auth.access import AGENT_ROLES, Access, Action, authorize
from ticketing.auth.dev_issuer import load_or_create_dev_key, mint_token
from ticketing.auth.tokens import Principal
from ticketing.catalog.fields import FieldSpec
from ticketing.catalog.service import OfferSpec, StaleCatalog, TenantCatalog, TicketTypeSpec
from ticketing.events import service as events
from ticketing.kit.db import transaction
from ticketing.kit.errors import Forbidden, NotFound, ServiceUnavailable, TenantNotFound
from ticketing.kit.numbers import parse_digits
from ticketing.kit.tenancy import bind_tenant
from ticketing.kit.time import utcnow
from ticketing.portal import sessions
from ticketing.portal.controls import OMIT, control_for, input_name
from ticketing.portal.schemas import DemoUser, FieldView, Page, ShownValue
from ticketing.queues import service as queues
from ticketing.sla.config import PRIORITIES
from ticketing.state import AppState
from ticketing.tickets import comments, lifecycle, listing
from ticketing.tickets import service as tickets
from ticketing.tickets.public import ticket_public

# The catalog the requester portal shows (the seed's catalog types: template, agent, user).
CATALOG_TYPE = "user"
SOURCE = "portal"
PAGE_SIZE = 25
SORTS = ("createdAt", "updatedAt", "objectId", "status", "summary")
_JSON = {"content-type": "application/json", "accept": "application/json"}
# The API's sanitizer, less images: the page's CSP loads none from elsewhere, and an image a
# requester pasted carries no text alternative.
SHOWN_TAGS = nh3.ALLOWED_TAGS - {"img"}
_SHOWN = nh3.Cleaner(tags=SHOWN_TAGS)
_QUERY = {"type": CATALOG_TYPE, "module": "ticketing"}


# --- who is signed in --------------------------------------------------------------------


async def verify_token(state: AppState, token: str) -> Principal:
    """Verifies a session's token exactly as the API verifies a bearer token."""
    principal = await state.verifier.verify(f"Bearer {token}")
    bind_tenant(principal.tenant_id)
    return principal


async def admit(state: AppState, principal: Principal, action: Action) -> Access:
    """Checks 3 and 4 of every call (tenant, scope and role) for the signed-in user."""
    try:
        tenant_id = uuid.UUID(principal.tenant_id or "")
    except ValueError as exc:
        raise TenantNotFound() from exc
    async with transaction(state.sessionmaker) as session:
        catalog = await state.catalogs.get(session, tenant_id=tenant_id)
    return authorize(principal, tenant_id, catalog, action)


def is_agent(principal: Principal) -> bool:
    """Whether the user works the queue (agents and admins see every ticket)."""
    return bool(principal.roles & AGENT_ROLES)


async def tenant_catalog(state: AppState, tenant_id: str) -> TenantCatalog:
    """The catalog of the tenant a sign-in is for (its realm; its name for the page)."""
    try:
        tenant = uuid.UUID(tenant_id)
    except ValueError as exc:
        raise TenantNotFound() from exc
    # Before sign-in there is no verified tenant; the tenant named in the sign-in URL is read
    # for its realm and name only.
    bind_tenant(tenant)
    async with transaction(state.sessionmaker) as session:
        catalog = await state.catalogs.get(session, tenant_id=tenant)
    if catalog is None:
        raise TenantNotFound()
    return catalog


async def dev_sign_in(
    state: AppState, *, catalog: TenantCatalog, user: DemoUser, ttl: int
) -> tuple[str, Principal]:
    """Mints a development-issuer token for a demo user and verifies it like any other."""
    key = load_or_create_dev_key(state.settings.dev_key_path)
    token = mint_token(
        key,
        issuer_base=state.settings.dev_issuer_url,
        tenant_id=str(catalog.tenant_id),
        realm=catalog.realm,
        username=user.username,
        email=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        roles=list(user.roles),
        teams=list(user.teams),
        ttl=ttl,
    )
    return token, await verify_token(state, token)


async def start_session(
    state: AppState, principal: Principal, *, token: str, id_token: str | None, expires: int
) -> str:
    """Records a session for a verified token (which expires at `expires`, Unix time) and
    returns its id, for the cookie."""
    tenant_id = principal.tenant_uuid
    if tenant_id is None:
        raise TenantNotFound()
    session_id = sessions.new_session_id()
    bind_tenant(tenant_id)
    async with transaction(state.sessionmaker) as db:
        await sessions.start(
            db,
            session_id=session_id,
            new=sessions.NewSession(
                tenant_id=tenant_id,
                subject=principal.subject,
                username=principal.username,
                email=principal.email,
                realm=principal.realm,
                token=token,
                id_token=id_token,
                expires_at=datetime.fromtimestamp(expires, UTC),
            ),
            now=utcnow(),
        )
    return session_id


async def open_session(
    state: AppState, tenant_id: uuid.UUID, session_id: str
) -> sessions.OpenedSession | None:
    """The session a cookie names, live or not (None: there is none)."""
    # The tenant the cookie names (signed by this service) is the only one read.
    bind_tenant(tenant_id)
    async with transaction(state.sessionmaker) as db:
        return await sessions.open_session(
            db, tenant_id=tenant_id, session_id=session_id, now=utcnow()
        )


async def end_session(
    state: AppState, tenant_id: uuid.UUID, session_id: str
) -> sessions.OpenedSession | None:
    """Ends the session a cookie names (sign-out); what it was, for the provider's logout."""
    bind_tenant(tenant_id)
    async with transaction(state.sessionmaker) as db:
        opened = await sessions.open_session(
            db, tenant_id=tenant_id, session_id=session_id, now=utcnow()
        )
        if opened is not None:
            await sessions.end(db, tenant_id=tenant_id, session_id=session_id, now=utcnow())
    return opened


# --- the catalog and its forms -----------------------------------------------------------


def user_offers(access: Access, search: str) -> list[OfferSpec]:
    """The active offers of the user catalog whose name, description or category match."""
    needle = search.strip().casefold()
    return [
        offer
        for offer in access.catalog.offers.values()
        if offer.active
        and CATALOG_TYPE in offer.catalog_types
        and (
            not needle
            or needle in offer.name.casefold()
            or needle in offer.description.casefold()
            or needle in (offer.category or "").casefold()
        )
    ]


@dataclass(frozen=True)
class OfferForm:
    """An offer with what its form is generated from."""

    offer: OfferSpec
    ticket_type: TicketTypeSpec
    teams: list[tuple[str, str]]


def offer_form(access: Access, offer_id: str) -> OfferForm:
    """The offer (of the user catalog) and its ticket type; teams the user may file for."""
    offer = access.catalog.offers.get(offer_id)
    if offer is None or not offer.active or CATALOG_TYPE not in offer.catalog_types:
        raise NotFound(f"Offer {offer_id} not found")
    ticket_type = access.catalog.ticket_types.get(offer.item_type)
    if ticket_type is None:
        raise NotFound(f"Offer {offer_id} not found")
    roles = access.principal.roles
    teams = [
        (team.id, team.name) for team in access.catalog.teams.values() if roles & team.create_roles
    ]
    return OfferForm(offer, ticket_type, teams)


def form_fields(
    ticket_type: TicketTypeSpec,
    kept: Mapping[str, Any] | None,
    errors: Mapping[str, list[str]],
    policy: AttachmentPolicy | None = None,
) -> list[FieldView]:
    """One control per field: the user's input when the form comes back, else the default.
    File controls say what the tenant's upload `policy` takes."""
    views = []
    for spec in ticket_type.fields:
        control = control_for(spec)
        value = kept[spec.id] if kept is not None else control.show(spec, spec.default_value)
        limits = dict(spec.limits)
        if is_file_field(spec):
            accepted = policy.allowed_types if policy is not None else ()
            limits.update(
                maxFiles=max_files(spec),
                accept=",".join(f".{t}" for t in accepted),
                types=", ".join(accepted),
                maxSizeText=_size_text(policy.max_size if policy is not None else 0),
            )
        views.append(
            FieldView(
                id=spec.id,
                input_name=input_name(spec),
                label=spec.label,
                type=spec.type,
                macro=control.macro,
                required=spec.required,
                value=value,
                options=[
                    {"value": str(o["value"]), "label": str(o.get("label") or o["value"])}
                    for o in spec.options
                ],
                limits=limits,
                errors=list(errors.get(spec.id, [])),
            )
        )
    return views


def _size_text(size: int) -> str:
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def read_form(
    ticket_type: TicketTypeSpec, form: Mapping[str, Sequence[str]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ticketBody values a form posted, and the input to show again if it comes back."""
    values: dict[str, Any] = {}
    kept: dict[str, Any] = {}
    for spec in ticket_type.fields:
        control = control_for(spec)
        posted = form.get(input_name(spec), [])
        value = control.read(spec, posted)
        if value is not OMIT:
            values[spec.id] = value
        if is_file_field(spec):
            kept[spec.id] = []  # the form's files, once received
        elif spec.type == "multiselect":
            kept[spec.id] = list(posted)
        elif spec.type == "checkbox":
            kept[spec.id] = "true" in posted
        else:
            kept[spec.id] = posted[0] if posted else ""
    return values, kept


async def create_ticket(
    state: AppState,
    access: Access,
    *,
    form: OfferForm,
    team_id: str,
    summary: str,
    values: dict[str, Any],
    files: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Files a ticket through the create endpoint's own function; the created ticket. `files`:
    the uploads of each attachment field, bound as the create's `attachments`."""
    body = {
        "source": SOURCE,
        "summary": summary,
        "ticketBody": {"offerId": form.offer.id, **values},
        "attachments": {key: [f["id"] for f in chosen] for key, chosen in (files or {}).items()},
        "ticketRelation": None,
    }
    raw_body = orjson.dumps(body)
    current = access
    for _attempt in range(3):
        try:
            return await tickets.create_ticket(
                state.engine,
                statements=state.statements,
                access=current,
                team_id=team_id,
                item_type_id=form.ticket_type.id,
                headers=_JSON,
                query=_QUERY,
                raw_body=raw_body,
            )
        except StaleCatalog:
            state.catalogs.forget(current.tenant_id)
            current = await admit(state, access.principal, Action.CREATE)
    raise ServiceUnavailable("The tenant's configuration is being changed; retry", 1)


def file_fields(ticket_type: TicketTypeSpec) -> list[FieldSpec]:
    """The ticket type's attachment fields (their files go in `attachments`)."""
    return [spec for spec in ticket_type.fields if is_file_field(spec)]


def kept_name(spec: FieldSpec) -> str:
    """The form key of the uploads a form that came back keeps for a field."""
    return f"k-{spec.id}"


@dataclass
class FormFiles:
    """A form's files per attachment field (uploads: id and name), and the files refused,
    in the attachments API's words."""

    uploads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)


async def receive_form_with_files(
    state: AppState,
    access: Access,
    form: OfferForm,
    request: Any,
    *,
    csrf_matches: Callable[[str], bool],
) -> tuple[dict[str, list[str]], FormFiles]:
    """Reads a multipart form; once its CSRF token is the session's, stores each file that
    passes the upload checks as `POST /attachments` does (an unbound upload of the user),
    and adds the uploads kept from an earlier attempt. The posted text values and the files."""
    specs = file_fields(form.ticket_type)
    policy = access.catalog.attachments
    slots = sum(max_files(spec) for spec in specs)
    received = await attachments.receive_form(
        request,
        policy=policy,
        spool_dir=state.blobs.spool_dir,
        file_parts=frozenset(input_name(spec) for spec in specs),
        max_bytes=policy.max_size * max(slots, 1) + MULTIPART_SLACK + MAX_FORM_TEXT,
    )
    try:
        token = received.values.get("csrf_token", [""])[0]
        if not csrf_matches(token):
            raise Forbidden("The form has expired or did not come from this site")
        files = await kept_files(state, access, form, received.values)
        if not received.files:
            return received.values, files
        uploading = await admit(state, access.principal, Action.UPLOAD)
        async with transaction(state.sessionmaker) as session:
            for spec in specs:
                for spooled in received.files.get(input_name(spec), []):
                    stored = await attachments.store_upload(
                        session, access=uploading, store=state.blobs, spooled=spooled
                    )
                    chosen = {"id": stored["id"], "name": stored["name"]}
                    files.uploads.setdefault(spec.id, []).append(chosen)
        for spec in specs:
            refused = received.problems.get(input_name(spec))
            if refused:
                files.problems[spec.id] = refused
        return received.values, files
    finally:
        received.discard()


async def kept_files(
    state: AppState, access: Access, form: OfferForm, posted: Mapping[str, Sequence[str]]
) -> FormFiles:
    """The uploads a form that came back keeps for its file fields (`k-<field>`), with their
    names; an id that is not the user's unbound upload is still sent, and the create says
    so in its own words."""
    files = FormFiles()
    kept = {
        spec.id: list(dict.fromkeys(posted.get(kept_name(spec), [])))
        for spec in file_fields(form.ticket_type)
    }
    wanted = [uuid.UUID(i) for ids in kept.values() for i in ids if _is_uuid(i)]
    if not wanted:
        return FormFiles(
            uploads={k: [{"id": i, "name": i} for i in v] for k, v in kept.items() if v}
        )
    async with transaction(state.sessionmaker) as session:
        rows = await attachment_rows.unbound_uploads(
            session,
            tenant_id=access.tenant_id,
            uploader=attachments.uploader(access.principal),
            ids=wanted,
        )
    known = {str(row.id): row.name for row in rows}
    for field_id, ids in kept.items():
        if ids:
            files.uploads[field_id] = [
                {"id": i, "name": known.get(str(uuid.UUID(i)) if _is_uuid(i) else i, i)}
                for i in ids
            ]
    return files


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def form_errors(reasons: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """A create's failures keyed as the form shows them: `attachments.<field>` next to the
    field."""
    errors: dict[str, list[str]] = {}
    for key, messages in reasons.items():
        shown = key.removeprefix("attachments.") if key.startswith("attachments.") else key
        errors.setdefault(shown, []).extend(messages)
    return errors


async def attachment_file(
    state: AppState, access: Access, object_id: str, attachment_id: str
) -> tuple[Any, AsyncIterator[bytes]]:
    """A file of a ticket the user may read (its row, its bytes), as the download endpoint
    finds it; NotFound otherwise."""
    async with transaction(state.sessionmaker) as session:
        ticket = await lifecycle.find_ticket(session, access=access, object_id=object_id)
        row = None
        if _is_uuid(attachment_id):
            row = await attachment_rows.get_bound(
                session,
                tenant_id=access.tenant_id,
                ticket_id=ticket["id"],
                attachment_id=uuid.UUID(attachment_id),
            )
    if row is None:
        raise NotFound(f"Attachment {attachment_id[:100]} not found on ticket {object_id}")
    content = await attachments.open_content(
        state.blobs, str(access.tenant_id), row.sha256, 0, row.size - 1
    )
    return row, content


# --- tickets -----------------------------------------------------------------------------


_SYSTEM_LABELS = {
    "summary": "Summary",
    "status": "Status",
    "ccWatchers": "Cc watchers",
    "toWatchers": "To watchers",
    "offerId": "Offer",
    "deleted_seq": "Deleted",
    "assignee": "Assignee",
    "priority": "Priority",
    "queueId": "Queue",
    "slaPolicy": "SLA policy",
}


def _labels(spec: FieldSpec) -> dict[str, str]:
    return {str(o["value"]): str(o.get("label") or o["value"]) for o in spec.options}


def shown_value(spec: FieldSpec, value: Any) -> ShownValue:
    """A field's stored value for reading: rich text sanitized, options by their labels."""
    if value is None or value == "" or value == []:
        return ShownValue(spec.label, "—")
    if spec.type == "richtext" and isinstance(value, str):
        # Stored rich text was sanitized on the way in; it is sanitized again on the way out
        # so that a value stored by anything else cannot carry script into the page.
        return ShownValue(spec.label, "", html=sanitize(value))
    if spec.type in ("dropdown", "radio"):
        return ShownValue(spec.label, _labels(spec).get(str(value), str(value)))
    if spec.type == "multiselect" and isinstance(value, list):
        labels = _labels(spec)
        return ShownValue(spec.label, ", ".join(labels.get(str(v), str(v)) for v in value))
    if spec.type == "checkbox":
        return ShownValue(spec.label, "Yes" if value is True else "No")
    return ShownValue(spec.label, str(value))


def _shown_files(label: str, object_id: str, files: Any) -> ShownValue:
    """An attachment field's files, each with its download link on the portal."""
    if not isinstance(files, list) or not files:
        return ShownValue(label, "—")
    return ShownValue(
        label,
        "",
        files=[
            {
                "name": str(f["name"]),
                "size": _size_text(int(f["size"])),
                "url": f"/portal/tickets/{quote(object_id, safe='')}/files/{quote(str(f['id']))}",
            }
            for f in files
        ],
    )


def sanitize(html_text: str) -> str:
    """Rich text as a page may show it: sanitized by the API's sanitizer (nh3), no images."""
    return _SHOWN.clean(html_text)


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


@dataclass
class TicketPage:
    """Everything a ticket page shows."""

    ticket: dict[str, Any]
    ticket_type: TicketTypeSpec | None
    offer_name: str
    team_name: str
    fields: list[ShownValue]
    comments: list[dict[str, Any]]
    history: list[dict[str, Any]]
    statuses: list[str]
    # SLA clocks as the ticket response shows them, with labels for the page.
    clocks: list[dict[str, Any]] = field(default_factory=list)
    # What an agent may route the ticket to: priorities, the tenant's queues (id, name) and
    # the members of the ticket's queue (the current assignee first if no longer one).
    priorities: list[str] = field(default_factory=list)
    queues: list[tuple[str, str]] = field(default_factory=list)
    members: list[str] = field(default_factory=list)


def _history_view(
    entries: list[dict[str, Any]], ticket_type: TicketTypeSpec | None
) -> list[dict[str, Any]]:
    labels = dict(_SYSTEM_LABELS)
    if ticket_type is not None:
        labels.update({spec.id: spec.label for spec in ticket_type.fields})
    return [
        {
            "version": entry["version"],
            "action": entry["action"],
            "at": entry["at"],
            "by": entry["by"],
            "changes": [
                {
                    "field": labels.get(change["field"], change["field"]),
                    "old": _plain(change.get("old")),
                    "new": _plain(change.get("new")),
                }
                for change in entry["changes"]
            ],
        }
        for entry in entries
    ]


def _comment_view(comment: dict[str, Any]) -> dict[str, Any]:
    return {**comment, "html": sanitize(comment["body"])}


async def ticket_page(state: AppState, access: Access, object_id: str) -> TicketPage:
    """A ticket with its fields, comments (internal ones for agents) and history."""
    async with transaction(state.sessionmaker) as session:
        row = await lifecycle.find_ticket(session, access=access, object_id=object_id)
        found = await comments.list_comments(session, access=access, object_id=object_id)
        history = await lifecycle.ticket_history(session, access=access, object_id=object_id)
        queue_id = row.get("queue_id")
        members: list[str] = []
        if (
            is_agent(access.principal)
            and isinstance(queue_id, str)
            and queue_id in access.catalog.desk.queues
        ):
            found_members = await queues.list_members(session, access=access, queue_id=queue_id)
            members = [m["userId"] for m in found_members]
    ticket = ticket_public(row)
    if ticket["assignee"] and ticket["assignee"] not in members:
        members.insert(0, ticket["assignee"])
    catalog = access.catalog
    ticket_type = catalog.ticket_types.get(row["item_type_id"])
    offer = catalog.offers.get(str(ticket["data"].get("offerId", "")))
    team = catalog.teams.get(row["team_id"])
    files = ticket.get("attachments") or {}
    fields = (
        [
            _shown_files(spec.label, ticket["object_id"], files.get(spec.id))
            if is_file_field(spec)
            else shown_value(spec, ticket["data"].get(spec.id))
            for spec in ticket_type.fields
        ]
        if ticket_type is not None
        else []
    )
    if files.get(TICKET_KEY):
        fields.append(_shown_files("Files", ticket["object_id"], files[TICKET_KEY]))
    statuses = [s["name"] for s in ticket_type.workflow.get("statuses", [])] if ticket_type else []
    return TicketPage(
        ticket=ticket,
        ticket_type=ticket_type,
        offer_name=offer.name if offer else "",
        team_name=team.name if team else row["team_id"],
        fields=fields,
        comments=[_comment_view(c) for c in found],
        history=_history_view(history, ticket_type),
        statuses=statuses,
        clocks=[_clock_view(c) for c in ticket["slas"]],
        priorities=list(PRIORITIES),
        queues=[(q.id, q.name) for q in catalog.desk.queues.values()],
        members=members,
    )


_CLOCK_KINDS = {"response": "First response", "resolution": "Resolution"}
_CLOCK_STATES = {
    "running": "Running",
    "paused": "Paused",
    "met": "Met",
    "breached": "Breached",
}


def _clock_view(clock: dict[str, Any]) -> dict[str, Any]:
    return {
        **clock,
        "label": _CLOCK_KINDS.get(clock["kind"], clock["kind"]),
        "state_label": _CLOCK_STATES.get(clock["state"], clock["state"]),
    }


def sla_summary(ticket: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a list row shows of a ticket's SLA: the earliest due time of its clocks still
    counting (None when every clock stopped) and whether any clock is in breach; None for a
    ticket without clocks."""
    slas = ticket.get("slas") or []
    if not slas:
        return None
    counting = [
        s["dueAt"] for s in slas if s["dueAt"] and s["stoppedAt"] is None and s["state"] != "paused"
    ]
    return {
        "due_at": min(counting, default=None),
        "paused": any(s["state"] == "paused" for s in slas),
        "breached": any(s["breached"] for s in slas),
    }


def comment_html(text: str) -> str:
    """A comment typed in the portal (plain text) as the HTML the API stores."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.strip("\n").split("\n")) + "</p>"
        for p in paragraphs
    )


async def add_comment(
    state: AppState, access: Access, object_id: str, *, text: str, internal: bool
) -> dict[str, Any]:
    """Adds a comment through the comment endpoint's own function."""
    raw_body = orjson.dumps({"body": comment_html(text), "internal": internal})
    async with transaction(state.sessionmaker) as session:
        return await comments.add_comment(
            session,
            access=access,
            object_id=object_id,
            raw_body=raw_body,
            content_type="application/json",
        )


def watcher_list(text: str) -> list[str]:
    """Watchers typed one per line or separated by commas."""
    parts = text.replace("\n", ",").split(",")
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


async def update_ticket(
    state: AppState, access: Access, object_id: str, *, changes: dict[str, Any]
) -> dict[str, Any]:
    """Applies an agent's changes (with the etag they were based on) through the update
    endpoint's own function; raises EtagMismatch when someone else changed the ticket."""
    raw_body = orjson.dumps(changes)
    async with transaction(state.sessionmaker) as session:
        return await lifecycle.update_ticket(
            session, access=access, object_id=object_id, raw_body=raw_body, headers=_JSON
        )


def changes_since(page: TicketPage, version: int) -> list[dict[str, Any]]:
    """History entries newer than the version a form was based on."""
    return [entry for entry in page.history if entry["version"] > version]


async def queue_updates(
    state: AppState, access: Access, request: Any, *, expires_at: float
) -> AsyncIterator[bytes]:
    """The list-updates stream of the API (`created`, `updated`, `deleted` of the tickets
    the user may list, heartbeats) for a portal session, ending when its token expires."""
    # Subscribed before the stream's opening is read, as the API's endpoint does.
    state.hub.check_capacity()
    subscription = state.hub.subscribe(access.tenant_id)
    try:
        async with transaction(state.sessionmaker) as session:
            return await events.list_updates(
                session,
                request=request,
                access=access,
                hub=state.hub,
                subscription=subscription,
                heartbeat=state.settings.sse_heartbeat,
                expires_at=expires_at,
            )
    except BaseException:
        state.hub.unsubscribe(subscription)
        raise


# --- lists -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterChoices:
    """What the queue's filters offer beyond the catalog: the members of the tenant's queues
    (the assignee filter) and the moment `due today` and `overdue` are measured from."""

    catalog: TenantCatalog
    assignees: list[str]
    now: datetime


Condition = dict[str, Any]


@dataclass(frozen=True)
class QueueFilter:
    """One filter of the agent queue: its query parameter, the choices it offers and the
    list request's conditions (the API's columns) a chosen value stands for."""

    name: str
    label: str
    choices: Callable[[FilterChoices], list[tuple[str, str]]]
    conditions: Callable[[str, FilterChoices], list[Condition]]


def _statuses(context: FilterChoices) -> list[tuple[str, str]]:
    names: dict[str, None] = {}
    for ticket_type in context.catalog.ticket_types.values():
        for status in ticket_type.workflow.get("statuses", []):
            names.setdefault(status["name"])
    return [(n, n) for n in names]


def _teams(context: FilterChoices) -> list[tuple[str, str]]:
    return [(team.id, team.name) for team in context.catalog.teams.values()]


def _priorities(_context: FilterChoices) -> list[tuple[str, str]]:
    return [(p, p.capitalize()) for p in PRIORITIES]


def _assignees(context: FilterChoices) -> list[tuple[str, str]]:
    return [(a, a) for a in context.assignees]


SLA_CHOICES = (("due-today", "Due today"), ("overdue", "Overdue"), ("breached", "Breached"))


def _sla_states(_context: FilterChoices) -> list[tuple[str, str]]:
    return list(SLA_CHOICES)


def _equals(column: str) -> Callable[[str, FilterChoices], list[Condition]]:
    return lambda value, _context: [{"column": column, "op": "EQ", "operand": value}]


def _sla_conditions(value: str, context: FilterChoices) -> list[Condition]:
    """`Due today`: a running clock falls due today (UTC); `overdue`: one is past its due
    time; `breached`: some clock is in breach (the API's slaBreached)."""
    if value == "breached":
        return [{"column": "slaBreached", "op": "EQ", "operand": True}]
    now = context.now
    if value == "overdue":
        return [{"column": "slaDueAt", "op": "LT", "operand": now.isoformat()}]
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        {"column": "slaDueAt", "op": "GE", "operand": today.isoformat()},
        {"column": "slaDueAt", "op": "LT", "operand": (today + timedelta(days=1)).isoformat()},
    ]


QUEUE_FILTERS = (
    QueueFilter("status", "Status", _statuses, _equals("status")),
    QueueFilter("team", "Team", _teams, _equals("teamId")),
    QueueFilter("priority", "Priority", _priorities, _equals("priority")),
    QueueFilter("assignee", "Assignee", _assignees, _equals("assignee")),
    QueueFilter("sla", "SLA", _sla_states, _sla_conditions),
)


async def filter_choices(state: AppState, access: Access) -> FilterChoices:
    """What the queue's filters offer now."""
    async with transaction(state.sessionmaker) as session:
        assignees = await queues.all_members(session, access=access)
    return FilterChoices(access.catalog, assignees, datetime.now(UTC))


@dataclass
class ListRequest:
    """A list page as the URL asks for it, already limited to values the page offers."""

    search: str = ""
    sort: str = "createdAt"
    order: str = "DESC"
    page: int = 1
    filters: dict[str, str] | None = None
    context: FilterChoices | None = None


def list_request(query: Mapping[str, str], context: FilterChoices | None = None) -> ListRequest:
    """Reads search, sort, order, page and (given what they offer) the queue filters from
    a page's query string."""
    page_text = query.get("page", "1")
    page = parse_digits(page_text, max_digits=6) or 1
    filters = {}
    for queue_filter in QUEUE_FILTERS if context is not None else ():
        assert context is not None
        value = query.get(queue_filter.name, "")
        if value and value in {v for v, _ in queue_filter.choices(context)}:
            filters[queue_filter.name] = value
    sort = query.get("sort", "createdAt")
    return ListRequest(
        search=query.get("q", "").strip()[:200],
        sort=sort if sort in SORTS else "createdAt",
        order="ASC" if query.get("order") == "ASC" else "DESC",
        page=max(page, 1),
        filters=filters,
        context=context,
    )


async def list_tickets(
    state: AppState, access: Access, request: ListRequest, *, submitted_by: str | None = None
) -> Page:
    """A page of tickets through the list endpoint's own function."""
    filters = request.filters or {}
    operands: list[Condition] = [
        condition
        for f in QUEUE_FILTERS
        if f.name in filters and request.context is not None
        for condition in f.conditions(filters[f.name], request.context)
    ]
    if submitted_by is not None:
        operands.append({"column": "submittedBy", "op": "EQ", "operand": submitted_by})
    body: dict[str, Any] = {
        "top": PAGE_SIZE,
        "offset": (request.page - 1) * PAGE_SIZE,
        "sort": request.sort,
        "searchOrder": request.order,
    }
    if request.search:
        body["search"] = request.search
    if operands:
        body["filter"] = {"op": "AND", "operand": operands}
    async with transaction(state.sessionmaker) as session:
        found = await listing.list_tickets(
            session, access=access, raw_body=orjson.dumps(body), content_type="application/json"
        )
    count = int(found["count"])
    return Page(
        tickets=[{**t, "sla_summary": sla_summary(t)} for t in found["value"]],
        count=count,
        page=request.page,
        pages=max(1, math.ceil(count / PAGE_SIZE)),
    )
