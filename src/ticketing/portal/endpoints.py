"""The portal's pages under /portal/: sign-in, catalog, forms, tickets, the agent queue.

Every route runs inside PortalRoute, which refuses a Host other than the configured base
URL's, reads the session cookie, checks the CSRF token of every POST, turns errors into
pages, and puts the security headers (a Content-Security-Policy without inline script, no
framing) on every response.

Who can sign in: with an identity provider (TICKETING_OIDC_BASE_URL), people of its realms;
without one, the one-click development sign-in, only when asked for (`ticketing demo`, or
TICKETING_DEV_SIGN_IN=true) and only to the demo tenant, since it mints a token for whoever
clicks. With neither, the portal is off: every page says its sign-in is not configured.

Sessions are recorded server-side (ticketing.portal.sessions): the cookie names one, and a
page is served only while it is live, so sign-out, a tenant admin or the token's expiry ends
it for every copy of the cookie.

Sign-in through an identity provider never loops: a callback that fails shows why, with a
link to try again, instead of sending the browser back to the provider (which, still signed
in, would answer with a new code at once, and again). A token that cannot read tickets starts
no session; the page says which permission is missing and who can grant it. Sign-out ends the
provider's session too (RP-initiated logout) and lands on a signed-out page.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
import jwt
from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from ticketing.attachments.content import AttachmentPolicy
from ticketing.attachments.service import content_disposition
from ticketing.auth.access import AGENT_ROLES, Access, Action, app_state, caller_key
from ticketing.auth.tokens import Principal
from ticketing.demo import DEMO_TENANT
from ticketing.events import sse
from ticketing.kit.db import DATABASE_ERRORS, database_unavailable
from ticketing.kit.errors import (
    AuthenticationFailure,
    EtagMismatch,
    Forbidden,
    InputValidationFailure,
    NotFound,
    PayloadTooLarge,
    PermissionFailure,
    RequestTimeout,
    ServiceUnavailable,
    TenantNotFound,
    TicketingError,
)
from ticketing.kit.numbers import parse_digits
from ticketing.kit.requests import read_body
from ticketing.portal import service
from ticketing.portal.controls import html_input_type
from ticketing.portal.oidc import OidcClient, Tokens, provider_error
from ticketing.portal.schemas import DEMO_USERS, PortalSettings
from ticketing.portal.session import (
    SIGN_IN_COOKIE,
    SessionCodec,
    SessionCookie,
    clear_cookies,
)
from ticketing.state import AppState

log = logging.getLogger("ticketing.portal")

HERE = Path(__file__).resolve().parent
PREFIX = "/portal"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP.format(form_action="'self'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The OIDC callback URL carries the authorization code: never send it elsewhere.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
STATIC = {
    path.name: (path.read_bytes(), STATIC_TYPES[path.suffix])
    for path in (HERE / "static").iterdir()
    if path.suffix in STATIC_TYPES
}
MAX_FORM_FIELDS = 1000

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals["input_type"] = html_input_type
templates.filters["num"] = lambda v: int(v) if isinstance(v, float) and v.is_integer() else v


class PortalState:
    """What the portal keeps per application: settings, cookie signer, how people sign in."""

    def __init__(self, app_state: AppState) -> None:
        self.settings = PortalSettings()
        self.codec = SessionCodec(app_state.secret)
        base = app_state.settings.oidc_base_url
        self.oidc = (
            OidcClient(
                base_url=base,
                client_id=self.settings.client_id,
                scopes=self.settings.scopes,
                timeout=app_state.settings.jwks_timeout,
            )
            if base
            else None
        )
        # Never beside a provider (`ticketing serve` refuses both).
        self.dev_sign_in = self.oidc is None and app_state.settings.dev_sign_in
        self.enabled = self.oidc is not None or self.dev_sign_in
        self.host = host_of(self.settings.base_url) if self.settings.base_url else None
        self.headers = security_headers(base)


def host_of(base_url: str) -> tuple[str, int] | None:
    """The host and port a base URL names (the scheme's default port when it names none)."""
    try:
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


def _host_matches(request: Request, expected: tuple[str, int] | None, base_url: str) -> bool:
    """Whether the request's Host header names the configured base URL's host and port."""
    if expected is None:
        return False
    header = request.headers.get("host", "")
    scheme = urlsplit(base_url).scheme
    return bool(header) and host_of(f"{scheme}://{header}") == expected


def security_headers(oidc_base_url: str | None) -> dict[str, str]:
    """The headers of every portal response. With an identity provider, the sign-out form's
    redirect goes on to the provider's logout, so `form-action` names the provider too."""
    headers = dict(SECURITY_HEADERS)
    if oidc_base_url:
        parts = urlsplit(oidc_base_url)
        origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        headers["Content-Security-Policy"] = CSP.format(form_action=f"'self' {origin}")
    return headers


def portal_state(request: Request) -> PortalState:
    state: PortalState | None = getattr(request.app.state, "portal", None)
    if state is None:
        state = request.app.state.portal = PortalState(app_state(request))
    return state


class PortalRoute(APIRoute):
    """Session, CSRF, error pages and security headers around every portal page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def portal_handler(request: Request) -> Response:
            started = time.perf_counter()
            portal = portal_state(request)
            session = portal.codec.read(request)
            fresh = session is None
            request.state.portal_session = session = session or SessionCookie.anonymous()
            try:
                base_url = portal.settings.base_url
                if base_url and not _host_matches(request, portal.host, base_url):
                    # Addresses sent to the identity provider are the base URL's; a request
                    # for another host is not the portal's.
                    raise InputValidationFailure(
                        {"host": [f"The portal is served at {base_url.rstrip('/')}{PREFIX}/"]},
                        "This address is not the portal's",
                    )
                if not portal.enabled and self.endpoint is not static:
                    raise NotFound(
                        "The portal's sign-in is not configured on this server "
                        "(it serves the API only)"
                    )
                if request.method == "POST" and _takes_files(self.endpoint, request):
                    # The route reads the form as it streams in and checks its CSRF token
                    # before it keeps anything.
                    request.state.form = None
                elif request.method == "POST":
                    form = await _read_form(request)
                    request.state.form = form
                    if not session.csrf_matches(_first(form, "csrf_token")):
                        raise Forbidden("The form has expired or did not come from this site")
                response = await handler(request)
            except TicketingError as exc:
                response = _error_page(request, exc)
            except DATABASE_ERRORS as exc:
                if not database_unavailable(exc):
                    log.exception("portal page failed")
                failure = (
                    ServiceUnavailable("The database is unavailable; retry shortly")
                    if database_unavailable(exc)
                    else TicketingError()
                )
                response = _error_page(request, failure)
            except Exception:
                log.exception("portal page failed")
                response = _error_page(request, TicketingError())
            if fresh and "set-cookie" not in response.headers:
                portal.codec.write(request, response, session)
            for name, value in portal.headers.items():
                response.headers.setdefault(name, value)
            elapsed = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"
            return response

        return portal_handler


router = APIRouter(prefix=PREFIX, route_class=PortalRoute, include_in_schema=False)


FILE_FORMS: set[Callable[..., Any]] = set()


def takes_files(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a route whose form may be multipart/form-data (it has file controls): it reads
    the form itself and must check the CSRF token before it keeps anything."""
    FILE_FORMS.add(endpoint)
    return endpoint


def _takes_files(endpoint: Callable[..., Any], request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "multipart/form-data" and endpoint in FILE_FORMS


async def _read_form(request: Request) -> dict[str, list[str]]:
    body = await read_body(request)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise InputValidationFailure({"body": ["Forms are sent URL-encoded"]})
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputValidationFailure({"body": ["The form could not be read"]}) from exc


def _first(form: Mapping[str, Sequence[str]], key: str) -> str:
    values = form.get(key)
    return values[0] if values else ""


def _form(request: Request) -> dict[str, list[str]]:
    form: dict[str, list[str]] = request.state.form
    return form


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Renders a page; every value is escaped unless a service function sanitized it."""
    session: SessionCookie = request.state.portal_session
    principal: Principal | None = getattr(request.state, "principal", None)
    page = templates.get_template(template).render(
        csrf_token=session.csrf,
        user=principal,
        agent=principal is not None and service.is_agent(principal),
        path=request.url.path,
        Markup=Markup,
        **context,
    )
    return HTMLResponse(page, status_code=status_code)


_ERROR_TITLES = {
    400: "The request could not be read",
    403: "Not allowed",
    404: "Not found",
    408: "Too slow",
    413: "Too large",
    503: "Temporarily unavailable",
}


def _error_page(request: Request, exc: TicketingError) -> Response:
    if isinstance(exc, AuthenticationFailure):
        # The token expired or is no longer trusted: the session is over.
        redirect = RedirectResponse(_sign_in_url(request), status_code=303)
        clear_cookies(request, redirect)
        return redirect
    status = exc.status
    if isinstance(exc, PermissionFailure | Forbidden):
        status = 403
    elif isinstance(exc, NotFound | TenantNotFound):
        status = 404
    elif not isinstance(
        exc, InputValidationFailure | PayloadTooLarge | RequestTimeout | ServiceUnavailable
    ):
        status = 500
    messages = (
        [m for ms in exc.reason.values() for m in ms]
        if isinstance(exc, InputValidationFailure)
        else []
    )
    response = render(
        request,
        "error.html",
        status_code=status,
        title=_ERROR_TITLES.get(status, "Something went wrong"),
        message=exc.message if status < 500 else "Something went wrong; try again shortly.",
        messages=messages,
    )
    response.headers.update(exc.headers())
    return response


def _sign_in_url(request: Request) -> str:
    if portal_state(request).oidc is not None:
        return f"{PREFIX}/oidc/start"
    return f"{PREFIX}/sign-in"


async def _signed_in(request: Request, action: Action = Action.READ) -> Access:
    """The signed-in user admitted to their tenant, or AuthenticationFailure (to sign-in):
    the cookie's session must be live, and its token pass the API's verifier."""
    cookie: SessionCookie = request.state.portal_session
    if cookie.session_id is None or cookie.tenant_id is None:
        raise AuthenticationFailure("Not signed in")
    state = app_state(request)
    opened = await service.open_session(state, cookie.tenant_id, cookie.session_id)
    if opened is None or not opened.live:
        raise AuthenticationFailure("The session has ended")
    principal = await service.verify_token(state, opened.token)
    if principal.tenant_uuid != cookie.tenant_id:
        raise AuthenticationFailure("The session has ended")
    request.state.principal = principal
    request.state.session_token = opened.token
    # Its writes are the same caller's as through the API (read your writes on replicas).
    request.state.caller = caller_key(principal)
    return await service.admit(state, principal, action)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


# --- sign-in -----------------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> Response:
    """Signed in: the queue for agents, the catalog for requesters; else the sign-in."""
    cookie: SessionCookie = request.state.portal_session
    if cookie.session_id is None:
        return _redirect(_sign_in_url(request))
    access = await _signed_in(request)
    return _redirect(
        f"{PREFIX}/queue" if service.is_agent(access.principal) else f"{PREFIX}/catalog"
    )


def _sign_in_tenant(request: Request) -> str:
    return (
        _uuid_or_none(request.query_params.get("tenant", ""))
        or portal_state(request).settings.tenant
    )


def _dev_sign_in_tenant(request: Request, tenant: str) -> str:
    """The tenant of a development sign-in: it exists only when asked for, and signs in to
    the demo tenant alone (it mints an admin's token for whoever clicks)."""
    if not portal_state(request).dev_sign_in:
        raise NotFound()
    if tenant != DEMO_TENANT:
        raise Forbidden("The development sign-in signs in to the demo tenant only")
    return tenant


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    """One-click sign-in as a demo user of the demo tenant; only with the development
    sign-in on."""
    tenant = _dev_sign_in_tenant(request, _sign_in_tenant(request))
    catalog = await service.tenant_catalog(app_state(request), tenant)
    return render(
        request, "sign_in.html", users=DEMO_USERS, tenant=tenant, tenant_name=catalog.name
    )


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Mints a development token for the chosen demo user and starts the session."""
    portal = portal_state(request)
    form = _form(request)
    tenant = _dev_sign_in_tenant(
        request, _uuid_or_none(_first(form, "tenant")) or portal.settings.tenant
    )
    user = next((u for u in DEMO_USERS if u.key == _first(form, "user")), None)
    if user is None:
        raise InputValidationFailure({"user": ["Choose one of the listed users"]})
    state = app_state(request)
    catalog = await service.tenant_catalog(state, tenant)
    token, principal = await service.dev_sign_in(
        state, catalog=catalog, user=user, ttl=portal.settings.session_ttl
    )
    return await _start_session(request, token, principal)


async def _start_session(
    request: Request, token: str, principal: Principal, id_token: str | None = None
) -> Response:
    """Records the session and gives the browser its id (the session it had is ended)."""
    state = app_state(request)
    previous: SessionCookie = request.state.portal_session
    if previous.session_id is not None and previous.tenant_id is not None:
        await service.end_session(state, previous.tenant_id, previous.session_id)
    expires = _token_expiry(token)
    session_id = await service.start_session(
        state, principal, token=token, id_token=id_token, expires=expires
    )
    assert principal.tenant_uuid is not None  # start_session refuses a token without one
    response = _redirect(f"{PREFIX}/")
    portal_state(request).codec.write(
        request,
        response,
        SessionCookie.signed_in(session_id, principal.tenant_uuid),
        max_age=expires - int(time.time()),
    )
    request.state.principal = principal
    return response


def _token_expiry(token: str) -> int:
    # Read after verification: the verifier has checked the signature and exp.
    return int(_claims(token)["exp"])


def _claims(token: str) -> dict[str, Any]:
    """A token's claims, unverified: for one the verifier has accepted, or to say why it
    did not (never to decide who someone is)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """Ends the session (every copy of its cookie is refused from now on), and with an
    identity provider its session there too: the browser goes to the realm's
    end_session_endpoint (with the ID token as `id_token_hint`), which sends it back to the
    signed-out page."""
    portal = portal_state(request)
    cookie: SessionCookie = request.state.portal_session
    ended = None
    if cookie.session_id is not None and cookie.tenant_id is not None:
        ended = await service.end_session(app_state(request), cookie.tenant_id, cookie.session_id)
    tenant = str(cookie.tenant_id) if ended is not None else None
    target = f"{PREFIX}/signed-out" + (f"?{urlencode({'tenant': tenant})}" if tenant else "")
    if portal.oidc is not None and ended is not None:
        realm, id_token = ended.realm, ended.id_token
        try:
            url = await portal.oidc.logout_url(
                realm,
                id_token=id_token,
                post_logout_redirect_uri=_external_url(request, "/signed-out", "signed_out"),
                state=tenant,
            )
        except ServiceUnavailable:
            query = {"provider": "unreachable", **({"tenant": tenant} if tenant else {})}
            url = f"{PREFIX}/signed-out?{urlencode(query)}"
        target = url or target
    response = _redirect(target)
    clear_cookies(request, response)
    return response


@router.get("/signed-out", name="signed_out")
async def signed_out(request: Request) -> Response:
    """Where a sign-out lands (from the provider's logout, with the tenant as its `state`)."""
    portal = portal_state(request)
    params = request.query_params
    tenant = _uuid_or_none(params.get("tenant", "") or params.get("state", ""))
    sign_in = _sign_in_url(request)
    if tenant:
        sign_in += f"?{urlencode({'tenant': tenant})}"
    return render(
        request,
        "signed_out.html",
        sign_in=sign_in,
        provider=portal.oidc is not None,
        unreachable=params.get("provider") == "unreachable",
    )


def _external_url(request: Request, path: str, route: str) -> str:
    """An address of the portal as the identity provider must send the browser back to it."""
    base = portal_state(request).settings.base_url
    if base:
        return f"{base.rstrip('/')}{PREFIX}{path}"
    return str(request.url_for(route))


@router.get("/oidc/start")
async def oidc_start(request: Request) -> Response:
    """Sends the browser to the tenant realm's authorization endpoint (code flow, PKCE)."""
    portal = portal_state(request)
    if portal.oidc is None:
        raise NotFound()
    tenant = _sign_in_tenant(request)
    catalog = await service.tenant_catalog(app_state(request), tenant)
    start = await portal.oidc.start(
        catalog.realm, _external_url(request, "/oidc/callback", "oidc_callback")
    )
    response = RedirectResponse(start.url, status_code=303)
    portal.codec.write_sign_in(
        request,
        response,
        {
            "state": start.state,
            "verifier": start.verifier,
            "realm": catalog.realm,
            "tenant": tenant,
        },
    )
    return response


@router.get("/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    """Exchanges the code, verifies the token like the API does, checks that it can read
    tickets, and starts the session. Any failure is a page saying why, with a link to try
    again: never a redirect back to the provider, which would answer at once with a new
    code for the same refused token, in a loop."""
    portal = portal_state(request)
    if portal.oidc is None:
        raise NotFound()
    flow = portal.codec.read_sign_in(request)
    tenant = (flow or {}).get("tenant") or _sign_in_tenant(request)
    try:
        return await _finish_sign_in(request, portal.oidc, flow)
    except (AuthenticationFailure, Forbidden, TenantNotFound, ServiceUnavailable) as exc:
        status = 503 if isinstance(exc, ServiceUnavailable) else 403
        response = render(
            request,
            "sign_in_failed.html",
            status_code=status,
            reason=exc.message,
            retry=f"{PREFIX}/oidc/start?{urlencode({'tenant': tenant})}",
        )
        # The failed attempt is over: its state and verifier are not kept. A session this
        # browser already had is left as it was.
        response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
        return response


async def _finish_sign_in(
    request: Request, oidc: OidcClient, flow: dict[str, str] | None
) -> Response:
    params = request.query_params
    state_param = params.get("state", "")
    if flow is None or not state_param or state_param != flow.get("state"):
        raise Forbidden(
            "The sign-in could not be completed: it was not started in this browser, "
            "or took longer than ten minutes"
        )
    if params.get("error"):
        raise AuthenticationFailure(
            "The identity provider did not sign you in"
            + provider_error(params.get("error"), params.get("error_description"))
        )
    code = params.get("code", "")
    if not code:
        raise Forbidden("The identity provider sent no authorization code")
    tokens = await oidc.exchange(
        flow["realm"],
        code=code,
        verifier=flow["verifier"],
        redirect_uri=_external_url(request, "/oidc/callback", "oidc_callback"),
    )
    state = app_state(request)
    try:
        principal = await service.verify_token(state, tokens.access_token)
    except AuthenticationFailure as exc:
        raise AuthenticationFailure(
            _why_refused(request, oidc, flow["realm"], tokens.access_token, exc.message)
        ) from exc
    if principal.realm != flow["realm"] or principal.tenant_id != flow["tenant"]:
        raise Forbidden("The identity provider signed you in to another tenant")
    try:
        await service.admit(state, principal, Action.READ)
    except PermissionFailure:
        return await _missing_permission(request, oidc, principal, tokens, flow)
    response = await _start_session(request, tokens.access_token, principal, tokens.id_token)
    response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
    return response


def _why_refused(request: Request, oidc: OidcClient, realm: str, token: str, reason: str) -> str:
    """The verifier's reason, and what in the token made it so when that is the issuer or
    the audience (the usual mistakes of a provider's or this service's configuration)."""
    claims = _claims(token)
    expected = oidc.issuer(realm)
    issuer = claims.get("iss")
    if issuer != expected:
        return (
            f"The service refused the identity provider's access token ({reason}): it was "
            f"issued by {str(issuer)[:200]}, and this service trusts {expected}"
        )
    audience = app_state(request).settings.oidc_audience
    found = claims.get("aud")
    audiences = [found] if isinstance(found, str) else found if isinstance(found, list) else []
    if audience and audience not in audiences:
        named = ", ".join(str(a)[:200] for a in audiences[:5]) or "none"
        return (
            f"The service refused the identity provider's access token ({reason}): it is "
            f"for the audience {named}, and this service accepts only {audience}"
        )
    return f"The service refused the identity provider's access token ({reason})"


async def _missing_permission(
    request: Request,
    oidc: OidcClient,
    principal: Principal,
    tokens: Tokens,
    flow: dict[str, str],
) -> Response:
    """The page of a sign-in whose token cannot read tickets: no session is started."""
    missing_scope = not (principal.scopes & Action.READ.allowed_scopes())
    try:
        switch = await oidc.logout_url(
            principal.realm,
            id_token=None,
            post_logout_redirect_uri=_external_url(request, "/signed-out", "signed_out"),
            state=flow["tenant"],
        )
    except ServiceUnavailable:
        switch = None
    response = render(
        request,
        "missing_permission.html",
        status_code=403,
        who=principal.email or principal.username,
        realm=principal.realm,
        client_id=oidc.client_id,
        asked=oidc.scopes,
        granted=" ".join(sorted(principal.scopes)),
        missing_scope=missing_scope,
        missing_role=not (principal.roles & Action.READ.roles),
        roles=sorted(Action.READ.roles),
        agent_roles=sorted(AGENT_ROLES),
        retry=f"{PREFIX}/oidc/start?{urlencode({'tenant': flow['tenant']})}",
        switch=switch,
    )
    # Whoever was signed in here before, the person at this browser is now someone else.
    clear_cookies(request, response)
    return response


# --- requester ---------------------------------------------------------------------------


@router.get("/catalog")
async def catalog(request: Request) -> Response:
    """The offers of the user catalog, searchable."""
    access = await _signed_in(request, Action.READ_CATALOG)
    search = request.query_params.get("q", "")[:200]
    offers = service.user_offers(access, search)
    return render(request, "catalog.html", offers=offers, search=search)


@router.get("/offers/{offer_id}/new")
async def new_ticket_form(request: Request, offer_id: str) -> Response:
    """The form generated from the offer's ticket type."""
    access = await _signed_in(request, Action.READ_CATALOG)
    form = service.offer_form(access, offer_id)
    return _ticket_form(request, form, kept=None, errors={}, policy=access.catalog.attachments)


def _ticket_form(
    request: Request,
    form: service.OfferForm,
    *,
    kept: dict[str, Any] | None,
    errors: dict[str, list[str]],
    policy: AttachmentPolicy,
    summary: str = "",
    team: str = "",
    status_code: int = 200,
) -> Response:
    fields = service.form_fields(form.ticket_type, kept, errors, policy)
    field_ids = {f.id for f in fields}
    # Failures of keys other than fields (summary, team, offer) are listed at the top.
    general = [
        message
        for key, messages in errors.items()
        if key not in field_ids and key not in ("summary",)
        for message in messages
    ]
    return render(
        request,
        "ticket_form.html",
        status_code=status_code,
        offer=form.offer,
        ticket_type=form.ticket_type,
        teams=form.teams,
        fields=fields,
        summary=summary,
        team=team or (form.teams[0][0] if form.teams else ""),
        summary_errors=errors.get("summary", []),
        general_errors=general,
        error_count=sum(len(m) for m in errors.values()),
    )


@router.post("/offers/{offer_id}/new")
@takes_files
async def submit_ticket(request: Request, offer_id: str) -> Response:
    """Files the ticket; failures come back next to their fields, the input kept (files
    too: uploaded once, offered again ticked)."""
    access = await _signed_in(request, Action.CREATE)
    form = service.offer_form(access, offer_id)
    files = service.FormFiles()
    if request.state.form is None:  # multipart: a form with files
        session: SessionCookie = request.state.portal_session
        posted, files = await service.receive_form_with_files(
            app_state(request), access, form, request, csrf_matches=session.csrf_matches
        )
    else:
        posted = _form(request)
        files = await service.kept_files(app_state(request), access, form, posted)
    values, kept = service.read_form(form.ticket_type, posted)
    kept.update(files.uploads)
    summary = _first(posted, "summary")
    team = _first(posted, "team")
    errors: dict[str, list[str]] = dict(files.problems)
    if team not in {t for t, _ in form.teams}:
        errors["team"] = ["Choose a team"]
    elif not errors:
        try:
            ticket = await service.create_ticket(
                app_state(request),
                access,
                form=form,
                team_id=team,
                summary=summary,
                values=values,
                files=files.uploads,
            )
            return _redirect(f"{PREFIX}/tickets/{ticket['object_id']}?created=1")
        except InputValidationFailure as exc:
            errors = service.form_errors(exc.reason)
        except Forbidden as exc:
            errors = {"team": [exc.message]}
    return _ticket_form(
        request,
        form,
        kept=kept,
        errors=errors,
        policy=access.catalog.attachments,
        summary=summary,
        team=team,
        status_code=400,
    )


@router.get("/my-tickets")
async def my_tickets(request: Request) -> Response:
    """The tickets the user filed, newest first."""
    access = await _signed_in(request)
    listing = service.list_request(request.query_params)
    page = await service.list_tickets(
        app_state(request), access, listing, submitted_by=access.principal.submitter
    )
    return render(
        request, "my_tickets.html", page=page, listing=listing, query=_query_maker(listing)
    )


def _query_maker(listing: service.ListRequest) -> Callable[..., str]:
    """Builds the query string of a list page with some parameters changed."""

    def make(**changes: Any) -> str:
        params: dict[str, Any] = {
            "q": listing.search,
            "sort": listing.sort,
            "order": listing.order,
            "page": listing.page,
            **(listing.filters or {}),
        }
        params.update(changes)
        return "?" + urlencode({k: v for k, v in params.items() if v not in ("", None)})

    return make


# --- tickets -----------------------------------------------------------------------------


@router.get("/tickets/{object_id}")
async def ticket(request: Request, object_id: str) -> Response:
    """A ticket: fields, comments, history; for agents, the form that works it."""
    access = await _signed_in(request)
    page = await service.ticket_page(app_state(request), access, object_id)
    return _ticket_page(request, access, page, created=request.query_params.get("created") == "1")


@router.get("/tickets/{object_id}/files/{attachment_id}")
async def ticket_file(request: Request, object_id: str, attachment_id: str) -> Response:
    """A file of a ticket, for whoever may read the ticket, as the download endpoint sends
    it (exact bytes, stored type, attachment disposition, nosniff)."""
    access = await _signed_in(request)
    row, content = await service.attachment_file(
        app_state(request), access, object_id, attachment_id
    )
    return StreamingResponse(
        content,
        media_type=row.content_type,
        headers={
            "Content-Disposition": content_disposition(row.name),
            "Content-Length": str(row.size),
            "ETag": f'"{row.sha256}"',
        },
    )


def _ticket_page(
    request: Request,
    access: Access,
    page: service.TicketPage,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    ticket = page.ticket
    context.setdefault("created", False)
    context.setdefault("conflict", None)
    context.setdefault("update_errors", {})
    context.setdefault("comment_errors", [])
    context.setdefault("comment_text", "")
    context.setdefault(
        "agent_input",
        {
            "status": ticket["status_type"],
            "ccWatchers": "\n".join(ticket["data"].get("ccWatchers") or []),
            "toWatchers": "\n".join(ticket["data"].get("toWatchers") or []),
            **_routing_of(ticket),
        },
    )
    context.setdefault("routed", _routing_of(ticket))
    context.setdefault("etag", ticket["etag"])
    context.setdefault("version", ticket["version"])
    return render(
        request,
        "ticket.html",
        status_code=status_code,
        page=page,
        ticket=ticket,
        can_internal=service.is_agent(access.principal),
        **context,
    )


@router.post("/tickets/{object_id}/comments")
async def comment(request: Request, object_id: str) -> Response:
    """Adds a comment (agents may mark it internal)."""
    access = await _signed_in(request, Action.COMMENT)
    form = _form(request)
    text = _first(form, "body")
    internal = _first(form, "internal") == "true"
    state = app_state(request)
    try:
        await service.add_comment(state, access, object_id, text=text, internal=internal)
    except InputValidationFailure as exc:
        page = await service.ticket_page(state, access, object_id)
        messages = [m for ms in exc.reason.values() for m in ms]
        return _ticket_page(
            request, access, page, status_code=400, comment_errors=messages, comment_text=text
        )
    return _redirect(f"{PREFIX}/tickets/{object_id}#comments")


# The routing controls of the agent's form: posted name -> update body key. Each has a hidden
# `was-<name>` with the value the form showed, and only the keys the agent changed are sent,
# so that saving a status does not re-check an assignee who has since left the queue.
ROUTING_INPUTS = {"assignee": "assignee", "priority": "priority", "queue": "queueId"}


def _routing_of(ticket: Mapping[str, Any]) -> dict[str, str]:
    return {name: ticket[key] or "" for name, key in ROUTING_INPUTS.items()}


def _routing_changes(form: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, key in ROUTING_INPUTS.items():
        if name not in form:
            continue
        value = _first(form, name)
        if value != _first(form, f"was-{name}"):
            # Blank is "unassigned" / "no queue"; a blank priority is refused by the service.
            changes[key] = value or None
    return changes


@router.post("/tickets/{object_id}/update")
async def update(request: Request, object_id: str) -> Response:
    """Changes status, assignee, priority, queue and watchers; a stale etag shows what changed
    and keeps the input; a refused value is shown next to its control."""
    access = await _signed_in(request, Action.UPDATE)
    state = app_state(request)
    form = _form(request)
    agent_input = {
        "status": _first(form, "status"),
        "ccWatchers": _first(form, "ccWatchers"),
        "toWatchers": _first(form, "toWatchers"),
        **{name: _first(form, name) for name in ROUTING_INPUTS},
    }
    routed = {name: _first(form, f"was-{name}") for name in ROUTING_INPUTS}
    etag = _first(form, "etag")
    version_text = _first(form, "version")
    version = parse_digits(version_text, max_digits=9) or 0
    changes: dict[str, Any] = {
        "etag": etag,
        "status": agent_input["status"] or None,
        "ccWatchers": service.watcher_list(agent_input["ccWatchers"]),
        "toWatchers": service.watcher_list(agent_input["toWatchers"]),
        **_routing_changes(form),
    }
    try:
        await service.update_ticket(state, access, object_id, changes=changes)
    except EtagMismatch:
        page = await service.ticket_page(state, access, object_id)
        return _ticket_page(
            request,
            access,
            page,
            status_code=409,
            conflict=service.changes_since(page, version),
            agent_input=agent_input,
            # Sending the form again applies the agent's input over the new version.
            etag=page.ticket["etag"],
            routed=_routing_of(page.ticket),
            version=page.ticket["version"],
        )
    except InputValidationFailure as exc:
        page = await service.ticket_page(state, access, object_id)
        return _ticket_page(
            request,
            access,
            page,
            status_code=400,
            update_errors=exc.reason,
            agent_input=agent_input,
            routed=routed,
            etag=etag,
            version=version,
        )
    return _redirect(f"{PREFIX}/tickets/{object_id}?updated=1")


# --- agent -------------------------------------------------------------------------------


@router.get("/queue")
async def queue(request: Request) -> Response:
    """Every ticket of the tenant, filtered, searched, sorted and paged (agents)."""
    access = await _signed_in(request)
    if not service.is_agent(access.principal):
        raise Forbidden("The queue is for agents")
    state = app_state(request)
    choices = await service.filter_choices(state, access)
    listing = service.list_request(request.query_params, choices)
    page = await service.list_tickets(state, access, listing)
    filters = [
        {
            "name": f.name,
            "label": f.label,
            "choices": f.choices(choices),
            "value": (listing.filters or {}).get(f.name, ""),
        }
        for f in service.QUEUE_FILTERS
    ]
    return render(
        request,
        "queue.html",
        page=page,
        listing=listing,
        filters=filters,
        sorts=service.SORTS,
        query=_query_maker(listing),
    )


@router.get("/queue/updates")
async def queue_updates(request: Request) -> Response:
    """The queue's live updates: the API's list-updates stream (Server-Sent Events) for the
    session's user, authenticated by the session cookie; the queue page's script reloads
    its table when a ticket is created, updated or deleted."""
    access = await _signed_in(request)
    if not service.is_agent(access.principal):
        raise Forbidden("The queue is for agents")
    token: str = request.state.session_token
    cookie: SessionCookie = request.state.portal_session
    state = app_state(request)
    body = await service.queue_updates(state, access, request, expires_at=_token_expiry(token))

    async def live() -> bool:
        assert cookie.tenant_id is not None and cookie.session_id is not None
        opened = await service.open_session(state, cookie.tenant_id, cookie.session_id)
        return opened is not None and opened.live

    return StreamingResponse(
        _while(live, body, every=state.settings.sse_heartbeat),
        media_type=sse.MEDIA_TYPE,
        headers=sse.HEADERS,
    )


async def _while(
    live: Callable[[], Awaitable[bool]], body: AsyncIterator[bytes], *, every: float
) -> AsyncIterator[bytes]:
    """The stream, ended once its session is (checked at most once per `every` seconds, as
    its heartbeats go out); the browser's reconnect then meets the sign-in."""
    async with contextlib.aclosing(body):  # type: ignore[type-var]
        checked = time.monotonic()
        async for chunk in body:
            yield chunk
            if time.monotonic() - checked >= every:
                checked = time.monotonic()
                if not await live():
                    return


# --- assets and the rest -----------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The portal's own stylesheet and scripts, shipped in the package."""
    found = STATIC.get(name)
    if found is None:
        raise NotFound()
    body, media_type = found
    return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=3600"})


@router.api_route("/{rest:path}", methods=["GET", "POST", "HEAD"])
async def not_found(rest: str) -> Response:
    """Any other address under /portal/."""
    raise NotFound()
