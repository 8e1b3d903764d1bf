"""The shape of a create's or update's `attachments`: which keys, how many ids, required fields.

`{"<attachment field UUID>": ["<upload id>", ...], "ticket": [...]}`; `ticket` holds the files
of the ticket as a whole. Whether each id is a usable upload is checked against the database
when the ticket is written (ticketing.attachments.service.FileBinding).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ticketing.catalog.fields import DEFAULT_MAX_FILES, FIELD_TYPES, FieldSpec
from ticketing.catalog.service import TicketTypeSpec
from ticketing.kit.errors import Reasons

TICKET_KEY = "ticket"
# Files of the ticket as a whole (key `ticket`).
MAX_TICKET_FILES = 20

# Requested uploads: key (field UUID or `ticket`) -> upload ids, in the order sent.
Requested = dict[str, list[str]]


def is_file_field(spec: FieldSpec) -> bool:
    """Whether a field's values are files (sent in `attachments`, not in ticketBody)."""
    return not FIELD_TYPES[spec.type].in_ticket_body


def max_files(spec: FieldSpec | None) -> int:
    if spec is None:
        return MAX_TICKET_FILES
    return int(spec.limits.get("maxFiles") or DEFAULT_MAX_FILES)


def requested_files(
    reasons: Reasons,
    value: Any,
    ticket_type: TicketTypeSpec,
    *,
    current: Mapping[str, Any] | None = None,
) -> Requested:
    """Checks an `attachments` map (an object already) against the ticket type; on update,
    `current` is the ticket's attachments, whose files count towards `maxFiles`."""
    requested: Requested = {}
    seen: set[str] = set()
    for key, ids in value.items():
        where = f"attachments.{key}"
        spec = None
        if key != TICKET_KEY:
            spec = ticket_type.fields_by_id.get(key.lower()) if len(key) == 36 else None
            if spec is None or not is_file_field(spec):
                reasons.add(
                    where, f"Unknown key {key}: expects ticket or an attachment field's UUID"
                )
                continue
        canonical = spec.id if spec else TICKET_KEY
        if canonical in requested:
            reasons.add(where, f"Key {key} is given more than once")
            continue
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            reasons.add(where, f"{where} must be a list of attachment ids")
            continue
        limit = max_files(spec)
        existing = len((current or {}).get(canonical) or [])
        if existing + len(ids) > limit:
            label = f"Field {spec.label}" if spec else "A ticket"
            reasons.add(where, f"{label} takes at most {limit} files")
            continue
        for upload_id in ids:
            if upload_id in seen:
                reasons.add(where, f"Attachment {upload_id} is listed more than once")
            elif not _is_uuid(upload_id):
                reasons.add(where, f"Attachment {upload_id[:100]} not found")
            seen.add(upload_id)
        requested[canonical] = [str(uuid.UUID(i)) if _is_uuid(i) else i for i in ids]
    if current is None:
        for spec in ticket_type.fields:
            missing = spec.required and is_file_field(spec) and not requested.get(spec.id)
            if missing and f"attachments.{spec.id}" not in reasons.reason:
                reasons.add(spec.id, f"Field {spec.label} is required")
    return {key: ids for key, ids in requested.items() if ids}


def _is_uuid(value: str) -> bool:
    if len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
