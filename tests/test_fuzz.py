"""Property-based API fuzzing: Schemathesis against the running server's /openapi.json.

Every operation of the schema is fuzzed on each database backend with Schemathesis'
positive and negative data generation, under Hypothesis with a bounded, derandomized
example budget, so a CI run is short and reproducible. Each case is sent with valid
credentials for a freshly loaded tenant (as an agent, a user or an admin), except a few
sent without any.

Generated values are mixed with values the tenant knows (its teams, item types, offers,
field UUIDs, filter columns, real display IDs and their current etags, idempotency keys),
so that cases get past "not found" and exercise validation, the database queries and the
happy paths.

Checks on every response:
- no 5xx (`not_a_server_error`);
- every status is one the operation documents (`status_code_conformance`);
- a documented status answers with a documented content type and a body matching its
  schema (`response_schema_conformance`, `content_type_conformance`).

The operations are driven through Schemathesis' public `APIOperation.as_strategy()` rather
than its pytest plugin: `schemathesis.pytest.from_fixture` (needed because the server's URL
is a fixture) fails on pytest 9.2 (it reads `Function._nodeid`, which pytest removed).

Concrete failures found while fuzzing are kept as plain HTTP tests in
tests/test_fuzz_regressions.py.
"""

from __future__ import annotations

import copy
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.desk_support import AGENTS, OTHER_QUEUE, QUEUE, desk_overrides
from tests.support import (
    DESCRIPTION,
    F_CHECKBOX,
    F_DATE,
    F_DATETIME,
    F_DROPDOWN,
    F_EMAIL,
    F_MULTISELECT,
    F_NUMBER,
    F_RADIO,
    F_RICHTEXT,
    F_TEXT,
    F_TEXTAREA,
    F_USER,
    NEEDED_WITHIN,
    TITLE,
    Database,
    Server,
    Tenant,
    everything_body,
    seed_body,
)

# Examples per operation: sized for CI (with some 35 operations, a few minutes per backend on
# 2 cores). Set TICKETING_FUZZ_EXAMPLES higher for a deeper run.
MAX_EXAMPLES = int(os.environ.get("TICKETING_FUZZ_EXAMPLES", "120"))

FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]

FIELD_IDS = [
    TITLE,
    DESCRIPTION,
    NEEDED_WITHIN,
    F_TEXT,
    F_TEXTAREA,
    F_RICHTEXT,
    F_NUMBER,
    F_DATE,
    F_DATETIME,
    F_DROPDOWN,
    F_RADIO,
    F_MULTISELECT,
    F_CHECKBOX,
    F_EMAIL,
    F_USER,
]
TEAMS = ["james", "finance"]
ITEM_TYPES = ["16910", "20000", "30000"]
OFFERS = ["23629", "23630", "23631", "23632"]
STATUSES = [
    "New",
    "Triaged",
    "Open",
    "In Progress",
    "Waiting for customer",
    "Resolved",
    "Closed",
]
COLUMNS = [
    "objectId",
    "summary",
    "status",
    "statusCategory",
    "teamId",
    "itemTypeId",
    "submittedBy",
    "createdAt",
    "updatedAt",
    "hasAttachments",
    "parent",
    "movedTo",
    "merged",
    "priority",
    "assignee",
    "queueId",
    "slaDueAt",
    "slaBreached",
    *FIELD_IDS,
]
RELATION_TYPES = ["parent", "relates_to", "duplicate_of", "blocks"]
RELATION_VIEWS = [*RELATION_TYPES, "children", "duplicates", "blocked_by"]
OPERATORS = ["EQ", "NE", "GT", "GE", "LT", "LE", "LIKE", "IN", "AND", "OR"]
ROLES = ["ticket_agent", "ticket_user", "tenant_admin"]

