"""POST /ticket/list and /ticket/count, black-box over HTTP (issue 3): paging, sorting,
filters on every fixed column and on field UUIDs, nested groups, search, errors naming the
problem, hostile operands as plain data, per-user visibility; and GET /tenant/meta.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support import (
    DESCRIPTION,
    F_CHECKBOX,
    F_DROPDOWN,
    F_EMAIL,
    F_MULTISELECT,
    F_NUMBER,
    F_TEXT,
    F_TEXTAREA,
    NEEDED_WITHIN,
    TITLE,
    Tenant,
    everything_body,
    seed_body,
)
from tests.ticket_api import (
    assert_error,
    call,
    created,
    get_ticket,
    patch,
    reason_of,
    updated,
    user_token,
)
from ticketing.config import APP_ROLE
from ticketing.models import Ticket
from ticketing.tickets.filters import search_pattern
from ticketing.tickets.repository import search_candidates

# --------------------------------------------------------------------------- helpers


def post(tenant: Tenant, what: str, body: Any, token: str | None = None) -> httpx.Response:
    return call(tenant, "POST", f"/ticket/{what}", json=body, token=token)


def page(tenant: Tenant, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    """A successful list answer; returns data ({value, count})."""
    response = post(tenant, "list", body, token)
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["success"] is True and envelope["status"] == 200, envelope
    assert set(envelope["data"]) == {"value", "count"}, envelope
    return envelope["data"]  # type: ignore[no-any-return]


def ids(tenant: Tenant, body: dict[str, Any], token: str | None = None) -> list[str]:
    return [t["object_id"] for t in page(tenant, {"top": 100, **body}, token)["value"]]


def count(tenant: Tenant, body: dict[str, Any], token: str | None = None) -> int:
    response = post(tenant, "count", body, token)
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope == {
        "success": True,
        "status": 200,
        "data": {"count": envelope["data"]["count"]},
    }
    return envelope["data"]["count"]  # type: ignore[no-any-return]


def matching(tenant: Tenant, body: dict[str, Any], token: str | None = None) -> set[str]:
    """The object IDs a list matches; list count, list length and /count must agree."""
    data = page(tenant, {"top": 100, **body}, token)
    found = {t["object_id"] for t in data["value"]}
    assert len(found) == len(data["value"]) == data["count"], data
    assert count(tenant, body, token) == data["count"]
    return found


def where(column: str, op: str, operand: Any) -> dict[str, Any]:
    """A filter of one condition."""
    return {"filter": {"op": "AND", "operand": [{"column": column, "op": op, "operand": operand}]}}


def create16910(
    tenant: Tenant, summary: str, token: str | None = None, team: str = "james", **fields: Any
) -> dict[str, Any]:
    body = seed_body(summary=summary, ticketBody={"offerId": "23629", TITLE: summary, **fields})
    return created(tenant.create(body, team=team, token=token))


def create20000(tenant: Tenant, summary: str, **fields: Any) -> dict[str, Any]:
    body = everything_body(**fields)
    body["summary"] = summary
    return created(tenant.create(body, item_type="20000", catalog_type="agent"))


def pause() -> None:
    """Keeps millisecond timestamps of consecutive writes apart."""
    time.sleep(0.005)


# --------------------------------------------------------------------------- paging


def test_paging_with_top_and_offset(tenant: Tenant) -> None:
    for n in range(7):
        create16910(tenant, f"ticket {n}")
        pause()
    every = ids(tenant, {"sort": "createdAt", "searchOrder": "ASC"})
    assert every == [f"CTC-{n:04d}" for n in range(1, 8)]

    seen: list[str] = []
    for offset, size in [(0, 3), (3, 3), (6, 1)]:
        data = page(tenant, {"top": 3, "offset": offset, "sort": "createdAt", "searchOrder": "ASC"})
        assert data["count"] == 7
        assert len(data["value"]) == size
        seen += [t["object_id"] for t in data["value"]]
    assert seen == every
    beyond = page(tenant, {"top": 3, "offset": 50})
    assert beyond == {"value": [], "count": 7}
    assert page(tenant, {"top": 100})["count"] == 7
    assert count(tenant, {}) == 7


def test_list_items_have_the_get_shape(tenant: Tenant) -> None:
    create16910(tenant, "one")
    create20000(tenant, "two", **{F_NUMBER: 3})
    items = page(tenant, {})["value"]
    assert sorted(item["object_id"] for item in items) == ["ALL-0001", "CTC-0001"], items
    for item in items:
        assert item == get_ticket(tenant, item["object_id"])


def test_default_list_is_newest_first(tenant: Tenant) -> None:
    for n in range(3):
        create16910(tenant, f"t{n}")
        pause()
    assert ids(tenant, {}) == ["CTC-0003", "CTC-0002", "CTC-0001"]
    response = tenant.client.post(
        f"{tenant.base_url}/api/v2/ticketing/ticket/list",
        params={"type": "template", "module": "ticketing"},
        headers=tenant.headers(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["count"] == 3


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("top", 0),
        ("top", 101),
        ("top", -1),
        ("top", "10"),
        ("top", 2.5),
        ("top", True),
        ("offset", -1),
        ("offset", "0"),
        ("sort", "priority"),
        ("sort", "created_at"),
        ("searchOrder", "UP"),
        ("searchOrder", 1),
        ("search", 12),
        ("where", {"status": "Open"}),
    ],
)
def test_bad_paging_sort_and_keys_are_400(tenant: Tenant, key: str, value: Any) -> None:
    create16910(tenant, "one")
    reason = reason_of(post(tenant, "list", {key: value}))
    assert key in reason, reason
    if key != "top" and key != "offset":
        assert key in reason_of(post(tenant, "count", {key: value}))


def test_top_bounds(tenant: Tenant) -> None:
    create16910(tenant, "one")
    assert page(tenant, {"top": 1})["count"] == 1
    assert page(tenant, {"top": 100})["count"] == 1


@pytest.mark.parametrize("content", [b"[]", b"not json", b'"filter"'])
def test_body_must_be_a_json_object(tenant: Tenant, content: bytes) -> None:
    for what in ("list", "count"):
        response = tenant.client.post(
            f"{tenant.base_url}/api/v2/ticketing/ticket/{what}",
            params={"type": "template", "module": "ticketing"},
            headers=tenant.headers(),
            content=content,
        )
        reason_of(response)


# --------------------------------------------------------------------------- sorting


@pytest.fixture
def sortable(tenant: Tenant) -> Tenant:
    """Four tickets whose orders differ for every sort key.

    created: CTC-0001, CTC-0002, CTC-9999, CTC-10000 (display numbers bumped in between)
    summary: delta, alpha, charlie, bravo
    status:  Resolved, Closed, Open, In Progress
    updated: CTC-0002, CTC-10000, CTC-0001, CTC-9999
    """
    create16910(tenant, "delta")
    pause()
    create16910(tenant, "alpha")
    pause()
    tenant.db.fetch(
        "UPDATE display_id_counters SET last_value = 9998 WHERE tenant_id = :t AND prefix = 'CTC'",
        t=uuid.UUID(tenant.id),
    )
    assert create16910(tenant, "charlie")["object_id"] == "CTC-9999"
    pause()
    assert create16910(tenant, "bravo")["object_id"] == "CTC-10000"
    for object_id, change in [
        ("CTC-0002", {"status": "Closed"}),
        ("CTC-10000", {"status": "In Progress"}),
        ("CTC-0001", {"status": "Resolved"}),
        ("CTC-9999", {"ticketBody": {TITLE: "touched"}}),
    ]:
        pause()
        etag = get_ticket(tenant, object_id)["etag"]
        updated(patch(tenant, object_id, {"etag": etag, **change}))
    return tenant


ASCENDING = {
    "createdAt": ["CTC-0001", "CTC-0002", "CTC-9999", "CTC-10000"],
    "objectId": ["CTC-0001", "CTC-0002", "CTC-9999", "CTC-10000"],
    "summary": ["CTC-0002", "CTC-10000", "CTC-9999", "CTC-0001"],
    "status": ["CTC-0002", "CTC-10000", "CTC-9999", "CTC-0001"],
    "updatedAt": ["CTC-0002", "CTC-10000", "CTC-0001", "CTC-9999"],
}


@pytest.mark.parametrize("order", ["ASC", "DESC"])
@pytest.mark.parametrize("sort", list(ASCENDING))
def test_every_sort_key_both_ways(sortable: Tenant, sort: str, order: str) -> None:
    expected = ASCENDING[sort] if order == "ASC" else ASCENDING[sort][::-1]
    assert ids(sortable, {"sort": sort, "searchOrder": order}) == expected
    # Paging walks the same order.
    pages = [
        t["object_id"]
        for offset in (0, 2)
        for t in page(sortable, {"sort": sort, "searchOrder": order, "top": 2, "offset": offset})[
            "value"
        ]
    ]
    assert pages == expected


def test_object_id_sorts_numerically(sortable: Tenant) -> None:
    assert ids(sortable, {"sort": "objectId", "searchOrder": "DESC"})[:2] == [
        "CTC-10000",
        "CTC-9999",
    ]


# --------------------------------------------------------------------------- filters


@pytest.fixture
def catalogue(tenant: Tenant) -> dict[str, Any]:
    """Six tickets over two item types, two teams and two submitters, timestamps apart."""
    alice = user_token(tenant, "alice")
    makers = [
        lambda: create16910(
            tenant, "Printer on fire", **{TITLE: "Printer", NEEDED_WITHIN: "<1week"}
        ),
        lambda: create16910(
            tenant,
            "New LAPTOP please",
            token=alice,
            **{
                TITLE: "Laptop request",
                DESCRIPTION: "<p>Battery is DEAD</p>",
                NEEDED_WITHIN: "<2week",
            },
        ),
        lambda: create16910(
            tenant,
            "Expense report",
            team="finance",
            **{TITLE: "Reimbursement", NEEDED_WITHIN: "<1month"},
        ),
        lambda: create20000(
            tenant, "Everything small", **{F_TEXT: "Zebra", F_NUMBER: 5, F_CHECKBOX: True}
        ),
        lambda: create20000(
            tenant, "Everything big", **{F_TEXT: "yak", F_NUMBER: 50, F_CHECKBOX: False}
        ),
        lambda: create20000(tenant, "Everything none", **{F_TEXT: "xeno"}),
    ]
    tickets = []
    for make in makers:
        tickets.append(make())
        pause()  # creation times strictly apart: they are compared below
    expense = get_ticket(tenant, "CTC-0003")
    updated(patch(tenant, "CTC-0003", {"etag": expense["etag"], "status": "In Progress"}))
    return {"tenant": tenant, "tickets": tickets, "alice": alice}


CTC = {"CTC-0001", "CTC-0002", "CTC-0003"}
ALL = {"ALL-0001", "ALL-0002", "ALL-0003"}


@pytest.mark.parametrize(
    ("column", "op", "operand", "expected"),
    [
        ("objectId", "EQ", "CTC-0002", {"CTC-0002"}),
        ("objectId", "IN", ["CTC-0001", "ALL-0002", "CTC-9999"], {"CTC-0001", "ALL-0002"}),
        ("objectId", "NE", "CTC-0002", (CTC | ALL) - {"CTC-0002"}),
        ("summary", "LIKE", "laptop", {"CTC-0002"}),
        ("summary", "LIKE", "EVERYTHING", ALL),
        ("summary", "EQ", "Expense report", {"CTC-0003"}),
        ("status", "EQ", "In Progress", {"CTC-0003"}),
        ("status", "EQ", "Triaged", ALL),
        ("status", "NE", "Open", {"CTC-0003"} | ALL),
        ("status", "IN", ["Open", "In Progress"], CTC),
        ("statusCategory", "EQ", "To-do Category", {"CTC-0001", "CTC-0002"}),
        ("statusCategory", "EQ", "In-Progress Category", {"CTC-0003"} | ALL),
        ("teamId", "EQ", "finance", {"CTC-0003"}),
        ("teamId", "NE", "finance", (CTC | ALL) - {"CTC-0003"}),
        ("itemTypeId", "EQ", "20000", ALL),
        ("itemTypeId", "IN", ["16910", "30000"], CTC),
        ("submittedBy", "EQ", "alice@example.com", {"CTC-0002"}),
        ("submittedBy", "LIKE", "ALICE", {"CTC-0002"}),
        (TITLE, "LIKE", "LAPTOP", {"CTC-0002"}),
        (TITLE, "EQ", "Printer", {"CTC-0001"}),
        (F_TEXT, "LIKE", "zeb", {"ALL-0001"}),
        (F_NUMBER, "GT", 10, {"ALL-0002"}),
        (F_NUMBER, "GE", 5, {"ALL-0001", "ALL-0002"}),
        (F_NUMBER, "LT", 50, {"ALL-0001"}),
        (F_NUMBER, "LE", 50.0, {"ALL-0001", "ALL-0002"}),
        (F_NUMBER, "EQ", 5, {"ALL-0001"}),
        (F_NUMBER, "IN", [5, 6, 7], {"ALL-0001"}),
        (F_CHECKBOX, "EQ", True, {"ALL-0001"}),
        (F_CHECKBOX, "EQ", False, {"ALL-0002", "ALL-0003"}),
        (NEEDED_WITHIN, "IN", ["<1week", "<2week"], {"CTC-0001", "CTC-0002"}),
        (NEEDED_WITHIN, "EQ", "<1month", {"CTC-0003"}),
    ],
)
def test_filter_on_a_column(
    catalogue: dict[str, Any], column: str, op: str, operand: Any, expected: set[str]
) -> None:
    assert matching(catalogue["tenant"], where(column, op, operand)) == expected


def test_ne_on_a_field_within_its_item_type(catalogue: dict[str, Any]) -> None:
    body = {
        "filter": {
            "op": "AND",
            "operand": [
                {"column": "itemTypeId", "op": "EQ", "operand": "16910"},
                {"column": NEEDED_WITHIN, "op": "NE", "operand": "<1month"},
            ],
        }
    }
    assert matching(catalogue["tenant"], body) == {"CTC-0001", "CTC-0002"}


def _shift(stamp: str, hours: int) -> str:
    """The same instant written with a +hh:00 offset."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment.astimezone(timezone(timedelta(hours=hours))).isoformat(timespec="milliseconds")


