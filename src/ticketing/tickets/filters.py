"""The list/count request: search, paging, sort and the nested filter, parsed into SQL clauses.

Every operand becomes a bound parameter; columns come from a fixed map or from the
tenant's own field UUIDs, so nothing from the request reaches SQL as text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    false,
    literal,
    literal_column,
    not_,
    or_,
    true,
)

from ticketing.catalog.fields import FieldSpec
from ticketing.catalog.service import TenantCatalog
from ticketing.kit.errors import Reasons
from ticketing.kit.lowercase import unicode_lower
from ticketing.models import HAS_ATTACHMENTS_SQL, Ticket
from ticketing.relations.repository import children_of

OPERATORS = ("EQ", "NE", "GT", "GE", "LT", "LE", "LIKE", "IN")
SORTS = {
    "createdAt": (Ticket.created_at,),
    "updatedAt": (Ticket.updated_at,),
    "objectId": (Ticket.display_prefix, Ticket.display_number),
    "status": (Ticket.status_type,),
    "summary": (Ticket.summary,),
}
MAX_TOP = 100
DEFAULT_TOP = 30
MAX_CONDITIONS = 100
MAX_DEPTH = 8
MAX_IN = 100
MAX_OFFSET = 1_000_000_000
TEXT_TYPES = frozenset({"text", "textarea", "richtext", "email", "user", "dropdown", "radio"})
LIST_KEYS = frozenset({"search", "top", "offset", "sort", "searchOrder", "filter"})


@dataclass(frozen=True)
class Column:
    """A filterable column: its SQL expression and the kind of operand it compares with."""

    expression: Any
    kind: str  # "string", "datetime", "number", "boolean", "flag" (EQ/NE true/false only)


FIXED_COLUMNS = {
    "objectId": Column(Ticket.object_id, "string"),
    "summary": Column(Ticket.summary, "string"),
    "status": Column(Ticket.status_type, "string"),
    "statusCategory": Column(Ticket.status_category, "string"),
    "teamId": Column(Ticket.team_id, "string"),
    "itemTypeId": Column(Ticket.item_type_id, "string"),
    "submittedBy": Column(Ticket.submitted_by, "string"),
    "createdAt": Column(Ticket.created_at, "datetime"),
    "updatedAt": Column(Ticket.updated_at, "datetime"),
    # Written as the partial index's predicate, so that `EQ true` is answered from it.
    "hasAttachments": Column(literal_column(HAS_ATTACHMENTS_SQL), "flag"),
    # Merged tickets are left out of lists unless a condition names one of these two.
    "movedTo": Column(Ticket.moved_to, "string"),
    "merged": Column(Ticket.moved_to.is_not(None), "boolean"),
    # Routing and SLAs (ticketing.queues, ticketing.sla).
    "priority": Column(Ticket.priority, "string"),
    "assignee": Column(Ticket.assignee, "string"),
    "queueId": Column(Ticket.queue_id, "string"),
    "slaDueAt": Column(Ticket.sla_due_at, "datetime"),
}
MERGE_COLUMNS = frozenset({"movedTo", "merged"})
# Relation columns take display IDs and compare with EQ or IN only.
PARENT = "parent"
# `slaBreached EQ true`: some clock is in breach now, i.e. the moment the ticket is or will
# be in breach (kept in an indexed column when its clocks change) has come.
SLA_BREACHED = "slaBreached"


@dataclass(frozen=True)
class ListQuery:
    """A parsed list/count request."""

    where: ColumnElement[bool]
    order_by: tuple[Any, ...]
    top: int
    offset: int
    unfiltered: bool
    # The statuses the request selects when it filters on nothing else (else None).
    statuses_only: tuple[str, ...] | None
    # A search's pattern for the trigram index (ticketing.tickets.listing), or None.
    search_pattern: str | None = None


def _field_column(spec: FieldSpec) -> Column | None:
    value = Ticket.data[spec.id]
    if spec.type == "number":
        return Column(value.as_float(), "number")
    if spec.type == "checkbox":
        return Column(value.as_boolean(), "boolean")
    if spec.type in ("date", "datetime") or spec.type in TEXT_TYPES:
        return Column(value.as_string(), "string")
    return None  # multiselect: a list, not comparable with these operators


def tenant_fields(catalog: TenantCatalog) -> dict[str, FieldSpec]:
    """Every field UUID of the tenant's ticket types."""
    return {spec.id: spec for t in catalog.ticket_types.values() for spec in t.fields}