# Values that tend to break field validation and SQL: boundaries, odd dates, big numbers.
EDGE_VALUES: list[Any] = [
    "",
    " ",
    "low",
    "high",
    "<1week",
    ["low", "high"],
    ["low", "low"],
    [],
    "2025-07-10",
    "2025-02-30",
    "0000-01-01",
    "9999-12-31",
    "2025-07-10T12:34:56Z",
    "2025-07-10T12:34:56.737+14:00",
    "2025-07-10T25:00:00",
    "user@example.com",
    "a@b",
    "not-an-email",
    0,
    -1,
    100,
    101,
    0.5,
    1e308,
    -1e308,
    2**31,
    2**63,
    -(2**63) - 1,
    10**40,
    True,
    False,
    None,
    "%",
    "_",
    "\\",
    "'; DROP TABLE tickets; --",
    "<script>alert(1)</script><p>ok</p>",
    "x" * 300,
    "CTC-0001",
    "ALL-0001",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
field_values = st.sampled_from(EDGE_VALUES) | json_values
watchers = st.none() | st.lists(
    st.sampled_from(["user@example.com", "someone@example.com", "nobody", ""])
    | st.text(max_size=10),
    max_size=3,
)


def _ticket_body(*, offer: bool) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {key: field_values for key in FIELD_IDS}
    optional.update(ccWatchers=watchers, toWatchers=watchers)
    required: dict[str, st.SearchStrategy[Any]] = {}
    if offer:
        required["offerId"] = st.sampled_from(OFFERS) | json_scalars
    return st.fixed_dictionaries(required, optional=optional)


SEED_FIELDS = [TITLE, DESCRIPTION, NEEDED_WITHIN]
EVERYTHING_FIELDS = [f for f in FIELD_IDS if f not in SEED_FIELDS]


def _field_changes(fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Up to three of the fields (or any other) set to odd values."""
    keys = st.sampled_from(fields) | st.sampled_from(FIELD_IDS)
    return st.dictionaries(keys, field_values, min_size=1, max_size=3)


def _perturbed(base: dict[str, Any], fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid create body with up to three of its ticketBody fields changed."""

    def apply(changes: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(base)
        body["ticketBody"].update(changes)
        return body

    return st.just(base) | _field_changes(fields).map(apply)


create_bodies = st.fixed_dictionaries(
    {
        "source": st.sampled_from(["api", "web", "email"]) | st.text(max_size=10),
        "summary": st.sampled_from(["Hardware request", ""]) | st.text(),
        "ticketBody": _ticket_body(offer=True),
        "attachments": st.just({}) | st.dictionaries(st.text(max_size=8), json_values, max_size=2),
        "ticketRelation": st.none()
        | st.dictionaries(st.text(max_size=8), json_values, max_size=2)
        | st.fixed_dictionaries(
            {
                "type": st.sampled_from(RELATION_TYPES) | json_scalars,
                "objectId": st.sampled_from(["CTC-0001", "CTC-0002", "ALL-0001", ""])
                | json_scalars,
            }
        ),
    }
) | st.sampled_from([seed_body(), everything_body()])

update_bodies = st.fixed_dictionaries(
    {},
    optional={
        "summary": st.none() | st.sampled_from(["Changed", ""]) | st.text(),
        "ticketBody": st.none()
        | st.dictionaries(st.sampled_from(FIELD_IDS), field_values, max_size=3)
        | _ticket_body(offer=False),
        "status": st.none() | st.sampled_from(STATUSES) | st.text(max_size=10),
        "ccWatchers": watchers,
        "toWatchers": watchers,
        "priority": st.none()
        | st.sampled_from(["critical", "low", "urgent"])
        | st.text(max_size=8),
        "queueId": st.none() | st.sampled_from([QUEUE, OTHER_QUEUE, "nope"]) | json_scalars,
        "assignee": st.none() | st.sampled_from([*AGENTS, "l2@example.com", ""]) | json_scalars,
    },
)

conditions = st.fixed_dictionaries(
    {
        "column": st.sampled_from(COLUMNS) | st.text(max_size=10),
        "op": st.sampled_from(OPERATORS) | st.text(max_size=4),
        "operand": field_values | st.lists(field_values, max_size=4),
    }
)
filters = st.recursive(
    conditions,
    lambda children: st.fixed_dictionaries(
        {"operand": st.lists(children, max_size=3)},
        optional={"op": st.sampled_from(["AND", "OR", "NOT", ""])},
    ),
    max_leaves=5,
)
list_bodies = st.fixed_dictionaries(
    {},
    optional={
        "search": st.none() | st.sampled_from(["%", "_", "laptop", "\\", "CTC-"]) | st.text(),
        "top": st.integers(min_value=-5, max_value=200) | st.integers(),
        "offset": st.integers(min_value=-5, max_value=50) | st.integers(),
        "sort": st.sampled_from(
            ["createdAt", "updatedAt", "objectId", "status", "summary", *FIELD_IDS]
        )
        | st.text(max_size=10),
        "searchOrder": st.sampled_from(["ASC", "DESC", "asc", ""]),
        "filter": st.none() | filters,
    },
)
comment_bodies = st.fixed_dictionaries(
    {"body": st.sampled_from(["ok", "<p>hi</p>", "<script>x</script>", " "]) | st.text()},
    optional={"internal": st.booleans() | json_scalars},
)
select_values = st.lists(
    st.sampled_from(["id", "name", "properties", "fields", "workflow", "nope", ""]), max_size=4
).map(",".join)
counts = st.integers(min_value=-3, max_value=200).map(str) | st.sampled_from(
    ["", "1e3", "abc", "9" * 30]
)
ticket_type_query = st.fixed_dictionaries(
    {"type": st.sampled_from(["template", "agent", "user"]), "module": st.just("ticketing")},
    optional={"$select": select_values, "$top": counts, "$skip": counts},
)

CREATE = ("POST", "/api/v2/ticketing/ticket/create/{teamId}/{itemTypeId}")
UPDATE = ("PATCH", "/api/v2/ticketing/ticket/update/{objectId}")
COMMENT = ("POST", "/api/v2/ticketing/ticket/{objectId}/comments")
LISTS = {("POST", "/api/v2/ticketing/ticket/list"), ("POST", "/api/v2/ticketing/ticket/count")}
TICKET_TYPES = ("GET", "/api/v2/ticketing/ticket-type")
UPLOAD = ("POST", "/api/v2/ticketing/attachments")
DOWNLOAD = ("GET", "/api/v2/ticketing/ticket/{objectId}/attachments/{attachmentId}")
MULTIPART = "multipart/form-data"
# Files whose bytes name their type (the generated part's file name takes it from them).
UPLOAD_FILES = [
    b"\x89PNG\r\n\x1a\n" + bytes(range(64)),
    b"%PDF-1.7\n" + b"x" * 64,
    b"GIF89a" + b"\x00" * 32,
    b"\xff\xd8\xff\xe0" + b"\x00" * 32,
    b"PK\x03\x04" + b"\x00" * 300,
    b"",
]
ranges = st.none() | st.sampled_from(["bytes=0-9", "bytes=-5", "bytes=5-", "bytes=999-", "x"])
RELATE = ("POST", "/api/v2/ticketing/ticket/{objectId}/relations")
UNRELATE = (
    "DELETE",
    "/api/v2/ticketing/ticket/{objectId}/relations/{relationType}/{otherObjectId}",
)
MERGE = ("POST", "/api/v2/ticketing/ticket/{objectId}/merge")
QUEUE_PATHS = "/api/v2/ticketing/queue/"
queue_ids = st.sampled_from([QUEUE, QUEUE, OTHER_QUEUE, "nope"])
member_ids = st.sampled_from([*AGENTS, "l2@example.com", "user@example.com", "ghost"])
# DELETE never removes the last agent, so PUT (fuzzed after it) still finds a member to change.
KEPT_MEMBER = AGENTS[-1]
removable_ids = st.sampled_from([*AGENTS[:-1], "l2@example.com", "user@example.com", "ghost"])
member_bodies = st.fixed_dictionaries(
    {"userId": member_ids | st.sampled_from(["new@example.com", ""]) | json_scalars}
)
availability_bodies = st.fixed_dictionaries(
    {"availability": st.sampled_from(["available", "away", "offline", "asleep"]) | json_scalars}
)
MARK_NOTIFICATION = ("PATCH", "/api/v2/ticketing/ticket/notifications/{notificationId}")
DELIVERIES = ("GET", "/api/v2/ticketing/tenant/webhooks/{webhookId}/deliveries")


def _query(catalog: str) -> dict[str, str]:
    return {"type": catalog, "module": "ticketing"}


class FuzzTarget:
    """The loaded tenant, its tickets and tokens, and per-operation statistics."""

    def __init__(self, tenant: Tenant, backend: str) -> None:
        self.tenant = tenant
        self.backend = backend
        self.tokens = {role: tenant.token(roles=[role], ttl=3600) for role in ROLES}
        # Tickets that stay (read, commented, updated), one per item type, and tickets that
        # DELETE may remove.
        self.seed_ticket = self._create(seed_body())
        self.everything_ticket = self._create(everything_body(), "20000", "agent")
        self.deletable = [self._create(seed_body()) for _ in range(3)]
        self.object_ids = [self.seed_ticket, self.everything_ticket, *self.deletable]
        # A ticket with a file, for downloads.
        self.file_id = self._upload()
        self.file_ticket = self._create({**seed_body(), "attachments": {"ticket": [self.file_id]}})
        # Related tickets whose relations DELETE may remove, and tickets a merge may move.
        self.related = [self._create(seed_body()) for _ in range(4)]
        r0, r1, r2, r3 = self.related
        added = [(r0, "blocks", r1), (r1, "blocks", r2), (r3, "parent", r0), (r0, "relates_to", r2)]
        # The same relations, each named from its other end.
        self.relations = [
            (r1, "blocked_by", r0),
            (r2, "blocked_by", r1),
            (r0, "children", r3),
            (r2, "relates_to", r0),
        ]
        for object_id, kind, other in added:
            response = tenant.client.post(
                f"{tenant.base_url}/api/v2/ticketing/ticket/{object_id}/relations",
                params=_query("agent"),
                headers=tenant.headers(),
                json={"type": kind, "objectId": other},
            )
            assert response.status_code == 200, response.text
        self.mergeable = [self._create(seed_body()) for _ in range(3)]
        # A comment by someone else notifies the fuzzing callers (they submitted the ticket).
        other = tenant.token(username="other", email="other@example.com")
        response = tenant.client.post(
            f"{tenant.base_url}/api/v2/ticketing/ticket/{self.seed_ticket}/comments",
            params=_query("template"),
            headers=tenant.headers(other),
            json={"body": "hello"},
        )
        assert response.status_code == 200, response.text
        listed = tenant.client.post(
            f"{tenant.base_url}/api/v2/ticketing/ticket/notifications",
            params=_query("template"),
            headers=tenant.headers(),
            json={},
        )
        self.notification_ids = [n["id"] for n in listed.json()["data"]["value"]]
        assert self.notification_ids, listed.text
        self.session = requests.Session()
        self.statuses: dict[str, Counter[int]] = {}

    def _create(
        self, body: dict[str, Any], item_type: str = "16910", catalog: str = "template"
    ) -> str:
        response = self.tenant.create(body, item_type=item_type, catalog_type=catalog)
        assert response.status_code == 200, response.text
        return str(response.json()["objectId"])

    def _upload(self) -> str:
        headers = self.tenant.headers()
        headers.pop("content-type")
        response = self.tenant.client.post(
            f"{self.tenant.base_url}/api/v2/ticketing/attachments",
            params=_query("template"),
            headers=headers,
            files={"file": ("shot.png", UPLOAD_FILES[0])},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["attachment"]["id"])

    def headers(self, who: str, *, stream: bool = False) -> dict[str, str]:
        if who == "anonymous":
            return {}
        # Event streams last as long as their token: a stream's token expired a moment ago
        # (inside the accepted clock skew), so the stream opens, says so, and ends at once.
        token = self.tenant.token(roles=[who], ttl=-5) if stream else self.tokens[who]
        return {
            "authorization": f"Bearer {token}",
            "x-tenantid": self.tenant.id,
            "realmname": self.tenant.realm,
        }

    def etag(self, object_id: str) -> str | None:
        response = self.tenant.get(f"/ticket/{object_id}")
        return str(response.json()["ticket"]["etag"]) if response.status_code == 200 else None

    def overrides(self, operation: APIOperation) -> st.SearchStrategy[dict[str, Any]]:
        """Known values (teams, item types, display IDs, field UUIDs...) replacing parts of a
        generated case, so that cases get past "not found" and reach validation, the
        database and the happy path. Parts are coupled where they must agree (item type in
        the path and the body's offer and fields)."""
        key = (operation.method.upper(), operation.path)

        def ticket(ids: list[str]) -> st.SearchStrategy[dict[str, str]]:
            return st.fixed_dictionaries({"objectId": st.sampled_from(ids)})

        if key == CREATE:
            return st.one_of(
                st.fixed_dictionaries(
                    {
                        "path_parameters": st.just({"teamId": "james", "itemTypeId": "16910"}),
                        "query": st.sampled_from([_query("template"), _query("user")]),
                        "body": _perturbed(seed_body(), SEED_FIELDS),
                    }
                ),
                st.fixed_dictionaries(
                    {
                        "path_parameters": st.just({"teamId": "james", "itemTypeId": "20000"}),
                        "query": st.just(_query("agent")),
                        "body": _perturbed(everything_body(), EVERYTHING_FIELDS),
                    }
                ),
                st.fixed_dictionaries(
                    {
                        "path_parameters": st.fixed_dictionaries(
                            {
                                "teamId": st.sampled_from(TEAMS),
                                "itemTypeId": st.sampled_from(ITEM_TYPES),
                            }
                        ),
                        "body": create_bodies,
                    }
                ),
            )
        names = {p.name for p in operation.path_parameters}
        known = self.object_ids + self.related
        if key == RELATE:
            # Well-formed relations (the generated bodies bring the malformed ones), between
            # two different lists, so that even the first values drawn name two tickets.
            return st.fixed_dictionaries(
                {
                    "path_parameters": ticket(self.object_ids),
                    "body": st.fixed_dictionaries(
                        {
                            "type": st.sampled_from(RELATION_TYPES),
                            "objectId": st.sampled_from(self.related[::-1]),
                        }
                    ),
                }
            )
        if key == UNRELATE:
            return st.fixed_dictionaries(
                {
                    "path_parameters": st.sampled_from(self.relations).map(
                        lambda r: {"objectId": r[0], "relationType": r[1], "otherObjectId": r[2]}
                    )
                    | st.fixed_dictionaries(
                        {
                            "objectId": st.sampled_from(known),
                            "relationType": st.sampled_from(RELATION_VIEWS) | st.text(max_size=8),
                            "otherObjectId": st.sampled_from(known),
                        }
                    )
                }
            )
        if key == MERGE:
            # Only the mergeable tickets move, into tickets that stay, so a merge can succeed
            # however many came before it (the generated cases bring malformed bodies).
            return st.fixed_dictionaries(
                {
                    "path_parameters": ticket(self.mergeable),
                    "body": st.fixed_dictionaries(
                        {"into": st.sampled_from([self.seed_ticket, *self.related])},
                        optional={"etag": st.none() | st.text(max_size=40)},
                    ),
                }
            )
        if key == UPDATE:
            return st.one_of(
                st.fixed_dictionaries(
                    {
                        "path_parameters": st.just({"objectId": self.seed_ticket}),
                        "body": st.fixed_dictionaries(
                            {}, optional={"ticketBody": _field_changes(SEED_FIELDS)}
                        )
                        | update_bodies,
                    }
                ),
                st.fixed_dictionaries(
                    {
                        "path_parameters": st.just({"objectId": self.everything_ticket}),
                        "body": st.fixed_dictionaries(
                            {}, optional={"ticketBody": _field_changes(EVERYTHING_FIELDS)}
                        )
                        | update_bodies,
                    }
                ),
            )
        if key == UPLOAD:
            return st.fixed_dictionaries(
                {
                    "query": st.just(_query("template")),
                    "body": st.fixed_dictionaries({"file": st.sampled_from(UPLOAD_FILES)}),
                    "media_type": st.just(MULTIPART),
                }
            )
        if key == DOWNLOAD:
            return st.fixed_dictionaries(
                {
                    "path_parameters": st.just(
                        {"objectId": self.file_ticket, "attachmentId": self.file_id}
                    )
                    | st.fixed_dictionaries(
                        {
                            "objectId": st.sampled_from(self.object_ids),
                            "attachmentId": st.just(self.file_id) | st.uuids().map(str),
                        }
                    ),
                    "query": st.just(_query("template")),
                    "range": ranges,
                }
            )
        if key == COMMENT:
            return st.fixed_dictionaries(
                {"path_parameters": ticket(self.object_ids)}, optional={"body": comment_bodies}
            )
        if names == {"objectId"}:
            ids = self.deletable if key[0] == "DELETE" else self.object_ids
            return st.fixed_dictionaries({"path_parameters": ticket(ids)})
        if key in LISTS:
            return st.fixed_dictionaries({"body": list_bodies})
        if key == TICKET_TYPES:
            return st.fixed_dictionaries({"query": ticket_type_query})
        if key[1].startswith(QUEUE_PATHS) and names:
            parts: dict[str, st.SearchStrategy[Any]] = {"queueId": queue_ids}
            if "userId" in names:
                parts["userId"] = {
                    "DELETE": removable_ids,
                    "PUT": st.just(KEPT_MEMBER) | member_ids,
                }.get(key[0], member_ids)
            override: dict[str, st.SearchStrategy[Any]] = {
                "path_parameters": st.fixed_dictionaries(parts)
            }
            if key[0] == "POST":
                override["body"] = member_bodies
            if key[0] == "PUT":
                override["body"] = availability_bodies
            return st.fixed_dictionaries(override)
        if key == DELIVERIES:
            return st.fixed_dictionaries(
                {
                    "path_parameters": st.just({"webhookId": "hook"}),
                    "query": st.sampled_from([_query("agent"), _query("template")]),
                }
            )
        if key == MARK_NOTIFICATION:
            return st.fixed_dictionaries(
                {
                    "path_parameters": st.fixed_dictionaries(
                        {"notificationId": st.sampled_from(self.notification_ids)}
                    ),
                    "body": st.fixed_dictionaries({"read": st.booleans()}),
                }
            )
        return st.nothing()


# Idempotency-Key on create and update: mostly none; a few keys reused across cases (replays,
# and reuse with another body), and odd ones (empty, too long).
idempotency_keys = (
    st.none()
    | st.sampled_from(["key-1", "key-2"])
    | st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=300)
)

# Who sends a case: mostly agents (they may do everything), some users and admins, a few
# without credentials.
callers = st.sampled_from(["ticket_agent"] * 5 + ["ticket_user", "tenant_admin", "anonymous"])
# Queue members are changed by admins, webhook deliveries read and sessions ended by them:
# mostly them there.
admin_callers = st.sampled_from(["tenant_admin"] * 5 + ["ticket_agent", "ticket_user", "anonymous"])


def _callers(operation: APIOperation) -> st.SearchStrategy[str]:
    writes_members = operation.path.startswith(QUEUE_PATHS) and operation.method.upper() != "GET"
    for_admins = operation.path.startswith(
        ("/api/v2/ticketing/tenant/webhooks", "/api/v2/ticketing/sessions")
    )
    return admin_callers if writes_members or for_admins else callers


@pytest.fixture
def fuzz_target(make_tenant: Callable[..., Tenant], database: Database) -> Iterator[FuzzTarget]:
    # With queues and SLA policies, so that routing, clocks and queue members are fuzzed too,
    # and a webhook whose receiver is not there (the discard port): its deliveries list fills.
    tenant = make_tenant(
        **desk_overrides(),
        webhooks=[
            {
                "id": "hook",
                "url": "http://127.0.0.1:9/hook",
                "events": ["ticket.created"],
                "secret": "fuzzing-secret-0123456789",
            }
        ],
    )
    target = FuzzTarget(tenant, database.name)
    yield target
    target.session.close()
    _report(target)


def _fuzz(operation: APIOperation, target: FuzzTarget) -> None:
    """Runs the operation's generated cases through the checks, with Hypothesis."""
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    # About half the cases as generated, the others with known values in some parts.
    overrides = target.overrides(operation) | st.just({})

    @given(
        case=cases,
        override=overrides,
        caller=_callers(operation),
        fresh_etag=st.booleans(),
        idempotency_key=idempotency_keys,
    )
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(
        case: Case,
        override: dict[str, Any],
        caller: str,
        fresh_etag: bool,
        idempotency_key: str | None,
    ) -> None:
        _send(case, override, caller, fresh_etag, idempotency_key, target)

    run()


def _send(
    case: Case,
    override: dict[str, Any],
    caller: str,
    fresh_etag: bool,
    idempotency_key: str | None,
    target: FuzzTarget,
) -> None:
    if "path_parameters" in override:
        case.path_parameters = {**(case.path_parameters or {}), **override["path_parameters"]}
    if "query" in override:
        case.query = {**(case.query or {}), **override["query"]}
    if "body" in override:
        case.body = copy.deepcopy(override["body"])
        case.media_type = override.get("media_type", "application/json")
    if override.get("range"):
        case.headers = {**(case.headers or {}), "Range": override["range"]}
    method = case.method.upper()
    key = (method, case.operation.path)
    if idempotency_key is not None and key in (CREATE, UPDATE):
        # Not in the schema, but create and update honour it: replays and reused keys.
        case.headers = {**(case.headers or {}), "Idempotency-Key": idempotency_key}
    object_id = (case.path_parameters or {}).get("objectId")
    fresh_target = [*target.object_ids, *target.mergeable]
    if fresh_etag and (method in ("PATCH", "DELETE") or key == MERGE) and object_id in fresh_target:
        # Send the ticket's current etag so the update/delete itself runs, not just the 412/428.
        etag = target.etag(object_id)
        if etag is not None:
            case.headers = {**(case.headers or {}), "If-Match": f'"{etag}"'}
            if isinstance(case.body, dict):
                case.body.pop("etag", None)
    response = case.call_and_validate(
        headers=target.headers(caller, stream="/sse/" in case.operation.path),
        session=target.session,
        checks=FUZZ_CHECKS,
        timeout=30,
    )
    label = " ".join(key)
    target.statuses.setdefault(label, Counter())[response.status_code] += 1


def test_every_operation_conforms_to_its_schema(server: Server, fuzz_target: FuzzTarget) -> None:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json", timeout=10)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"schema error: {result.err()}")
            continue
        operation = result.ok()
        operations += 1
        try:
            _fuzz(operation, fuzz_target)
        except Exception as exc:  # one operation's failure must not hide another's
            failures.append(f"{operation.label}:\n{exc}")
    assert not failures, "\n\n".join(failures)
    # Guard against a vacuous pass: every operation was exercised, and some of its cases got
    # past authentication and validation all the way to a success.
    assert operations == len(fuzz_target.statuses) > 0
    for label, counter in fuzz_target.statuses.items():
        assert sum(counter.values()) >= 10, (label, counter)
        assert any(200 <= status < 300 for status in counter), f"no 2xx for {label}: {counter}"


def _report(target: FuzzTarget) -> None:
    """Prints the figures of the run (shown with -s; also the issue's 'fuzz cases run')."""
    total = sum(sum(c.values()) for c in target.statuses.values())
    lines = [f"\nfuzz[{target.backend}]: {total} cases over {len(target.statuses)} operations"]
    for label, counter in sorted(target.statuses.items()):
        lines.append(f"  {label}: {json.dumps(dict(sorted(counter.items())))}")
    print("\n".join(lines))