def test_created_at_ranges(catalogue: dict[str, Any]) -> None:
    tenant = catalogue["tenant"]
    stamps = [t["created_at"] for t in catalogue["tickets"]]
    order = [t["object_id"] for t in catalogue["tickets"]]
    assert stamps == sorted(stamps)

    def between(low: str, high: str) -> dict[str, Any]:
        return {
            "filter": {
                "op": "AND",
                "operand": [
                    {"column": "createdAt", "op": "GE", "operand": low},
                    {"column": "createdAt", "op": "LE", "operand": high},
                ],
            }
        }

    assert matching(tenant, between(stamps[1], stamps[3])) == set(order[1:4])
    # The same instants with a UTC offset select the same tickets.
    assert matching(tenant, between(_shift(stamps[1], 2), _shift(stamps[3], -5))) == set(order[1:4])
    assert matching(tenant, where("createdAt", "GT", stamps[4])) == {order[5]}
    assert matching(tenant, where("createdAt", "LT", stamps[0])) == set()
    assert matching(tenant, where("createdAt", "EQ", stamps[2])) == {order[2]}
    assert matching(tenant, where("createdAt", "GE", "2000-01-01")) == set(order)
    assert matching(tenant, where("createdAt", "LT", "2000-01-01T00:00:00Z")) == set()
    # Only CTC-0003 was changed after the last creation.
    assert matching(tenant, where("updatedAt", "GT", stamps[5])) == {"CTC-0003"}