def parse_list_request(body: Any, catalog: TenantCatalog, *, paged: bool = True) -> ListQuery:
    """Parses a list/count body; raises InputValidationFailure naming every problem."""
    reasons = Reasons()
    if not isinstance(body, dict):
        reasons.add("body", "Request body must be a JSON object")
        reasons.raise_if_any()
        raise AssertionError
    for key in body:
        if key not in LIST_KEYS:
            reasons.add(key, f"Unknown key {key}")
    fields = tenant_fields(catalog)
    clauses: list[ColumnElement[bool]] = []

    search = body.get("search")
    if search not in (None, ""):
        if not isinstance(search, str) or len(search) > 200:
            reasons.add("search", "search must be a string of at most 200 characters")
        else:
            clauses.append(_search_clause(search, fields))

    top = _int(reasons, body, "top", DEFAULT_TOP, 1, MAX_TOP) if paged else MAX_TOP
    offset = _int(reasons, body, "offset", 0, 0, MAX_OFFSET) if paged else 0

    sort = body.get("sort", "createdAt") or "createdAt"
    if not isinstance(sort, str) or sort not in SORTS:
        reasons.add("sort", f"sort must be one of: {', '.join(SORTS)}")
        sort = "createdAt"
    order = body.get("searchOrder", "DESC") or "DESC"
    if not isinstance(order, str) or order.upper() not in ("ASC", "DESC"):
        reasons.add("searchOrder", "searchOrder must be ASC or DESC")
        order = "DESC"
    descending = order.upper() == "DESC"
    columns = (*SORTS[sort], Ticket.id_serial)
    order_by = tuple(c.desc() if descending else c.asc() for c in columns)

    asks_merged = False
    if body.get("filter") is not None:
        counter = [0]
        context = _Context(fields, catalog.tenant_id)
        clause = _node(reasons, body["filter"], "filter", context, 0, counter)
        if clause is not None:
            clauses.append(clause)
        asks_merged = context.asks_merged

    reasons.raise_if_any("Invalid list request")
    # Written as the list indexes' predicate is, so that they serve the default lists.
    listed = () if asks_merged else (Ticket.moved_to.is_(None),)
    return ListQuery(
        where=and_(true(), *listed, *clauses),
        order_by=order_by,
        top=top,
        offset=offset,
        unfiltered=not clauses,
        statuses_only=None if search not in (None, "") else _statuses_only(body.get("filter")),
        search_pattern=search_pattern(search) if isinstance(search, str) and search else None,
    )


def _statuses_only(node: Any) -> tuple[str, ...] | None:
    """For a filter that is just `status EQ x` or `status IN [...]` (maybe in one-item groups)."""
    while isinstance(node, dict) and "column" not in node:
        operands = node.get("operand")
        if not isinstance(operands, list) or len(operands) != 1:
            return None
        node = operands[0]
    if not isinstance(node, dict) or node.get("column") != "status":
        return None
    op = str(node.get("op")).upper()
    if op == "EQ":
        return (node["operand"],)
    if op == "IN":
        return tuple(dict.fromkeys(node["operand"]))
    return None


def _int(
    reasons: Reasons, body: dict[str, Any], key: str, default: int, low: int, high: int | None
) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        reasons.add(key, f"{key} must be a whole number {bound}")
        return default
    return value


def _search_clause(search: str, fields: dict[str, FieldSpec]) -> ColumnElement[bool]:
    targets = [Ticket.summary, Ticket.object_id]
    targets += [
        Ticket.data[spec.id].as_string()
        for spec in fields.values()
        if spec.type in ("text", "textarea", "richtext")
    ]
    pattern = _lowered(_containing(search))
    return or_(*(unicode_lower(t).like(pattern, escape="/") for t in targets))


