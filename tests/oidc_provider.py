"""A real OpenID Connect provider for the portal's browser tests: panva's `oidc-provider`
(npm, pinned in tests/oidc/package-lock.json, installed by `make test`), run by
tests/oidc/provider.mjs with one realm per `/realms/{realm}`, as Keycloak lays them out.

Its port is chosen first, so that the portal servers can be started with
TICKETING_OIDC_BASE_URL pointing at it before it is told their redirect URIs (it accepts no
others). `stats()` reads what it counted: token endpoint requests per realm and the
end-session requests received.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import free_port

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
SCRIPT = OIDC_DIR / "provider.mjs"
PACKAGE = OIDC_DIR / "node_modules" / "oidc-provider" / "package.json"


@dataclass
class Realm:
    """A realm of the provider: who can sign in (login -> the claims of their access token),
    what its access tokens are for, and which of the API's scopes it lets the client have."""

    users: dict[str, dict[str, Any]]
    audience: str = "ticketing-api"
    scopes: str = "tickets:read tickets:write"
    access_token_alg: str = "RS256"


@dataclass
class OidcProvider:
    """A provider process (or, before `start`, the port it will listen on)."""

    port: int
    work_dir: Path
    process: subprocess.Popen[bytes] | None = None
    realms: dict[str, Realm] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issuer(self, realm: str) -> str:
        return f"{self.base_url}/realms/{realm}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"oidc-provider-{self.port}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(
        self,
        *,
        realms: dict[str, Realm],
        client_id: str,
        portal_urls: list[str],
    ) -> None:
        """Starts the provider with a public client (PKCE, no secret) whose redirect and
        post-logout redirect URIs are those of the portals at `portal_urls`."""
        ensure_installed()
        self.realms = realms
        config = {
            "port": self.port,
            "client": {
                "client_id": client_id,
                "redirect_uris": [f"{url}/portal/oidc/callback" for url in portal_urls],
                "post_logout_redirect_uris": [f"{url}/portal/signed-out" for url in portal_urls],
            },
            "realms": {
                name: {
                    "users": realm.users,
                    "audience": realm.audience,
                    "scopes": realm.scopes,
                    "access_token_alg": realm.access_token_alg,
                }
                for name, realm in realms.items()
            },
        }
        config_path = self.work_dir / f"oidc-provider-{self.port}.json"
        config_path.write_text(json.dumps(config))
        node = shutil.which("node")
        assert node, "node is missing: run `make browser-deps`"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [node, str(SCRIPT), str(config_path)],
                cwd=OIDC_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        discovery = f"{self.issuer(next(iter(realms)))}/.well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited:\n{self.log()}")
            try:
                if httpx.get(discovery, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"oidc-provider did not answer:\n{self.log()}")

    def stats(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.base_url}/__stats", timeout=5)
        answer.raise_for_status()
        stats: dict[str, Any] = answer.json()
        return stats

    def token_requests(self, realm: str) -> int:
        return int(self.stats()["token_requests"].get(realm, 0))

    def end_sessions(self, realm: str) -> list[dict[str, Any]]:
        return [e for e in self.stats()["end_session"] if e["realm"] == realm]

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def ensure_installed() -> None:
    """`make test` installs the package (`make browser-deps`); a test run without it does
    the same install here."""
    if PACKAGE.exists():
        return
    npm = shutil.which("npm")
    assert npm, "npm is missing: run `make browser-deps`"
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(OIDC_DIR)],
        check=True,
        capture_output=True,
    )


def reserve(work_dir: Path) -> OidcProvider:
    """A provider-to-be on a free port, to give the portal servers its address first."""
    return OidcProvider(port=free_port(), work_dir=work_dir)