def test_nested_and_or_groups(catalogue: dict[str, Any]) -> None:
    tenant = catalogue["tenant"]
    body = {
        "filter": {
            "op": "OR",
            "operand": [
                {
                    "op": "AND",
                    "operand": [
                        {"id": "a", "column": "itemTypeId", "op": "EQ", "operand": "20000"},
                        {"id": "b", "column": F_NUMBER, "op": "GT", "operand": 10},
                    ],
                },
                {
                    "op": "AND",
                    "operand": [
                        {"id": "c", "column": "teamId", "op": "EQ", "operand": "finance"},
                        {
                            "op": "OR",
                            "operand": [
                                {"column": "status", "op": "EQ", "operand": "Closed"},
                                {"column": "status", "op": "EQ", "operand": "In Progress"},
                            ],
                        },
                    ],
                },
            ],
        }
    }
    assert matching(tenant, body) == {"ALL-0002", "CTC-0003"}
    body["filter"]["op"] = "AND"
    assert matching(tenant, body) == set()
    # A top-level AND of the search and a filter.
    body = {"search": "everything", **where(F_CHECKBOX, "EQ", False)}
    assert matching(tenant, body) == {"ALL-0002", "ALL-0003"}


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("laptop", {"CTC-0002"}),  # summary, other case
        ("LAPTOP REQ", {"CTC-0002"}),  # text field
        ("battery is dead", {"CTC-0002"}),  # rich text field
        ("reimburse", {"CTC-0003"}),  # text field only
        ("ZEBRA", {"ALL-0001"}),  # text field of another item type
        ("printer", {"CTC-0001"}),
        ("everything", ALL),
        ("no such words", set()),
        ("%", set()),  # wildcards are literal
        ("_", set()),
    ],
)
def test_search(catalogue: dict[str, Any], search: str, expected: set[str]) -> None:
    assert matching(catalogue["tenant"], {"search": search}) == expected


