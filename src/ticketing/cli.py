"""The `ticketing` command: serve, migrate, load, token, demo, gc."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import os
import shlex
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ticketing.auth.dev_issuer import DEFAULT_SCOPE, load_or_create_dev_key, mint_token
from ticketing.catalog.config_file import ConfigError, read_config
from ticketing.catalog.loader import load_config
from ticketing.config import Settings, comma_list, get_settings
from ticketing.demo import DEMO_CONFIG, DEMO_REALM, DEMO_TENANT
from ticketing.kit import app_role, migrate
from ticketing.kit.db import create_engine, create_sessionmaker, transaction
from ticketing.kit.http_protocol import EnvelopeHttpToolsProtocol


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    return create_engine(settings.resolved_database_url, pool_size=2)


async def _migrate(settings: Settings) -> str | None:
    engine = _engine(settings)
    try:
        await migrate.upgrade(engine, settings.db_role or None)
        return await migrate.current_revision(engine)
    finally:
        await engine.dispose()


async def _schema_state(settings: Settings) -> tuple[str | None, str | None]:
    engine = _engine(settings)
    try:
        return await migrate.current_revision(engine), migrate.head_revision()
    finally:
        await engine.dispose()


async def _role_problem(settings: Settings) -> str | None:
    """Why the service could not work as its database role, or None when it can."""
    if not settings.db_role:
        return None
    engine = create_engine(settings.resolved_database_url, pool_size=1, role=settings.db_role)
    try:
        if engine.dialect.name != "postgresql":
            return None
        return await app_role.problem(engine)
    finally:
        await engine.dispose()


async def _load(settings: Settings, path: Path) -> list[tuple[str, str]]:
    config = read_config(path)
    engine = _engine(settings)
    try:
        if not await migrate.is_up_to_date(engine):
            raise SystemExit(
                "ticketing: the database schema is not up to date; run `ticketing migrate`"
            )
        async with transaction(create_sessionmaker(engine)) as session:
            return [(t, o) for t, o in await load_config(session, config)]
    finally:
        await engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    revision = asyncio.run(_migrate(get_settings()))
    print(f"database schema at revision {revision}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    try:
        outcomes = asyncio.run(_load(get_settings(), Path(args.file)))
    except ConfigError as exc:
        print("ticketing: configuration rejected, nothing was written:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    for tenant_id, outcome in outcomes:
        print(f"tenant {tenant_id}: {outcome}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from ticketing.attachments.tasks import run_gc
    from ticketing.state import blob_store

    settings = get_settings()
    if args.ttl is not None:
        settings = settings.model_copy(update={"upload_ttl": args.ttl})
    report = asyncio.run(run_gc(settings, blob_store(settings)))
    if not report.ran:
        print("garbage collection skipped: another process is running one")
        return 0
    print(
        f"removed {report.uploads} unbound uploads, {report.blobs} unreferenced blobs, "
        f"{report.spooled} interrupted uploads"
    )
    return 0


def _split(value: str | None) -> list[str] | None:
    return comma_list(value) if value is not None else None


def _say(message: str) -> None:
    print(f"ticketing: {message}", file=sys.stderr, flush=True)


def _trusted_issuer(settings: Settings) -> str:
    """Which tokens a server with these settings accepts, in words."""
    if settings.oidc_base_url:
        return f"trusting tokens from {settings.oidc_base_url}/realms/<realm>"
    return f"trusting tokens signed with the development key {settings.dev_key_path}"


DEV_SIGN_IN_WITH_PROVIDER = (
    "TICKETING_DEV_SIGN_IN=true cannot be used with TICKETING_OIDC_BASE_URL: the development "
    "sign-in mints tokens the identity provider never issued; unset one of them"
)
DEV_SIGN_IN_WARNING = (
    "WARNING: the development sign-in is on (TICKETING_DEV_SIGN_IN): {base}/portal/sign-in "
    "mints tokens of the demo tenant's users, its admin too, for anyone who can reach this "
    "port; never expose it"
)
API_ONLY = (
    "serving the API only: the portal's sign-in is off (set TICKETING_OIDC_BASE_URL, or "
    "TICKETING_DEV_SIGN_IN=true for the development sign-in)"
)


def _portal_sign_in(settings: Settings, base_url: str) -> str:
    """What the portal's sign-in is on a server with these settings, in words."""
    if settings.oidc_base_url:
        return f"the portal signs in through {settings.oidc_base_url}/realms/<realm>"
    if settings.dev_sign_in:
        return DEV_SIGN_IN_WARNING.format(base=base_url)
    return API_ONLY


def _url_of(host: str, port: int) -> str:
    host_for_url = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    if ":" in host_for_url:
        host_for_url = f"[{host_for_url}]"
    return f"http://{host_for_url}:{port}"


