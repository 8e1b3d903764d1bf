"""Random ids (ticketing.kit.ids): version-4 UUIDs and request ids, unique, also across a fork."""

from __future__ import annotations

import os
import re
import uuid

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