def test_empty_search_matches_everything(catalogue: dict[str, Any]) -> None:
    assert matching(catalogue["tenant"], {"search": ""}) == CTC | ALL


def test_search_matches_the_same_tickets_through_the_trigram_index(tenant: Tenant) -> None:
    """On PostgreSQL a search first asks the trigram index (migration 0013) for candidates:
    values JSON writes escaped, LIKE's escape character, values of fields the search does
    not look at and the keys the service adds to `data` give the same answers as the scan."""
    quoted = create20000(tenant, "Quoted", **{F_TEXT: 'said "hi\\yo"', F_TEXTAREA: "one\ntwo\tx"})[
        "object_id"
    ]
    slashed = create16910(tenant, "Share a/b path 100%_done", **{TITLE: "Mount"})["object_id"]
    other = create20000(
        tenant, "Plain", **{F_TEXT: "nothing", F_DROPDOWN: "medium", F_EMAIL: "zed@example.com"}
    )["object_id"]
    expected = {
        'said "hi': {quoted},  # a double quote: asks no index
        'hi\\yo"': {quoted},  # a backslash
        "said": {quoted},  # through the index: the value's JSON text has it too
        "one\ntwo": {quoted},  # a newline: asks no index
        "two\tx": {quoted},
        "one two": set(),  # the newline is no space
        "a/b": {slashed},  # LIKE's escape character, literal
        "/": {slashed},
        "100%_d": {slashed},
        "mount": {slashed},
        "plain": {other},
        other.lower(): {other},  # the display ID
        "medium": set(),  # a dropdown's value is not searched
        "zed@example": set(),  # nor an email field's
        "offerid": set(),  # nor the keys and values the service adds
        "23630": set(),
        "lastupdatedby": set(),
        "example.com": set(),
        "\x1f": set(),  # the index's separator is no ticket's text (and asks no index)
    }
    for needle, found in expected.items():
        assert matching(tenant, {"search": needle}) == found, needle
        assert matching(tenant, {"search": needle.upper()}) == found, needle

    # The index follows changes: the old text is no longer found, the new one is.
    before = get_ticket(tenant, other)
    updated(patch(tenant, other, {"etag": before["etag"], "ticketBody": {F_TEXT: "quokka"}}))
    assert matching(tenant, {"search": "nothing"}) == set()
    assert matching(tenant, {"search": "quokka"}) == {other}


