"""The relation types, how each is stored and seen from either ticket, and the shape check
of a relation in a request body (shared with the create validation, so it imports nothing of
the ticket package)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ticketing.kit.errors import Reasons

# What a request may ask for, seen from the ticket it is sent for.
TYPES = ("parent", "relates_to", "duplicate_of", "blocks")
# Types whose chains must not loop back to where they started.
ACYCLIC = frozenset({"parent", "blocks"})
SYMMETRIC = "relates_to"
MAX_OBJECT_ID = 40


@dataclass(frozen=True)
class View:
    """A name under which a ticket sees a stored relation: the stored type, and whether
    this ticket is the stored row's source."""

    stored: str
    as_source: bool


# Every key of GET /ticket/{objectId}/relations (also accepted by DELETE). `parent` is
# stored on the child: the child is the source, its parent the target.
VIEWS = {
    "parent": View("parent", as_source=True),
    "children": View("parent", as_source=False),
    "relates_to": View(SYMMETRIC, as_source=True),
    "duplicate_of": View("duplicate_of", as_source=True),
    "duplicates": View("duplicate_of", as_source=False),
    "blocks": View("blocks", as_source=True),
    "blocked_by": View("blocks", as_source=False),
}
# The same relation seen from the other ticket; what its history entry names.
INVERSE = {
    "parent": "children",
    "children": "parent",
    "relates_to": "relates_to",
    "duplicate_of": "duplicates",
    "duplicates": "duplicate_of",
    "blocks": "blocked_by",
    "blocked_by": "blocks",
}


def view_name(stored: str, *, as_source: bool) -> str:
    """The key under which a ticket sees a stored relation."""
    if stored == SYMMETRIC:
        return SYMMETRIC
    for name, view in VIEWS.items():
        if view.stored == stored and view.as_source == as_source:
            return name
    raise ValueError(stored)


def check_relation(reasons: Reasons, value: Any, *, key: str | None) -> dict[str, str] | None:
    """A relation `{"type", "objectId"}` (only those keys). Problems go to `reasons`, all under
    `key` (the create body's `ticketRelation`), or with `key` None under the relation's own
    keys (a request body that is the relation). Returns the relation when it is well formed."""
    name = key or "body"
    if not isinstance(value, dict):
        reasons.add(name, f"{name} must be an object with type and objectId")
        return None
    prefix = f"{key}." if key else ""
    before = sum(len(messages) for messages in reasons.reason.values())
    for item in value:
        if item not in ("type", "objectId"):
            reasons.add(key or str(item), f"Unknown key {prefix}{item}")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in TYPES:
        reasons.add(key or "type", f"{prefix}type must be one of: {', '.join(TYPES)}")
    object_id = value.get("objectId")
    if not isinstance(object_id, str) or not object_id.strip():
        reasons.add(key or "objectId", f"{prefix}objectId must be the display ID of a ticket")
    elif len(object_id) > MAX_OBJECT_ID:
        reasons.add(
            key or "objectId", f"{prefix}objectId must be at most {MAX_OBJECT_ID} characters long"
        )
    if sum(len(messages) for messages in reasons.reason.values()) > before:
        return None
    return {"type": str(kind), "objectId": str(object_id)}
