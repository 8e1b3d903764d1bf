"""Unit tests of the dense upload rules: file names, content checks, Range headers."""

from __future__ import annotations

import pytest

from ticketing.attachments.content import FILE_TYPES, ContentCheck, clean_name, extension
from ticketing.attachments.service import RangeNotSatisfiable, byte_range, content_disposition


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("a\x00b\x1fc\x7f.txt", "abc.txt"),
        ("\u202etxt.exe", "txt.exe"),
        ("..", ""),
        ("/", ""),
        (" \t ", ""),
    ],
)
def test_clean_name(raw: str, clean: str) -> None:
    assert clean_name(raw) == clean


def test_a_long_name_keeps_its_extension_and_whole_characters() -> None:
    name = clean_name("界" * 100 + ".pdf")
    assert len(name.encode()) <= 255
    assert name.endswith(".pdf") and extension(name) == "pdf"
    assert name == "界" * 83 + ".pdf"


def test_extension_needs_a_stem() -> None:
    assert extension(".png") == ""
    assert extension("a.PNG") == "png"


def test_text_is_checked_across_chunk_boundaries() -> None:
    check = ContentCheck(FILE_TYPES["txt"])
    data = "Grüße".encode()
    for i in range(len(data)):
        check.feed(data[i : i + 1])
    assert check.finish(len(data)) is None


def test_magic_split_over_chunks_is_recognised() -> None:
    check = ContentCheck(FILE_TYPES["png"])
    for byte in b"\x89PNG\r\n\x1a\nrest":
        check.feed(bytes([byte]))
    assert check.finish(12) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 0)),
        ("bytes=5-", (5, 9)),
        ("bytes=-3", (7, 9)),
        ("bytes=-30", (0, 9)),
        ("bytes=2-100", (2, 9)),
        ("bytes=0-1,4-5", None),
        ("items=0-1", None),
        ("bytes=a-b", None),
    ],
)
def test_byte_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 10) == expected


@pytest.mark.parametrize("header", ["bytes=10-", "bytes=-0", "bytes=5-2"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        byte_range(header, 10)


def test_content_disposition_quotes_nothing_it_should_not() -> None:
    assert content_disposition('a"b\\c é.txt') == (
        "attachment; filename=\"a_b_c _.txt\"; filename*=UTF-8''a%22b%5Cc%20%C3%A9.txt"
    )