def _containing(text: str) -> str:
    """The LIKE pattern (escaped with `/`) of values that contain `text`."""
    return "%" + LIKE_SPECIAL.sub(r"/\g<0>", text) + "%"


def _lowered(pattern: str) -> ColumnElement[str]:
    """A pattern lowered by the database, as the values it is matched against are: the
    database's lower case and Python's differ for some letters (a final sigma, a dotted
    capital I)."""
    return unicode_lower(literal(pattern, String()))


def search_pattern(search: str) -> str | None:
    """The LIKE pattern (escaped with `/`) that finds a search's candidates in the trigram
    index of migration 0013, or None when the index cannot answer for it: a needle with a
    character JSON text escapes. Not yet lowered: the database lowers it as it lowers what
    the index holds."""
    if JSON_ESCAPED.search(search):
        return None
    return _containing(search)


# What JSON text writes otherwise than as itself, and what LIKE reads as wildcards or its
# escape character.
JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')
LIKE_SPECIAL = re.compile(r"[/%_]")


@dataclass
class _Context:
    """What conditions are checked against, and what they asked for."""

    fields: dict[str, FieldSpec]
    tenant_id: uuid.UUID
    asks_merged: bool = False


def _node(
    reasons: Reasons,
    node: Any,
    path: str,
    context: _Context,
    depth: int,
    counter: list[int],
) -> ColumnElement[bool] | None:
    if not isinstance(node, dict):
        reasons.add(path, "A filter must be an object")
        return None
    if "column" in node:
        counter[0] += 1
        if counter[0] > MAX_CONDITIONS:
            reasons.add(path, f"A filter may have at most {MAX_CONDITIONS} conditions")
            return None
        return _condition(reasons, node, path, context)
    if depth >= MAX_DEPTH:
        reasons.add(path, f"Filters may nest at most {MAX_DEPTH} levels")
        return None
    op = node.get("op", "AND")
    operands = node.get("operand")
    # Each part is checked even when another is wrong, so every fault is reported at once.
    op_ok = isinstance(op, str) and op.upper() in ("AND", "OR")
    if not op_ok:
        reasons.add(f"{path}.op", "A filter group's op must be AND or OR")
    if not isinstance(operands, list):
        reasons.add(f"{path}.operand", "A filter group's operand must be a list")
        return None
    parts = [
        _node(reasons, item, f"{path}.operand[{i}]", context, depth + 1, counter)
        for i, item in enumerate(operands)
    ]
    if not op_ok:
        return None
    clauses = [p for p in parts if p is not None]
    if not clauses:
        return true() if op.upper() == "AND" else false()
    return and_(*clauses) if op.upper() == "AND" else or_(*clauses)


def _condition(
    reasons: Reasons, node: dict[str, Any], path: str, context: _Context
) -> ColumnElement[bool] | None:
    fields = context.fields
    name = node.get("column")
    if name == SLA_BREACHED:
        return _sla_breached(reasons, node, path)
    if name == PARENT:
        return _parent_condition(reasons, node, path, context.tenant_id)
    if isinstance(name, str) and name in MERGE_COLUMNS:
        context.asks_merged = True
    if (
        name == "merged"
        and node.get("op") in ("EQ", "NE")
        and isinstance(node.get("operand"), bool)
    ):
        # As the merged-tickets index's predicate is written.
        merged = (node["op"] == "EQ") == node["operand"]
        return Ticket.moved_to.is_not(None) if merged else Ticket.moved_to.is_(None)
    # Column, op and operand are each checked even when another is wrong, so every fault is
    # reported at once; the operand is checked as far as what is known allows.
    column = _column(reasons, name, f"{path}.column", fields)
    op = node.get("op")
    if not isinstance(op, str) or op.upper() not in OPERATORS:
        reasons.add(f"{path}.op", f"op must be one of: {', '.join(OPERATORS)}")
        return None
    op = op.upper()
    operand = node.get("operand")
    operand_path = f"{path}.operand"
    if column is not None and column.kind == "flag":
        if op not in ("EQ", "NE") or not isinstance(operand, bool):
            reasons.add(operand_path, f"{name} takes EQ or NE with true or false")
            return None
        wanted = operand == (op == "EQ")
        return column.expression if wanted else not_(column.expression)  # type: ignore[no-any-return]
    if op == "LIKE":
        if (column is not None and column.kind != "string") or not (
            isinstance(operand, str) and operand
        ):
            reasons.add(operand_path, "LIKE takes a non-empty string on a text column")
            return None
        return None if column is None else _like(column.expression, operand)
    if op == "IN":
        if not isinstance(operand, list) or not 1 <= len(operand) <= MAX_IN:
            reasons.add(operand_path, f"IN takes a list of 1 to {MAX_IN} values")
            return None
        if column is None:
            return None
        values = [_operand(column, v) for v in operand]
        if any(v is _BAD for v in values):
            reasons.add(operand_path, f"IN values must be {column.kind} values")
            return None
        return column.expression.in_(values)  # type: ignore[no-any-return]
    if column is None:
        return None
    value = _operand(column, operand)
    if value is _BAD:
        reasons.add(operand_path, f"operand must be a {column.kind} value")
        return None
    return _COMPARE[op](column.expression, value)