def test_search_and_like_ignore_the_case_of_every_letter(tenant: Tenant) -> None:
    """Capitals beyond ASCII are found in either case, by the search and by LIKE, on both
    databases (SQLite's own lower() changes ASCII letters only)."""
    cafe = create16910(tenant, "Café MÜNCHEN report", **{TITLE: "ÉCOLE"})["object_id"]
    greek = create16910(tenant, "ΣΊΣΥΦΟΣ rolls")["object_id"]
    create16910(tenant, "Muenchen, not the same")
    for needle in ("MÜNCHEN", "München", "münchen", "ÜNCH", "ÉCOLE", "école", "CAFÉ", "café"):
        assert matching(tenant, {"search": needle}) == {cafe}, needle
    assert matching(tenant, {"search": "ΣΊΣΥΦΟΣ"}) == {greek}
    assert matching(tenant, {"search": "σίσυ"}) == {greek}
    assert matching(tenant, where("summary", "LIKE", "münchen")) == {cafe}
    assert matching(tenant, where("summary", "LIKE", "%MÜNCHEN%")) == {cafe}
    assert matching(tenant, where("summary", "LIKE", "café m%")) == {cafe}
    assert matching(tenant, where(TITLE, "LIKE", "écol%")) == {cafe}
    assert matching(tenant, where("summary", "LIKE", "%ÜNCHEN")) == set()  # anchored


def test_a_search_is_answered_from_the_trigram_index_on_postgresql(tenant: Tenant) -> None:
    """With thousands of tickets in the tenant, a selective search's candidates come from
    ix_tickets_search, asked as the service's role under row-level security, for the bound
    tenant only; a common needle (more candidates than the limit) gets none, and is answered
    by its own conditions; SQLite asks no index. (The thousands are written, asked and
    rolled back.)"""
    wanted = create16910(tenant, "Laptop 4711")["id"]
    pattern = search_pattern("Laptop 4711")
    assert pattern == "%Laptop 4711%"  # lowered by the database, as the index's text is
    assert search_pattern('say "hi"') is None  # JSON escapes it: no index

    async def ask(engine: Any) -> tuple[Any, ...]:
        async with engine.connect() as connection:  # never committed
            session = AsyncSession(bind=connection)
            if tenant.db.name == "sqlite":
                return (await search_candidates(session, pattern=pattern, limit=10),)
            await connection.exec_driver_sql(FILLER, (uuid.UUID(tenant.id),))
            # As a vacuum would: the new entries out of the index's pending list.
            clean = "SELECT gin_clean_pending_list('ix_tickets_search')"
            await connection.exec_driver_sql(clean)
            await connection.exec_driver_sql("ANALYZE tickets")
            await connection.exec_driver_sql(f"SET LOCAL ROLE {APP_ROLE}")
            scans = "SELECT pg_stat_get_xact_numscans('ix_tickets_search'::regclass)"
            before = (await connection.exec_driver_sql(scans)).scalar_one()
            bind = "SELECT set_config('ticketing.tenant_id', $1, true)"
            await connection.exec_driver_sql(bind, (tenant.id,))
            rare = await search_candidates(session, pattern=pattern, limit=10)
            after = (await connection.exec_driver_sql(scans)).scalar_one()
            common = await search_candidates(session, pattern="%filler ticket%", limit=10)
            few = await search_candidates(session, pattern="%filler ticket 4999%", limit=10)
            await connection.exec_driver_sql(bind, (str(uuid.uuid4()),))
            other_tenant = await search_candidates(session, pattern=pattern, limit=10)
            await connection.rollback()
            return rare, after - before, common, len(few or []), other_tenant

    found = tenant.db.run(ask)
    if tenant.db.name == "sqlite":
        assert found == (None,)
        return
    rare, scans, common, few, other_tenant = found
    assert rare == [uuid.UUID(wanted)]
    assert scans >= 1
    assert common is None
    assert few == 1
    assert other_tenant == []


