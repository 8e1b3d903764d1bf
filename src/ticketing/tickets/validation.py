"""Validation of a create-ticket request: query, top-level body keys, offer and fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from ticketing.attachments.validation import Requested, requested_files
from ticketing.catalog.config_file import CATALOG_TYPES
from ticketing.catalog.fields import FIELD_TYPES, FieldError, FieldSpec, clean_value
from ticketing.catalog.service import TenantCatalog, TicketTypeSpec
from ticketing.kit.errors import InputValidationFailure, Reasons
from ticketing.relations.rules import check_relation

BODY_KEYS = ("source", "summary", "ticketBody", "attachments", "ticketRelation")
WATCHER_KEYS = ("ccWatchers", "toWatchers")
MODULE = "ticketing"
MAX_SOURCE = 100
MAX_SUMMARY = 1000
MAX_DEPTH = 32
MAX_TICKET_BODY_KEYS = 1000


@dataclass(frozen=True)
class CreateRequest:
    """A create-ticket request that passed validation, values cleaned."""

    source: str
    summary: str
    offer_id: str
    values: dict[str, Any]
    watchers: dict[str, list[str]]
    # Upload ids per key (ticketing.attachments.validation); bound when the ticket is written.
    attachments: Requested
    ticket_relation: dict[str, str] | None
    is_support_request: bool


NOT_PARSED = object()


def parse_body(reasons: Reasons, raw: bytes, content_type: str | None) -> Any:
    """Parses a JSON body; problems go to `reasons` and the result is NOT_PARSED."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        reasons.add("content-type", "Header content-type must be application/json")
        return NOT_PARSED
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # Valid JSON can hold a number past a double's range (1e309): name that, not syntax.
        too_large = "number is infinity" in str(exc)
        reasons.add(
            "body",
            "Request body holds a number too large to store"
            if too_large
            else "Request body must be valid JSON",
        )
        return NOT_PARSED
    # JSON carries a NUL only as the escape \u0000: without one in the body, only the
    # nesting needs looking at, and only when the body has more opening brackets than the
    # nesting allowed (fewer cannot nest that deep; brackets inside strings only add to the
    # count).
    if b"\\u0000" in raw:
        problem = _structure_problem(body, 0)
    elif isinstance(body, dict | list) and raw.count(b"{") + raw.count(b"[") > MAX_DEPTH:
        problem = _nesting_problem(body, 0)
    else:
        problem = None
    if problem:
        reasons.add("body", problem)
        return NOT_PARSED
    return body


def _structure_problem(value: Any, depth: int) -> str | None:
    """Rejects what no field can hold and the database cannot store: deep nesting, NUL."""
    if isinstance(value, str):
        return "Request body must not contain NUL characters" if "\x00" in value else None
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        return f"Request body must not nest deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _structure_problem(key, depth) or _structure_problem(item, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _structure_problem(item, depth + 1)
            if problem:
                return problem
    return None


def _nesting_problem(value: dict[str, Any] | list[Any], depth: int) -> str | None:
    """Rejects nesting deeper than MAX_DEPTH (what _structure_problem checks but NUL)."""
    if depth >= MAX_DEPTH:
        return f"Request body must not nest deeper than {MAX_DEPTH} levels"
    for item in value.values() if isinstance(value, dict) else value:
        if isinstance(item, dict | list):
            problem = _nesting_problem(item, depth + 1)
            if problem:
                return problem
    return None


def _support_flag(reasons: Reasons, value: str | None) -> bool:
    if value is None or value.strip().lower() in ("", "false"):
        return False
    if value.strip().lower() == "true":
        return True
    reasons.add("issupportrequest", "Header issupportrequest must be true or false")
    return False


# Media ranges an `accept` header may name for the answer this API gives.
JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})


def _check_accept(reasons: Reasons, value: str | None) -> None:
    """The seed requires `accept`, for application/json: a header that is missing, or that
    names only other types (or refuses JSON with q=0), is a validation failure."""
    if value is None or not _accepts_json(value):
        reasons.add("accept", "Header accept must allow application/json")


@lru_cache(maxsize=64)
def _accepts_json(value: str) -> bool:
    for member in value.split(","):
        media_range, *parameters = member.split(";")
        if media_range.strip().lower() not in JSON_RANGES:
            continue
        weights = [p.split("=", 1)[1] for p in parameters if p.strip().lower().startswith("q=")]
        if not weights or not _is_zero(weights[0]):
            return True
    return False


def _is_zero(weight: str) -> bool:
    try:
        return float(weight) == 0
    except ValueError:
        return False


