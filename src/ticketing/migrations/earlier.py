"""Earlier migrations as modules, for a migration that builds on one's SQL (the function it
replaces, or the statement it changes). Migration files are not importable by name (they
start with a digit), so each is loaded from its file."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

VERSIONS = Path(__file__).with_name("versions")


def load(name: str) -> ModuleType:
    """The migration module in versions/`name` (a file name such as 0012_x.py)."""
    path = VERSIONS / name
    spec = importlib.util.spec_from_file_location(f"_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
