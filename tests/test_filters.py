"""Unit tests of the list/count request parser (ticketing.tickets.filters.parse_list_request):
paging, sort, search, the nested filter, errors that name the problem, limits on depth and
size, and operands that reach SQL only as bound parameters.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from ticketing.catalog.fields import FieldSpec
from ticketing.catalog.service import Status, TenantCatalog, TicketTypeSpec
from ticketing.kit.errors import InputValidationFailure
from ticketing.tickets import filters
from ticketing.tickets.filters import parse_list_request

F_TEXT = "00000000-0000-4000-8000-000000000001"
F_NUMBER = "00000000-0000-4000-8000-000000000004"
F_DATE = "00000000-0000-4000-8000-000000000005"
F_DROPDOWN = "00000000-0000-4000-8000-000000000007"
F_MULTISELECT = "00000000-0000-4000-8000-000000000009"
F_CHECKBOX = "00000000-0000-4000-8000-00000000000a"
F_OTHER_TYPE = "00000000-0000-4000-8000-0000000000b1"
OPTIONS = ({"value": "low"}, {"value": "high"})


def _spec(field_id: str, type_: str, options: tuple[dict[str, Any], ...] = ()) -> FieldSpec:
    return FieldSpec(
        id=field_id,
        name=type_,
        label=type_.title(),
        type=type_,
        required=False,
        default_value=None,
        options=options,
    )


def _type(type_id: str, *fields: FieldSpec) -> TicketTypeSpec:
    return TicketTypeSpec(
        id=type_id,
        name=f"Type {type_id}",
        prefix="CTC",
        own_prefix=None,
        create_roles=frozenset({"ticket_agent"}),
        workflow={"statuses": [{"name": "Open", "category": "To-do Category"}]},
        initial_status=Status("Open", "To-do Category"),
        fields=fields,
        fields_by_id={f.id: f for f in fields},
        defaults=(),
    )


CATALOG = TenantCatalog(
    tenant_id=uuid.uuid4(),
    name="Tenant",
    realm="realm",
    prefix="CTC",
    version=1,
    teams={},
    ticket_types={
        "20000": _type(
            "20000",
            _spec(F_TEXT, "text"),
            _spec(F_NUMBER, "number"),
            _spec(F_DATE, "date"),
            _spec(F_DROPDOWN, "dropdown", OPTIONS),
            _spec(F_MULTISELECT, "multiselect", OPTIONS),
            _spec(F_CHECKBOX, "checkbox"),
        ),
        "16910": _type("16910", _spec(F_OTHER_TYPE, "textarea")),
    },
    offers={},
)


def parse(body: Any, **kw: Any) -> filters.ListQuery:
    return parse_list_request(body, CATALOG, **kw)


def rejected(body: Any) -> dict[str, list[str]]:
    """The reasons the parser gives for refusing `body` (it must refuse it)."""
    with pytest.raises(InputValidationFailure) as caught:
        parse(body)
    reason = caught.value.reason
    assert reason, body
    for key, messages in reason.items():
        assert messages and all(isinstance(m, str) and m for m in messages), (key, messages)
    return reason


def cond(column: str, op: str, operand: Any) -> dict[str, Any]:
    return {"column": column, "op": op, "operand": operand}


def group(*operands: Any, op: str = "AND") -> dict[str, Any]:
    return {"op": op, "operand": list(operands)}


def one(column: str, op: str, operand: Any) -> dict[str, Any]:
    return {"filter": group(cond(column, op, operand))}


def sql(query: filters.ListQuery, dialect: Any = None) -> tuple[str, dict[str, Any]]:
    compiled = query.where.compile(dialect=dialect or postgresql.dialect())
    return str(compiled), dict(compiled.params)


def order_sql(query: filters.ListQuery) -> list[str]:
    dialect = postgresql.dialect()
    return [str(c.compile(dialect=dialect)) for c in query.order_by]


# --------------------------------------------------------------------------- paging and sort


def test_defaults() -> None:
    query = parse({})
    assert (query.top, query.offset) == (filters.DEFAULT_TOP, 0) == (30, 0)
    assert query.unfiltered is True
    assert order_sql(query) == ["tickets.created_at DESC", "tickets.id_serial DESC"]


@pytest.mark.parametrize("top", [1, 2, 99, 100])
def test_top_in_range(top: int) -> None:
    assert parse({"top": top}).top == top


@pytest.mark.parametrize("top", [0, -1, 101, 10**6, "10", 2.5, True, [], {}])
def test_top_out_of_range(top: Any) -> None:
    assert set(rejected({"top": top})) == {"top"}


@pytest.mark.parametrize("offset", [-1, "0", 1.5, False])
def test_bad_offset(offset: Any) -> None:
    assert set(rejected({"offset": offset})) == {"offset"}


def test_offset() -> None:
    assert parse({"offset": 0}).offset == 0
    assert parse({"offset": 250, "top": 50}).offset == 250


@pytest.mark.parametrize(
    ("sort", "columns"),
    [
        ("createdAt", ["tickets.created_at"]),
        ("updatedAt", ["tickets.updated_at"]),
        ("objectId", ["tickets.display_prefix", "tickets.display_number"]),
        ("status", ["tickets.status_type"]),
        ("summary", ["tickets.summary"]),
    ],
)
@pytest.mark.parametrize("order", ["ASC", "DESC"])
def test_sort_keys(sort: str, columns: list[str], order: str) -> None:
    query = parse({"sort": sort, "searchOrder": order})
    # A unique tiebreaker keeps paging stable.
    assert order_sql(query) == [f"{c} {order}" for c in [*columns, "tickets.id_serial"]]


@pytest.mark.parametrize("sort", ["priority", "created_at", "CREATEDAT", 5])
def test_unknown_sort(sort: Any) -> None:
    assert set(rejected({"sort": sort})) == {"sort"}


@pytest.mark.parametrize("sort", [["createdAt"], {"column": "createdAt"}])
def test_sort_of_the_wrong_json_type(sort: Any) -> None:
    assert set(rejected({"sort": sort})) == {"sort"}


@pytest.mark.parametrize("order", ["UP", "ascending", 1, ["ASC"]])
def test_bad_search_order(order: Any) -> None:
    assert set(rejected({"searchOrder": order})) == {"searchOrder"}


# --------------------------------------------------------------------------- body and search


@pytest.mark.parametrize("body", [[], "filter", 5, None])
def test_body_must_be_an_object(body: Any) -> None:
    assert "body" in rejected(body)


def test_unknown_keys_are_named() -> None:
    reason = rejected({"where": {}, "limit": 5})
    assert set(reason) == {"where", "limit"}
    assert any("where" in m for m in reason["where"])


@pytest.mark.parametrize("search", [5, ["x"], {"q": "x"}, "x" * 201])
def test_bad_search(search: Any) -> None:
    assert set(rejected({"search": search})) == {"search"}


def test_search_is_case_insensitive_and_escapes_wildcards() -> None:
    text, params = sql(parse({"search": "50%_OFF"}))
    # One pattern, with the LIKE wildcards escaped so they match themselves, lowered by the
    # database like every column it is matched against.
    needles = [k for k, v in params.items() if v == "%50/%/_OFF%"]
    assert len(needles) == 1, params
    assert text.count(f"LIKE lower(%({needles[0]})s::VARCHAR) ESCAPE '/'") == 4, text
    assert text.count("lower(tickets.summary) LIKE") == 1, text
    assert "ESCAPE '/'" in text
    # SQLite lowers with the connection's function (ticketing.kit.lowercase), not its own.
    lite, _ = sql(parse({"search": "x"}), sqlite.dialect())
    assert "ticketing_lower(tickets.summary) LIKE ticketing_lower(" in lite
    assert " lower(" not in lite
    assert "50" not in text
    # Summary, display ID and the text fields of every item type are searched.
    assert "tickets.summary" in text and "tickets.object_id" in text
    assert {F_TEXT, F_OTHER_TYPE} <= set(params.values())


def test_empty_search_is_no_filter() -> None:
    assert parse({"search": ""}).unfiltered is True
    assert parse({"search": None}).unfiltered is True
    assert parse({"search": "x"}).unfiltered is False


# --------------------------------------------------------------------------- columns and operators


@pytest.mark.parametrize("column", sorted(filters.FIXED_COLUMNS))
def test_every_fixed_column_filters(column: str) -> None:
    operand: Any = (
        "2025-07-10T12:00:00Z" if column in ("createdAt", "updatedAt", "slaDueAt") else "x"
    )
    if column in ("hasAttachments", "merged"):
        operand = True
    query = parse(one(column, "EQ", operand))
    assert query.unfiltered is False


@pytest.mark.parametrize(
    ("column", "op", "operand"),
    [
        (F_TEXT, "LIKE", "abc"),
        (F_TEXT, "EQ", "abc"),
        (F_TEXT, "IN", ["a", "b"]),
        (F_NUMBER, "GT", 10),
        (F_NUMBER, "LE", 2.5),
        (F_NUMBER, "IN", [1, 2]),
        (F_DATE, "GE", "2025-01-01"),
        (F_DROPDOWN, "NE", "low"),
        (F_CHECKBOX, "EQ", True),
        (F_OTHER_TYPE, "LIKE", "x"),
    ],
)
def test_field_uuid_columns(column: str, op: str, operand: Any) -> None:
    text, _ = sql(parse(one(column, op, operand)))
    assert "tickets.data" in text


@pytest.mark.parametrize("op", filters.OPERATORS)
def test_every_operator_on_a_string_column(op: str) -> None:
    operand: Any = ["Open", "Closed"] if op == "IN" else "Open"
    assert parse(one("status", op, operand)).unfiltered is False


@pytest.mark.parametrize(
    "column", ["severity", "status ", "Status", "", str(uuid.uuid4()), "tickets.summary"]
)
def test_unknown_column_is_named(column: str) -> None:
    reason = rejected(one(column, "EQ", "x"))
    assert set(reason) == {"filter.operand[0].column"}
    assert any(f"Unknown column {column}" in m for m in reason["filter.operand[0].column"])


@pytest.mark.parametrize("column", [5, None, ["status"], {"name": "status"}])
def test_column_of_the_wrong_json_type(column: Any) -> None:
    assert set(rejected(one(column, "EQ", "x"))) == {"filter.operand[0].column"}


def test_multiselect_cannot_be_filtered() -> None:
    reason = rejected(one(F_MULTISELECT, "EQ", "low"))
    assert any("cannot be filtered" in m for m in reason["filter.operand[0].column"])


@pytest.mark.parametrize("op", ["BETWEEN", "LIKE%", "", None, 1, ["EQ"], "NOT"])
def test_unknown_operator_is_named(op: Any) -> None:
    node = cond("status", "EQ", "x")
    node["op"] = op
    reason = rejected({"filter": group(node)})
    assert set(reason) == {"filter.operand[0].op"}
    assert any("EQ" in m and "IN" in m for m in reason["filter.operand[0].op"])


def test_missing_operator() -> None:
    reason = rejected({"filter": group({"column": "status", "operand": "x"})})
    assert "filter.operand[0].op" in reason


@pytest.mark.parametrize(
    ("column", "op", "operand", "word"),
    [
        ("status", "EQ", 5, "string"),
        ("status", "EQ", None, "string"),
        ("status", "EQ", ["Open"], "string"),
        (F_NUMBER, "GT", "10", "number"),
        (F_NUMBER, "GT", True, "number"),
        (F_NUMBER, "EQ", None, "number"),
        (F_CHECKBOX, "EQ", "true", "boolean"),
        (F_CHECKBOX, "EQ", 1, "boolean"),
        ("createdAt", "GE", "yesterday", "datetime"),
        ("createdAt", "GE", "2025-13-40", "datetime"),
        ("createdAt", "GE", 1720000000, "datetime"),
        ("updatedAt", "LT", "", "datetime"),
        (F_NUMBER, "LIKE", "5", "LIKE"),
        (F_CHECKBOX, "LIKE", "t", "LIKE"),
        ("createdAt", "LIKE", "2025", "LIKE"),
        ("summary", "LIKE", "", "LIKE"),
        ("summary", "LIKE", 5, "LIKE"),
        ("status", "IN", "Open", "IN"),
        ("status", "IN", [], "IN"),
        ("status", "IN", ["Open", 5], "IN"),
        (F_NUMBER, "IN", [1, "2"], "IN"),
        ("status", "IN", [f"s{n}" for n in range(filters.MAX_IN + 1)], "IN"),
    ],
)
def test_bad_operand_is_named(column: str, op: str, operand: Any, word: str) -> None:
    reason = rejected(one(column, op, operand))
    assert set(reason) == {"filter.operand[0].operand"}, reason
    assert any(word in m for m in reason["filter.operand[0].operand"]), reason


def test_in_takes_up_to_the_limit() -> None:
    values = [f"s{n}" for n in range(filters.MAX_IN)]
    assert parse(one("status", "IN", values)).statuses_only == tuple(values)


@pytest.mark.parametrize("operand", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_datetime_at_the_edge_of_the_calendar_is_refused_not_crashed(operand: str) -> None:
    # Converting these instants to UTC leaves the representable range.
    reason = rejected(one("createdAt", "GE", operand))
    assert "filter.operand[0].operand" in reason


def test_datetime_operands_are_compared_in_utc() -> None:
    _, params = sql(parse(one("createdAt", "GE", "2025-07-10T14:34:56.789+02:00")))
    moments = [v for v in params.values() if isinstance(v, datetime)]
    assert moments == [datetime(2025, 7, 10, 12, 34, 56, 789000, tzinfo=UTC)]
    _, params = sql(parse(one("createdAt", "GE", "2025-07-10")))
    assert [v for v in params.values() if isinstance(v, datetime)] == [
        datetime(2025, 7, 10, tzinfo=UTC)
    ]


# --------------------------------------------------------------------------- groups, depth, size


@pytest.mark.parametrize(
    ("filter_", "key"),
    [
        ("status = 'Open'", "filter"),
        (["status"], "filter"),
        (5, "filter"),
        ({"op": "XOR", "operand": []}, "filter.op"),
        ({"op": 1, "operand": []}, "filter.op"),
        ({"op": "AND"}, "filter.operand"),
        ({"op": "AND", "operand": {"column": "status"}}, "filter.operand"),
        ({"op": "AND", "operand": "status"}, "filter.operand"),
        (group("status"), "filter.operand[0]"),
        (group(group(None)), "filter.operand[0].operand[0]"),
        (
            group(cond("status", "EQ", "x"), group(cond("x", "EQ", 1))),
            "filter.operand[1].operand[0].column",
        ),
    ],
)
def test_malformed_groups_are_named(filter_: Any, key: str) -> None:
    reason = rejected({"filter": filter_})
    assert key in reason, reason


def test_null_filter_is_no_filter() -> None:
    assert parse({"filter": None}).unfiltered is True


def test_group_op_defaults_and_case() -> None:
    parse({"filter": {"operand": [cond("status", "EQ", "Open")]}})
    text, _ = sql(
        parse({"filter": group(cond("status", "EQ", "a"), cond("summary", "EQ", "b"), op="OR")})
    )
    assert " OR " in text


def test_and_or_nest() -> None:
    query = parse(
        {
            "filter": group(
                group(cond("status", "EQ", "Open"), cond(F_NUMBER, "GT", 3)),
                group(cond("teamId", "EQ", "finance"), cond(F_CHECKBOX, "EQ", True), op="OR"),
                op="OR",
            )
        }
    )
    text, params = sql(query)
    assert text.count(" OR ") >= 2 and " AND " in text
    assert {"Open", 3, "finance"} <= set(params.values())


def _nested(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = cond("status", "EQ", "Open")
    for _ in range(levels):
        node = group(node)
    return node


def test_nesting_up_to_the_limit() -> None:
    parse({"filter": _nested(filters.MAX_DEPTH)})


@pytest.mark.parametrize("levels", [1, 2, 20])
def test_nesting_past_the_limit(levels: int) -> None:
    reason = rejected({"filter": _nested(filters.MAX_DEPTH + levels)})
    assert any("nest" in m for messages in reason.values() for m in messages), reason


def test_conditions_up_to_the_limit() -> None:
    conditions = [cond("summary", "EQ", str(n)) for n in range(filters.MAX_CONDITIONS)]
    parse({"filter": group(*conditions, op="OR")})


def test_conditions_past_the_limit() -> None:
    conditions = [cond("summary", "EQ", str(n)) for n in range(filters.MAX_CONDITIONS + 1)]
    reason = rejected({"filter": group(*conditions, op="OR")})
    assert any(str(filters.MAX_CONDITIONS) in m for ms in reason.values() for m in ms), reason


def test_conditions_are_counted_across_groups() -> None:
    half = filters.MAX_CONDITIONS // 2 + 1
    left = group(*[cond("summary", "EQ", str(n)) for n in range(half)])
    right = group(*[cond("summary", "EQ", str(n)) for n in range(half)])
    reason = rejected({"filter": group(left, right, op="OR")})
    assert any(str(filters.MAX_CONDITIONS) in m for ms in reason.values() for m in ms), reason


def test_every_problem_is_listed_at_once() -> None:
    reason = rejected(
        {
            "top": 0,
            "offset": -5,
            "sort": "nope",
            "searchOrder": "UP",
            "bogus": 1,
            "filter": group(
                cond("nope", "EQ", "x"),
                cond("status", "BETWEEN", "x"),
                cond(F_NUMBER, "GT", "x"),
                group(cond("summary", "LIKE", "")),
            ),
        }
    )
    assert set(reason) == {
        "top",
        "offset",
        "sort",
        "searchOrder",
        "bogus",
        "filter.operand[0].column",
        "filter.operand[1].op",
        "filter.operand[2].operand",
        "filter.operand[3].operand[0].operand",
    }


@pytest.mark.parametrize(
    ("node", "keys"),
    [
        (cond("nope", "BETWEEN", "x"), {"column", "op"}),
        (cond(F_MULTISELECT, "BETWEEN", "low"), {"column", "op"}),
        (cond("nope", "IN", "x"), {"column", "operand"}),
        (cond("nope", "IN", []), {"column", "operand"}),
        (cond("nope", "LIKE", ""), {"column", "operand"}),
        (cond(5, "LIKE", 5), {"column", "operand"}),
        (cond(F_NUMBER, "LIKE", ""), {"operand"}),
    ],
)
def test_every_fault_of_one_condition_is_named(node: dict[str, Any], keys: set[str]) -> None:
    reason = rejected({"filter": group(node)})
    assert set(reason) == {f"filter.operand[0].{key}" for key in keys}, reason


def test_a_bad_group_op_does_not_hide_its_conditions_faults() -> None:
    reason = rejected({"filter": group(cond("nope", "EQ", "x"), op="XOR")})
    assert set(reason) == {"filter.op", "filter.operand[0].column"}, reason


# --------------------------------------------------------------------------- SQL safety


HOSTILE = [
    "' OR '1'='1",
    "x'); DROP TABLE tickets; --",
    "\\'; DELETE FROM tickets WHERE '1'='1",
    'Robert"; SELECT pg_sleep(10); --',
]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()])
def test_operands_are_bound_parameters(value: str, dialect: Any) -> None:
    query = parse(
        {
            "search": value,
            "filter": group(
                cond("summary", "EQ", value),
                cond("objectId", "IN", [value, "CTC-0001"]),
                cond(F_TEXT, "LIKE", value),
                cond("submittedBy", "NE", value),
                op="OR",
            ),
        }
    )
    text, params = sql(query, dialect)
    assert value not in text
    assert "DROP" not in text and "DELETE" not in text and "pg_sleep" not in text
    assert value in params.values() or any(
        isinstance(v, list | tuple) and value in v for v in params.values()
    ), params


@pytest.mark.parametrize(
    "body",
    [
        one("summary; DROP TABLE tickets", "EQ", "x"),
        one("summary", "EQ; DROP TABLE tickets", "x"),
        {"sort": "createdAt; DROP TABLE tickets"},
        {"searchOrder": "ASC; DELETE FROM tickets"},
    ],
)
def test_names_never_reach_sql(body: dict[str, Any]) -> None:
    rejected(body)


# --------------------------------------------------------------------------- count shortcuts


def test_statuses_only() -> None:
    assert parse(one("status", "EQ", "Open")).statuses_only == ("Open",)
    assert parse(one("status", "IN", ["Open", "Closed", "Open"])).statuses_only == (
        "Open",
        "Closed",
    )
    assert parse({"filter": group(group(cond("status", "EQ", "Open")), op="OR")}).statuses_only == (
        "Open",
    )
    for body in (
        {},
        one("status", "NE", "Open"),
        one("status", "LIKE", "Open"),
        one("summary", "EQ", "Open"),
        {"search": "x", **one("status", "EQ", "Open")},
        {"filter": group(cond("status", "EQ", "Open"), cond("teamId", "EQ", "james"))},
    ):
        assert parse(body).statuses_only is None, body


def test_unfiltered() -> None:
    assert parse({"top": 5, "offset": 10, "sort": "summary"}).unfiltered is True
    assert parse(one("status", "EQ", "Open")).unfiltered is False