def check_query(reasons: Reasons, query: Mapping[str, str]) -> str | None:
    """Checks `type` (catalog type) and `module`; returns the catalog type when valid."""
    catalog_type = query.get("type")
    if not catalog_type:
        reasons.add("type", "Query parameter type is required")
    elif catalog_type not in CATALOG_TYPES:
        reasons.add("type", f"Query parameter type must be one of: {', '.join(CATALOG_TYPES)}")
    module = query.get("module")
    if not module:
        reasons.add("module", "Query parameter module is required")
    elif module != MODULE:
        reasons.add("module", f"Query parameter module must be {MODULE}")
    return catalog_type if catalog_type in CATALOG_TYPES else None


def require_catalog_query(query: Mapping[str, str]) -> str:
    """Checks `type` and `module` on their own (400 when either is wrong); the catalog type."""
    reasons = Reasons()
    catalog_type = check_query(reasons, query)
    reasons.raise_if_any("Invalid query parameters")
    assert catalog_type is not None
    return catalog_type


def validate_create(
    raw_body: bytes,
    *,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    catalog: TenantCatalog,
    ticket_type: TicketTypeSpec,
) -> CreateRequest:
    """Validates everything at once; raises InputValidationFailure listing every failure."""
    reasons = Reasons()
    catalog_type = check_query(reasons, query)
    is_support_request = _support_flag(reasons, headers.get("issupportrequest"))
    _check_accept(reasons, headers.get("accept"))
    body = parse_body(reasons, raw_body, headers.get("content-type"))
    if not isinstance(body, dict):
        if body is not NOT_PARSED:
            reasons.add("body", "Request body must be a JSON object")
        raise InputValidationFailure(reasons.reason)
    for key in BODY_KEYS:
        if key not in body:
            reasons.add(key, f"{key} is required")
    for key in body:
        if key not in BODY_KEYS:
            reasons.add(key, f"Unknown key {key}")

    source = _text(reasons, body, "source", MAX_SOURCE)
    summary = _text(reasons, body, "summary", MAX_SUMMARY)
    attachments = body.get("attachments")
    if "attachments" in body and not isinstance(attachments, dict):
        reasons.add("attachments", "attachments must be an object; send {} when there are none")
    files = requested_files(
        reasons, attachments if isinstance(attachments, dict) else {}, ticket_type
    )
    relation = body.get("ticketRelation")
    if "ticketRelation" in body and relation is not None and not isinstance(relation, dict):
        reasons.add("ticketRelation", "ticketRelation must be an object or null")
    elif relation is not None:
        relation = check_relation(reasons, relation, key="ticketRelation")

    ticket_body = body.get("ticketBody")
    offer_id = ""
    values: dict[str, Any] = {}
    watchers: dict[str, list[str]] = {key: [] for key in WATCHER_KEYS}
    if "ticketBody" in body and not isinstance(ticket_body, dict):
        reasons.add("ticketBody", "ticketBody must be an object")
    elif isinstance(ticket_body, dict) and len(ticket_body) > MAX_TICKET_BODY_KEYS:
        reasons.add("ticketBody", f"ticketBody must not have more than {MAX_TICKET_BODY_KEYS} keys")
    elif isinstance(ticket_body, dict):
        offer_id = _check_offer(reasons, ticket_body, catalog, ticket_type, catalog_type)
        values = _check_fields(reasons, ticket_body, ticket_type, watchers)

    reasons.raise_if_any()
    return CreateRequest(
        source=source,
        summary=summary,
        offer_id=offer_id,
        values=values,
        watchers=watchers,
        attachments=files,
        ticket_relation=relation if isinstance(relation, dict) else None,
        is_support_request=is_support_request,
    )


def _text(reasons: Reasons, body: dict[str, Any], key: str, max_length: int) -> str:
    if key not in body:
        return ""
    value = body[key]
    if not isinstance(value, str):
        reasons.add(key, f"{key} must be a string")
        return ""
    if not value.strip():
        reasons.add(key, f"{key} is required")
    elif len(value) > max_length:
        reasons.add(key, f"{key} must be at most {max_length} characters long")
    return value


def _check_offer(
    reasons: Reasons,
    ticket_body: dict[str, Any],
    catalog: TenantCatalog,
    ticket_type: TicketTypeSpec,
    catalog_type: str | None,
) -> str:
    if "offerId" not in ticket_body or ticket_body["offerId"] in (None, ""):
        reasons.add("offerId", "Field offerId is required")
        return ""
    offer_id = ticket_body["offerId"]
    if not isinstance(offer_id, str):
        reasons.add("offerId", "offerId must be sent as a string")
        return ""
    offer = catalog.offers.get(offer_id)
    if offer is None:
        reasons.add("offerId", f"Offer {offer_id} does not exist")
    elif not offer.active:
        reasons.add("offerId", f"Offer {offer_id} is not active")
    else:
        if catalog_type is not None and catalog_type not in offer.catalog_types:
            reasons.add(
                "offerId", f"Offer {offer_id} is not available in the {catalog_type} catalog"
            )
        if offer.item_type != ticket_type.id:
            reasons.add(
                "offerId",
                f"Offer {offer_id} creates item type {offer.item_type}, "
                f"which does not match item type {ticket_type.id}",
            )
    return offer_id