def cmd_token(args: argparse.Namespace) -> int:
    settings = get_settings()
    key = load_or_create_dev_key(settings.dev_key_path)
    _say(f"signed with the development key {settings.dev_key_path}")
    print(
        mint_token(
            key,
            issuer_base=settings.dev_issuer_url,
            tenant_id=args.tenant,
            realm=args.realm,
            username=args.user,
            email=args.email,
            first_name=args.first_name,
            last_name=args.last_name,
            roles=_split(args.roles),
            scope=args.scope,
            teams=_split(args.teams),
            ttl=args.ttl,
        )
    )
    return 0


def _listen(host: str, port: int) -> socket.socket | None:
    """A socket bound to host:port and listening, or None (said on stderr) when that fails.

    Binding before anything is printed means a taken port is reported before a token and a
    curl aimed at some other server are; handing this very socket to uvicorn leaves no moment
    in which another process could take the port in between.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            _say(
                f"port {port} on {host} is already in use; stop what is using it, or choose "
                "another port with --port (`make run PORT=8010`)"
            )
        else:
            _say(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return None
    return sock


def _serve(
    host: str, port: int, workers: int, log_level: str, sock: socket.socket | None = None
) -> None:
    import uvicorn

    # The workers configure their logging from the environment (ticketing.kit.logs).
    os.environ["TICKETING_LOG_LEVEL"] = log_level
    get_settings.cache_clear()
    settings = get_settings()
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "workers": workers,
        "loop": "uvloop",
        # httptools, answering unparsable requests with the error envelope, and bounding
        # how long a request's headers and body may take to come.
        "http": functools.partial(
            EnvelopeHttpToolsProtocol,
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
        ),
        "log_level": log_level,
        # The app logs JSON lines, one per request (ticketing.kit.logs).
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
        # An idle keep-alive connection is kept longer than clients and load balancers keep
        # theirs (by default: HTTP clients 5-90 s, balancers commonly 60 s), so they close it
        # first: a client sending on a connection the server is closing at that moment gets a
        # reset, and a create it sent is neither answered nor carried out.
        "timeout_keep_alive": settings.keep_alive_timeout,
        "timeout_graceful_shutdown": 30,
    }
    if workers > 1:
        # The supervisor drains its workers on SIGTERM and exits 0.
        uvicorn.run("ticketing.app:create_app", **options)
        return

    class DrainingServer(uvicorn.Server):
        """Exits 0 once a SIGTERM or SIGINT has drained it; uvicorn's own server re-raises
        the signal after draining, which makes the exit status -15."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
            yield

    # Event streams never end by themselves: the application ends them when the signal
    # arrives (ticketing.events.hub.end_streams_on_signals), here and in every worker of
    # --workers N, so that draining does not wait for its timeout; clients resume elsewhere
    # with Last-Event-ID.
    DrainingServer(uvicorn.Config("ticketing.app:create_app", **options)).run(
        sockets=[sock] if sock else None
    )