def _column(reasons: Reasons, name: Any, path: str, fields: dict[str, FieldSpec]) -> Column | None:
    """The column a condition names, or None with the reason added."""
    column = FIXED_COLUMNS.get(name) if isinstance(name, str) else None
    if column is None and isinstance(name, str) and name.lower() in fields:
        column = _field_column(fields[name.lower()])
        if column is None:
            reasons.add(path, f"Column {name} cannot be filtered")
            return None
    if column is None:
        reasons.add(path, f"Unknown column {name}")
    return column


def _sla_breached(reasons: Reasons, node: dict[str, Any], path: str) -> ColumnElement[bool] | None:
    op = node.get("op")
    operand = node.get("operand")
    if not isinstance(op, str) or op.upper() not in ("EQ", "NE") or not isinstance(operand, bool):
        reasons.add(f"{path}.operand", "slaBreached takes EQ or NE with true or false")
        return None
    breached = Ticket.sla_breach_at <= datetime.now(UTC)
    if operand == (op.upper() == "EQ"):
        return breached
    return or_(Ticket.sla_breach_at.is_(None), ~breached)


_BAD = object()


def _parent_condition(
    reasons: Reasons, node: dict[str, Any], path: str, tenant_id: uuid.UUID
) -> ColumnElement[bool] | None:
    """`parent EQ CTC-0001` (or IN a list): the children of those tickets, found through the
    relations' index on their target."""
    op = node.get("op")
    operand = node.get("operand")
    op = op.upper() if isinstance(op, str) else op
    parents = [operand] if op == "EQ" else operand if op == "IN" else None
    if parents is None:
        reasons.add(f"{path}.op", "parent takes EQ or IN")
        return None
    if (
        not isinstance(parents, list)
        or not 1 <= len(parents) <= MAX_IN
        or not all(isinstance(p, str) for p in parents)
    ):
        reasons.add(f"{path}.operand", f"parent takes a display ID (IN: a list of 1 to {MAX_IN})")
        return None
    return Ticket.id.in_(children_of(tenant_id, parents))


def _operand(column: Column, value: Any) -> Any:
    if column.kind == "string":
        return value if isinstance(value, str) else _BAD
    if column.kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return value if ok else _BAD
    if column.kind == "boolean":
        return value if isinstance(value, bool) else _BAD
    if not isinstance(value, str):
        return _BAD
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a date, or off the calendar once in UTC
        return _BAD


def _like(expression: Any, pattern: str) -> ColumnElement[bool]:
    lowered = unicode_lower(expression)
    if "%" in pattern:
        return lowered.like(_lowered(pattern))
    return lowered.like(_lowered(_containing(pattern)), escape="/")


_COMPARE: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "EQ": lambda c, v: c == v,
    "NE": lambda c, v: or_(c != v, c.is_(None)),
    "GT": lambda c, v: c > v,
    "GE": lambda c, v: c >= v,
    "LT": lambda c, v: c < v,
    "LE": lambda c, v: c <= v,
}
