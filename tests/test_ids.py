"""Ids (ticketing.kit.ids): version-4 UUIDs, time-ordered version-7 UUIDs (a ticket's id) and
request ids, unique, also across a fork."""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime, timedelta

from tests.support import Tenant
from tests.ticket_api import get_ticket
from ticketing.kit import ids


def test_new_uuids_are_random_version_4_uuids_and_never_repeat() -> None:
    made = [ids.new_uuid() for _ in range(3 * ids.BLOCK // 16 + 5)]  # several blocks
    assert len(set(made)) == len(made)
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in made)
    # As uuid4() makes them: 122 random bits; across this many, every position of the hex
    # form but the version and variant digits takes several values.
    positions = zip(*(u.hex for u in made), strict=True)
    assert sum(len(set(column)) > 1 for column in positions) == 31


def test_request_ids_are_32_hex_digits_and_never_repeat() -> None:
    made = [ids.new_request_id() for _ in range(1000)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in made)


def test_a_forked_child_makes_ids_of_its_own() -> None:
    ids.new_uuid()  # the parent holds a block with ids left in it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, b"".join(ids.new_uuid().bytes for _ in range(4)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    child = {uuid.UUID(bytes=data[n : n + 16]) for n in range(0, len(data), 16)}
    parent = {ids.new_uuid() for _ in range(4)}
    assert len(child) == 4 and not child & parent


def test_ordered_uuids_are_version_7_with_the_time_in_their_first_48_bits() -> None:
    # RFC 9562's example time, 2022-02-22 19:22:22 UTC: unix_ts_ms 0x017F22E279B0.
    at = datetime(2022, 2, 22, 19, 22, 22, tzinfo=UTC)
    made = [ids.new_ordered_uuid(at) for _ in range(3 * ids.BLOCK // 16 + 5)]
    assert len(set(made)) == len(made)
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in made)
    assert {u.hex[:12] for u in made} == {"017f22e279b0"}
    # 74 random bits: every hex digit after the time but the version digit takes several
    # values (the variant digit four: 8, 9, a, b).
    positions = list(zip(*(u.hex for u in made), strict=True))
    assert [len(set(column)) > 1 for column in positions[12:]] == [False] + [True] * 19
    assert set(positions[16]) == set("89ab")


def test_ordered_uuids_sort_by_their_time_to_the_millisecond() -> None:
    start = datetime(2026, 11, 30, 12, 0, 0, 999000, tzinfo=UTC)
    times = [start + timedelta(milliseconds=n) for n in range(0, 3000, 7)]
    made = [ids.new_ordered_uuid(at) for at in times]
    assert made == sorted(made)
    for at, made_id in zip(times, made, strict=True):
        millis = int(made_id.hex[:12], 16)
        assert datetime.fromtimestamp(millis / 1000, UTC) == at


def test_a_ticket_id_is_time_ordered_and_carries_its_creation_time(tenant: Tenant) -> None:
    """A ticket's id is a version-7 UUID made from its `createdAt`: tickets created later
    sort later, so the primary key index of `tickets` (and of `ticket_history`) takes new
    entries at its right edge."""
    created = [get_ticket(tenant, tenant.create().json()["objectId"]) for _ in range(5)]
    made = [uuid.UUID(ticket["id"]) for ticket in created]
    assert all(u.version == 7 for u in made)
    assert made == sorted(made)
    for ticket, made_id in zip(created, made, strict=True):
        at = datetime.fromisoformat(ticket["created_at"].replace("Z", "+00:00"))
        assert int(made_id.hex[:12], 16) == (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
            milliseconds=1
        )