def _check_fields(
    reasons: Reasons,
    ticket_body: dict[str, Any],
    ticket_type: TicketTypeSpec,
    watchers: dict[str, list[str]],
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in ticket_body.items():
        if key == "offerId":
            continue
        if key in WATCHER_KEYS:
            _watchers(reasons, key, value, watchers)
            continue
        spec = _field_named(reasons, key, ticket_type)
        if spec is None:
            continue
        if spec.id in values:
            reasons.add(key, f"Field {spec.label} is given more than once")
            continue
        try:
            values[spec.id] = clean_value(spec, value)
        except FieldError as exc:
            reasons.add(spec.id, str(exc))
    for spec in ticket_type.fields:
        if (
            spec.id not in values
            and spec.required
            and spec.id not in reasons.reason
            and FIELD_TYPES[spec.type].in_ticket_body
        ):
            reasons.add(spec.id, f"Field {spec.label} is required")
    for field_id, default in ticket_type.defaults:
        values.setdefault(field_id, default)
    return values


def _field_named(reasons: Reasons, key: str, ticket_type: TicketTypeSpec) -> FieldSpec | None:
    """The field a ticketBody key names (its published UUID, in either letter case), or None
    after recording it as unknown."""
    # Fields are keyed by their UUID's published (lower-case) form.
    fields = ticket_type.fields_by_id
    spec = fields.get(key) or fields.get(key.lower())
    if spec is None:
        reasons.add(key, f"Unknown field {key} for item type {ticket_type.id}")
    return spec


UPDATE_KEYS = ("etag", "summary", "ticketBody", "status", "attachments", *WATCHER_KEYS)


@dataclass(frozen=True)
class UpdateRequest:
    """The changes a valid update asks for; None (or absent) means "leave as it is"."""

    summary: str | None
    values: dict[str, Any]
    status: str | None
    watchers: dict[str, list[str]]
    # New uploads per key, added to the ticket's files.
    attachments: Requested


def validate_update(
    body: dict[str, Any], *, ticket_type: TicketTypeSpec, current: Mapping[str, Any]
) -> UpdateRequest:
    """Validates an update with the create rules, for the keys given; lists every failure."""
    reasons = Reasons()
    for key in body:
        if key not in UPDATE_KEYS:
            reasons.add(key, f"Unknown key {key}")
    summary = None
    if "summary" in body:
        summary = _text(reasons, body, "summary", MAX_SUMMARY)
    watchers: dict[str, list[str]] = {}
    for key in WATCHER_KEYS:
        if key in body:
            _watchers(reasons, key, body[key], watchers)
    values: dict[str, Any] = {}
    ticket_body = body.get("ticketBody")
    if ticket_body is not None and not isinstance(ticket_body, dict):
        reasons.add("ticketBody", "ticketBody must be an object")
    elif isinstance(ticket_body, dict):
        for key, value in ticket_body.items():
            if key == "offerId":
                if value != current["data"].get("offerId"):
                    reasons.add("offerId", "offerId cannot be changed")
                continue
            if key in WATCHER_KEYS:
                _watchers(reasons, key, value, watchers)
                continue
            spec = _field_named(reasons, key, ticket_type)
            if spec is None:
                continue
            try:
                values[spec.id] = clean_value(spec, value)
            except FieldError as exc:
                reasons.add(spec.id, str(exc))
    status = body.get("status")
    if status is not None:
        names = [s["name"] for s in ticket_type.workflow.get("statuses", [])]
        if not isinstance(status, str) or status not in names:
            reasons.add("status", f"status must be one of: {', '.join(names)}")
        elif status != current["status_type"]:
            transitions = ticket_type.workflow.get("transitions")
            allowed = (transitions or {}).get(current["status_type"], [])
            if transitions is not None and status not in allowed:
                reasons.add(
                    "status", f"status cannot change from {current['status_type']} to {status}"
                )
    files: Requested = {}
    attachments = body.get("attachments")
    if attachments is not None and not isinstance(attachments, dict):
        reasons.add("attachments", "attachments must be an object")
    elif isinstance(attachments, dict):
        files = requested_files(
            reasons, attachments, ticket_type, current=current["attachments"] or {}
        )
    reasons.raise_if_any()
    return UpdateRequest(
        summary=summary, values=values, status=status, watchers=watchers, attachments=files
    )


def _watchers(reasons: Reasons, key: str, value: Any, out: dict[str, list[str]]) -> None:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v.strip() and len(v) <= 320 for v in value
    ):
        reasons.add(key, f"{key} must be a list of usernames or email addresses")
    else:
        out[key] = list(dict.fromkeys(value))