# 5,000 copies of the tenant's ticket with other IDs and texts.
FILLED = {
    "id": "gen_random_uuid()",
    "id_serial": "1000000 + g",
    "object_id": "'FIL-' || g",
    "display_prefix": "'FIL'",
    "display_number": "g",
    "summary": "'Filler ticket ' || g",
    "data": "jsonb_build_object('note', 'Printer toner ' || g)",
}
FILLER = f"""
INSERT INTO tickets ({", ".join(c.name for c in Ticket.__table__.columns)})
SELECT {", ".join(FILLED.get(c.name, f"t.{c.name}") for c in Ticket.__table__.columns)}
FROM tickets AS t, generate_series(1, 5000) AS g
WHERE t.tenant_id = $1
"""


@pytest.mark.parametrize(
    ("filter_", "key", "word"),
    [
        (
            {"op": "AND", "operand": [{"column": "severity", "op": "EQ", "operand": "x"}]},
            "filter.operand[0].column",
            "severity",
        ),
        (
            {"op": "AND", "operand": [{"column": str(uuid.uuid4()), "op": "EQ", "operand": "x"}]},
            "filter.operand[0].column",
            "Unknown column",
        ),
        (
            {"op": "AND", "operand": [{"column": "status", "op": "BETWEEN", "operand": "x"}]},
            "filter.operand[0].op",
            "EQ",
        ),
        (
            {"op": "AND", "operand": [{"column": "status", "operand": "x"}]},
            "filter.operand[0].op",
            "op",
        ),
        ({"op": "XOR", "operand": []}, "filter.op", "AND or OR"),
        ({"op": "AND", "operand": {"column": "status"}}, "filter.operand", "list"),
        ("status eq Open", "filter", "object"),
        ({"op": "AND", "operand": ["status"]}, "filter.operand[0]", "object"),
        (
            {"op": "AND", "operand": [{"column": F_NUMBER, "op": "LIKE", "operand": "5"}]},
            "filter.operand[0].operand",
            "LIKE",
        ),
        (
            {"op": "AND", "operand": [{"column": F_NUMBER, "op": "GT", "operand": "10"}]},
            "filter.operand[0].operand",
            "number",
        ),
        (
            {"op": "AND", "operand": [{"column": F_CHECKBOX, "op": "EQ", "operand": "true"}]},
            "filter.operand[0].operand",
            "boolean",
        ),
        (
            {"op": "AND", "operand": [{"column": "createdAt", "op": "GE", "operand": "yesterday"}]},
            "filter.operand[0].operand",
            "datetime",
        ),
        (
            {"op": "AND", "operand": [{"column": "status", "op": "IN", "operand": []}]},
            "filter.operand[0].operand",
            "IN",
        ),
        (
            {"op": "AND", "operand": [{"column": "status", "op": "IN", "operand": "Open"}]},
            "filter.operand[0].operand",
            "IN",
        ),
        (
            {"op": "AND", "operand": [{"column": "status", "op": "EQ", "operand": 3}]},
            "filter.operand[0].operand",
            "string",
        ),
        (
            {"op": "AND", "operand": [{"column": F_MULTISELECT, "op": "EQ", "operand": "low"}]},
            "filter.operand[0].column",
            "cannot be filtered",
        ),
        (
            {
                "op": "OR",
                "operand": [
                    {"column": "status", "op": "EQ", "operand": "Open"},
                    {"op": "AND", "operand": [{"column": "nope", "op": "EQ", "operand": "x"}]},
                ],
            },
            "filter.operand[1].operand[0].column",
            "nope",
        ),
    ],
)
def test_malformed_filter_is_400_naming_the_problem(
    tenant: Tenant, filter_: Any, key: str, word: str
) -> None:
    create16910(tenant, "one")
    for what in ("list", "count"):
        reason = reason_of(post(tenant, what, {"filter": filter_}))
        assert key in reason, reason
        assert any(word in message for message in reason[key]), reason


