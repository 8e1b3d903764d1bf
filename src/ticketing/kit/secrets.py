"""The service's secret: one key the processes behind a load balancer share, from which the
keys of each use are derived (the portal's cookie signature, stream event ids)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path


def write_once(path: Path, content: bytes) -> None:
    """Creates `path` (mode 0600) holding `content` unless it exists. Processes racing here
    each write theirs; the first link wins for all of them, so all read the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_secret(path: Path) -> str:
    """Reads the secret at `path`, creating it (mode 0600) the first time."""
    if not path.exists():
        write_once(path, secrets.token_urlsafe(48).encode())
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds no usable secret")
    return secret


def derive_key(secret: str, purpose: str, size: int = 32) -> bytes:
    """A key for one `purpose`, derived from the service secret (HMAC-SHA256, so that a key
    of one use tells nothing of another's)."""
    key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return key[:size]