def cmd_serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    from ticketing.portal.schemas import PortalSettings

    PortalSettings()  # refused now rather than at the portal's first page
    if settings.dev_sign_in and settings.oidc_base_url:
        _say(DEV_SIGN_IN_WITH_PROVIDER)
        return 2
    if args.migrate:
        asyncio.run(_migrate(settings))
    else:
        current, head = asyncio.run(_schema_state(settings))
        if current != head:
            print(
                f"ticketing: the database schema is at {current or 'nothing'}, this version "
                f"needs {head}; run `ticketing migrate` (or `ticketing serve --migrate`)",
                file=sys.stderr,
            )
            return 2
    problem = asyncio.run(_role_problem(settings))
    if problem:
        print(
            f"ticketing: cannot work as database role {settings.db_role!r} ({problem}); "
            "`ticketing migrate` creates it and grants it to the login user, "
            "or set TICKETING_DB_ROLE",
            file=sys.stderr,
        )
        return 2
    _say(_trusted_issuer(settings))
    _say(_portal_sign_in(settings, _url_of(args.host, args.port)))
    _serve(args.host, args.port, args.workers, args.log_level)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.print_config:
        print(DEMO_CONFIG.read_text(), end="")
        return 0
    settings = get_settings()
    if settings.dev_sign_in and settings.oidc_base_url:
        _say(DEV_SIGN_IN_WITH_PROVIDER)
        return 2
    if not settings.oidc_base_url:
        # The demo signs in with one click (to the demo tenant only).
        os.environ["TICKETING_DEV_SIGN_IN"] = "true"
        get_settings.cache_clear()
        settings = get_settings()
    sock = _listen(args.host, args.port)
    if sock is None:
        return 1
    asyncio.run(_migrate(settings))
    for tenant_id, outcome in asyncio.run(_load(settings, DEMO_CONFIG)):
        print(f"demo tenant {tenant_id}: {outcome}")
    key = load_or_create_dev_key(settings.dev_key_path)
    _say(f"data folder {settings.data_dir}")
    _say(_trusted_issuer(settings))
    base_url = _url_of(args.host, args.port)
    _say(_portal_sign_in(settings, base_url))
    token = mint_token(
        key,
        issuer_base=settings.dev_issuer_url,
        tenant_id=DEMO_TENANT,
        realm=DEMO_REALM,
        username="user@example.com",
        email="user@example.com",
        first_name="Jane",
        last_name="Doe",
        roles=["ticket_agent", "ticket_user"],
        scope=DEFAULT_SCOPE,
        teams=["james"],
        ttl=args.ttl,
    )
    body = (
        '{"source": "api", "summary": "Hardware request - new laptop", "ticketBody": {'
        '"offerId": "23629", '
        '"ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53": "Need a replacement laptop", '
        '"7f111983-1013-41be-a056-989fff018bb5": '
        '"<p>Current laptop battery no longer holds charge.</p>", '
        '"711ea9e6-1b73-4070-9eb2-941803f7f5d4": "<2week"}, '
        '"attachments": {}, "ticketRelation": null}'
    )
    url = f"{base_url}/api/v2/ticketing/ticket/create/james/16910?type=template&module=ticketing"
    exports = "\n".join(
        f"export {name}={shlex.quote(value)}"
        for name, value in (
            ("BASE", base_url),
            ("TENANT", DEMO_TENANT),
            ("REALM", DEMO_REALM),
            ("TOKEN", token),
        )
    )
    if settings.database_url is None:
        afresh = f"stop it and delete {settings.data_dir / 'ticketing.db'} (`make reset`)"
    else:
        afresh = "stop it and empty the database"
    print(
        f"""
Demo service on {base_url} (database: {settings.resolved_database_url})
Ctrl-C stops it. Its tickets are kept, and the next run numbers on from the last display ID;
to start afresh, {afresh}.

Paste into another terminal (the README's examples use these; the token is valid \
{args.ttl // 3600} h):
{exports}

Create a ticket:
curl --request POST \\
  --url {shlex.quote(url)} \\
  --header 'accept: application/json' \\
  --header 'authorization: Bearer {token}' \\
  --header 'content-type: application/json' \\
  --header 'x-tenantid: {DEMO_TENANT}' \\
  --header 'realmname: {DEMO_REALM}' \\
  --header 'issupportrequest: false' \\
  --data {shlex.quote(body)}
""",
        flush=True,
    )
    # --- web portal: its address and demo users ---
    from ticketing.portal.schemas import demo_banner

    print(demo_banner(base_url, dev_sign_in=settings.dev_sign_in), flush=True)
    # --- end of web portal ---
    _serve(args.host, args.port, 1, args.log_level, sock)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticketing", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    load = sub.add_parser("load", help="load a tenant configuration file (YAML or JSON)")
    load.add_argument("file")
    load.set_defaults(func=cmd_load)

    token = sub.add_parser("token", help="mint a token signed by the development issuer")
    token.add_argument("--tenant", required=True)
    token.add_argument("--realm", required=True)
    token.add_argument("--user", required=True)
    token.add_argument("--email")
    token.add_argument("--first-name")
    token.add_argument("--last-name")
    token.add_argument("--roles", default="ticket_agent", help="comma-separated realm roles")
    token.add_argument("--scope", default=DEFAULT_SCOPE)
    token.add_argument("--teams", help="comma-separated team slugs")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)

    gc = sub.add_parser(
        "gc", help="remove uploads never bound to a ticket and blobs nothing references"
    )
    gc.add_argument("--ttl", type=float, help="age in seconds (default TICKETING_UPLOAD_TTL, 24 h)")
    gc.set_defaults(func=cmd_gc)

    demo = sub.add_parser("demo", help="load the demo tenant, print a token and a curl, serve")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--ttl", type=int, default=24 * 3600)
    demo.add_argument("--log-level", default="info")
    demo.add_argument(
        "--print-config",
        action="store_true",
        help="print the demo tenant's configuration file and exit",
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        code = args.func(args)
    except ValidationError as exc:
        # A setting from the environment that cannot be used: one line a setting.
        prefix = "TICKETING_PORTAL_" if exc.title == "PortalSettings" else "TICKETING_"
        for error in exc.errors():
            name = prefix + "_".join(str(p) for p in error["loc"]).upper()
            _say(f"{name}: {error['msg'].removeprefix('Value error, ')}")
        code = 2
    sys.exit(code)