def test_every_filter_problem_is_listed_at_once(tenant: Tenant) -> None:
    body = {
        "top": 0,
        "sort": "nope",
        "filter": {
            "op": "AND",
            "operand": [
                {"column": "severity", "op": "EQ", "operand": "x"},
                {"column": "status", "op": "SOUNDS_LIKE", "operand": "x"},
            ],
        },
    }
    reason = reason_of(post(tenant, "list", body))
    assert {"top", "sort", "filter.operand[0].column", "filter.operand[1].op"} <= set(reason)


def test_a_condition_with_several_faults_reports_each_on_list_and_count(tenant: Tenant) -> None:
    create16910(tenant, "one")
    filter_ = {
        "op": "XOR",
        "operand": [
            {"column": "severity", "op": "SOUNDS_LIKE", "operand": "x"},
            {"column": "nope", "op": "IN", "operand": "not a list"},
            {"column": "nada", "op": "LIKE", "operand": ""},
        ],
    }
    for what in ("list", "count"):
        reason = reason_of(post(tenant, what, {"filter": filter_}))
        assert set(reason) == {
            "filter.op",
            "filter.operand[0].column",
            "filter.operand[0].op",
            "filter.operand[1].column",
            "filter.operand[1].operand",
            "filter.operand[2].column",
            "filter.operand[2].operand",
        }, reason
        assert any("severity" in m for m in reason["filter.operand[0].column"]), reason
        assert any("EQ" in m for m in reason["filter.operand[0].op"]), reason
        assert any("IN" in m for m in reason["filter.operand[1].operand"]), reason
        assert any("LIKE" in m for m in reason["filter.operand[2].operand"]), reason


# --------------------------------------------------------------------------- hostile operands


def test_sql_looking_operands_are_just_data(catalogue: dict[str, Any]) -> None:
    tenant = catalogue["tenant"]
    bobby = create16910(tenant, "Robert'); DROP TABLE tickets;--")
    hostile = [
        where("summary", "EQ", "' OR '1'='1"),
        where("summary", "LIKE", "' OR 1=1 --"),
        where("objectId", "IN", ["CTC-0001') OR ('1'='1"]),
        where(TITLE, "EQ", "x' OR data IS NOT NULL --"),
        where("createdAt", "GE", "2000-01-01' OR '1'='1"),
        {"search": "' OR 1=1; DELETE FROM tickets; --"},
        {"search": "\\' UNION SELECT * FROM tenants --"},
    ]
    for body in hostile:
        response = post(tenant, "list", body)
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            assert response.json()["data"] == {"value": [], "count": 0}, body
        else:
            reason_of(response)

    # Hostile text stored in a ticket is found as text, exactly.
    assert matching(tenant, where("summary", "EQ", bobby["summary"])) == {bobby["object_id"]}
    assert matching(tenant, {"search": "'); drop table"}) == {bobby["object_id"]}

    # Hostile column names, sort keys and orders are refused, not executed.
    for body in (
        where("summary = summary OR 1=1 --", "EQ", "x"),
        where("summary", "EQ; DROP TABLE tickets", "x"),
        {"sort": "createdAt; DROP TABLE tickets"},
        {"searchOrder": "ASC; DELETE FROM tickets"},
    ):
        reason_of(post(tenant, "list", body))
    assert count(tenant, {}) == 7
    assert tenant.ticket_count() == 7


@pytest.mark.parametrize(
    "body",
    [
        {"sort": ["createdAt"]},
        {"sort": {"column": "createdAt"}},
        {"offset": 2**63},
        {"offset": 10**30},
        {"top": 10**30},
        where(F_NUMBER, "GT", 10**30),
        where(F_NUMBER, "IN", [2**64, 1]),
        where(F_NUMBER, "LT", -1e308),
        where("createdAt", "GE", "9999-12-31T23:59:59-05:00"),
        where("createdAt", "LE", "0001-01-01T00:00:00+05:00"),
        where("updatedAt", "GT", "9999-12-31T23:59:59.999999Z"),
        where("summary", "EQ", "x" * 100_000),
        {"search": "\u0000"},
    ],
    ids=[
        "sort-list",
        "sort-object",
        "offset-2^63",
        "offset-10^30",
        "top-10^30",
        "number-gt-10^30",
        "number-in-2^64",
        "number-lt-minus-1e308",
        "createdAt-year-9999-minus-5h",
        "createdAt-year-1-plus-5h",
        "updatedAt-max",
        "summary-100k",
        "search-nul",
    ],
)
def test_odd_but_well_formed_bodies_never_500(tenant: Tenant, body: dict[str, Any]) -> None:
    create20000(tenant, "one", **{F_NUMBER: 5})
    for what in ("list", "count"):
        response = post(tenant, what, body)
        assert response.status_code in (200, 400), (what, response.status_code, response.text)
        if response.status_code == 400:
            reason_of(response)
        else:
            assert response.json()["success"] is True


