"""Lower case in SQL that treats every letter alike on both databases.

SQLite's own `lower()` changes ASCII letters only: a stored `MÜNCHEN` stays `mÜnchen`, and a
case-insensitive search for `münchen` (or for `MÜNCHEN` itself, once lowered) never finds it.
`unicode_lower(x)` is `lower(x)` on PostgreSQL (which lowers by the database's character
type) and, on SQLite, a function of the connection's that lowers as Python does
(`register_sqlite`). A search lowers both sides with it, so the two always agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

SQLITE_NAME = "ticketing_lower"


class unicode_lower(GenericFunction[str]):
    """`unicode_lower(x)`: x in lower case (see the module doc)."""

    type = String()
    inherit_cache = True


@compiles(unicode_lower)
def _compile(element: unicode_lower, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(unicode_lower, "sqlite")
def _compile_sqlite(element: unicode_lower, compiler: Any, **kw: Any) -> str:
    return f"{SQLITE_NAME}({compiler.process(element.clauses, **kw)})"


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def register_sqlite(dbapi_connection: Any) -> None:
    """Gives a new SQLite connection the function `unicode_lower` compiles to."""
    dbapi_connection.create_function(SQLITE_NAME, 1, _lower, deterministic=True)
