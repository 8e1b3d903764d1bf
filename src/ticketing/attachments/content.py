"""What an upload may be: file types, their content checks, and safe file names.

A file's type is its extension, and its bytes must agree: binary types by their magic
numbers (so a zip bomb named `.png` is refused, its bytes are not a PNG), text types by
being UTF-8 without NUL characters. The check runs on the bytes as they stream in.
"""

from __future__ import annotations

import codecs
import unicodedata
from dataclasses import dataclass

MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class FileType:
    """An allowed kind of file: the Content-Type it is served with and how its bytes start
    (no magic: a text type, checked as UTF-8 without NUL)."""

    content_type: str
    magic: tuple[bytes, ...] = ()

    @property
    def is_text(self) -> bool:
        return not self.magic


_OLE2 = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
_ZIP = (b"PK\x03\x04",)
FILE_TYPES: dict[str, FileType] = {
    "pdf": FileType("application/pdf", (b"%PDF-",)),
    "doc": FileType("application/msword", _OLE2),
    "docx": FileType(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", _ZIP
    ),
    "xls": FileType("application/vnd.ms-excel", _OLE2),
    "xlsx": FileType("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _ZIP),
    "png": FileType("image/png", (b"\x89PNG\r\n\x1a\n",)),
    "jpg": FileType("image/jpeg", (b"\xff\xd8\xff",)),
    "jpeg": FileType("image/jpeg", (b"\xff\xd8\xff",)),
    "gif": FileType("image/gif", (b"GIF87a", b"GIF89a")),
    "txt": FileType("text/plain; charset=utf-8"),
    "csv": FileType("text/csv; charset=utf-8"),
}
_MAGIC_LENGTH = max(len(m) for t in FILE_TYPES.values() for m in t.magic)


def extension(name: str) -> str:
    """The lower-case extension of a file name (`""` when it has none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def clean_name(raw: str) -> str:
    """A file name as it is stored and served: no path (either separator), no control or
    format characters (bidi overrides included), no surrounding blanks, at most 255 bytes
    of UTF-8 with the extension kept. Empty when nothing usable is left."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    if name in (".", ".."):
        return ""
    encoded = name.encode()
    if len(encoded) <= MAX_NAME_BYTES:
        return name
    ext = extension(name)
    suffix = f".{ext}".encode() if ext else b""
    if len(suffix) >= MAX_NAME_BYTES // 2:
        suffix = b""
    stem = encoded[: MAX_NAME_BYTES - len(suffix)].decode(errors="ignore")
    return stem + suffix.decode()


class ContentCheck:
    """Fed a file's bytes in order; says at the end whether they fit the file's type."""

    def __init__(self, file_type: FileType) -> None:
        self.file_type = file_type
        self.head = b""
        self.problem: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")() if file_type.is_text else None

    def feed(self, data: bytes) -> None:
        if self.problem is not None:
            return
        if len(self.head) < _MAGIC_LENGTH:
            self.head += data[: _MAGIC_LENGTH - len(self.head)]
        if self._decoder is not None:
            if b"\x00" in data:
                self.problem = "Text files must not contain NUL characters"
                return
            try:
                self._decoder.decode(data)
            except UnicodeDecodeError:
                self.problem = "Text files must be UTF-8"

    def finish(self, size: int) -> str | None:
        """Why the content does not fit its type, or None when it does."""
        if size == 0:
            return "The file is empty"
        if self.problem is None and self._decoder is not None:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.problem = "Text files must be UTF-8"
        if (
            self.problem is None
            and self.file_type.magic
            and not any(self.head.startswith(magic) for magic in self.file_type.magic)
        ):
            self.problem = "The file's content does not match its extension"
        return self.problem


DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_TYPES = ("pdf", "doc", "docx", "xls", "xlsx", "png", "jpg", "jpeg", "gif", "txt", "csv")


@dataclass(frozen=True)
class AttachmentPolicy:
    """A tenant's upload policy (the configuration file's `attachments`)."""

    max_size: int = DEFAULT_MAX_SIZE
    allowed_types: tuple[str, ...] = DEFAULT_TYPES