# --------------------------------------------------------------------------- visibility


def test_ticket_user_lists_and_counts_only_their_own(catalogue: dict[str, Any]) -> None:
    tenant, alice = catalogue["tenant"], catalogue["alice"]
    assert matching(tenant, {}, alice) == {"CTC-0002"}
    assert matching(tenant, where("itemTypeId", "EQ", "20000"), alice) == set()
    assert matching(tenant, {"search": "everything"}, alice) == set()
    assert matching(tenant, where("summary", "LIKE", "e"), alice) == {"CTC-0002"}
    bob = user_token(tenant, "bob")
    assert matching(tenant, {}, bob) == set()
    # Agents, admins and read-only agents see everything.
    for token in (
        tenant.token(roles=["ticket_agent"]),
        tenant.token(roles=["tenant_admin"]),
        tenant.token(scope="openid tickets:read"),
    ):
        assert matching(tenant, {}, token) == CTC | ALL


def test_list_needs_a_read_scope_and_a_ticket_role(tenant: Tenant) -> None:
    create16910(tenant, "one")
    for token in (tenant.token(scope="openid"), tenant.token(roles=["uma_authorization"])):
        for what in ("list", "count"):
            assert_error(post(tenant, what, {}, token), 401, "USER_PERMISSION_FAILURE")


def test_list_needs_type_and_module(tenant: Tenant) -> None:
    for what in ("list", "count"):
        response = tenant.client.post(
            f"{tenant.base_url}/api/v2/ticketing/ticket/{what}",
            params={"module": "ticketing"},
            headers=tenant.headers(),
            json={},
        )
        assert "type" in reason_of(response)


# --------------------------------------------------------------------------- tenant meta


def test_tenant_meta(tenant: Tenant) -> None:
    for token in (None, user_token(tenant), tenant.token(scope="openid tickets:read")):
        response = tenant.get("/tenant/meta", token=token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True and body["status"] == 200
        data = body["data"]
        statuses = {s["name"]: s["category"] for s in data["statuses"]}
        assert statuses == {
            "Open": "To-do Category",
            "In Progress": "In-Progress Category",
            "Resolved": "Done Category",
            "Closed": "Done Category",
            "New": "To-do Category",
            "Triaged": "In-Progress Category",
        }
        assert set(data["statusCategories"]) == {
            "To-do Category",
            "In-Progress Category",
            "Done Category",
        }
        assert {(t["id"], t["name"]) for t in data["ticketTypes"]} == {
            ("16910", "Hardware request"),
            ("20000", "Everything"),
            ("30000", "Admin only"),
        }
        assert {(t["id"], t["name"]) for t in data["teams"]} == {
            ("james", "James"),
            ("finance", "Finance"),
        }


def test_tenant_meta_is_per_tenant(make_tenant: Any) -> None:
    other = make_tenant(
        teams=[{"id": "ops", "name": "Ops"}],
        ticket_types=[
            {
                "id": "1",
                "name": "Incident",
                "workflow": {
                    "statuses": [
                        {"name": "Reported", "category": "To-do Category"},
                        {"name": "Fixed", "category": "Done Category"},
                    ]
                },
            }
        ],
        offers=[{"id": "9", "name": "Report", "item_type": "1"}],
    )
    data = other.get("/tenant/meta").json()["data"]
    assert data["tenantId"] == other.id
    assert data["statuses"] == [
        {"name": "Reported", "category": "To-do Category"},
        {"name": "Fixed", "category": "Done Category"},
    ]
    assert data["ticketTypes"] == [{"id": "1", "name": "Incident"}]
    assert data["teams"] == [{"id": "ops", "name": "Ops"}]


def test_tenant_meta_errors(tenant: Tenant) -> None:
    assert "type" in reason_of(tenant.get("/tenant/meta", params={"module": "ticketing"}))
    response = tenant.get("/tenant/meta", token="nope")
    assert_error(response, 401, "AUTHENTICATION_FAILURE")
