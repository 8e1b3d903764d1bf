"""Entity tags and the conditional headers that carry them, compared as RFC 9110 says.

A write (`If-Match`) needs strong comparison: a weak tag (`W/"…"`) never satisfies it, and
`*` is satisfied by any current representation. A read (`If-None-Match`) uses weak
comparison, so `W/"…"` and `"…"` name the same version there. Tags may be sent quoted, as
HTTP writes them, or bare, as the ticket's `etag` field shows them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EntityTag:
    """One entity tag: its opaque value and whether it is weak."""

    opaque: str
    weak: bool = False


@dataclass(frozen=True)
class EntityTags:
    """The value of an If-Match or If-None-Match header: `*`, or a list of tags."""

    any: bool
    tags: tuple[EntityTag, ...] = ()

    def names(self, opaque: str) -> bool:
        """Whether the header is `*` or lists a tag (weak or strong) with this opaque value."""
        return self.any or any(tag.opaque == opaque for tag in self.tags)

    def strong_match(self, current: str) -> bool:
        """If-Match: `*`, or a strong tag equal to the current one."""
        return self.any or any(not tag.weak and tag.opaque == current for tag in self.tags)

    def weak_match(self, current: str) -> bool:
        """If-None-Match: `*`, or a tag of either strength equal to the current one."""
        return self.names(current)


def parse_entity_tag(value: str) -> EntityTag:
    """One tag, `"x"`, `W/"x"` or bare `x`; surrounding whitespace is not part of it."""
    value = value.strip()
    weak = value.startswith("W/")
    if weak:
        value = value[2:]
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    return EntityTag(value, weak)


def parse_entity_tags(header: str) -> EntityTags:
    """An If-Match / If-None-Match header value (a comma-separated list, or `*`)."""
    parts = [part.strip() for part in header.split(",")]
    if "*" in parts:
        return EntityTags(any=True)
    return EntityTags(any=False, tags=tuple(parse_entity_tag(part) for part in parts if part))
