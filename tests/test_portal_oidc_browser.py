"""The portal's sign-in and sign-out in Chromium against a real, standards-following OpenID
Connect provider (panva's oidc-provider, tests/oidc_provider.py), on PostgreSQL.

That provider, unlike Keycloak, adds no default scopes: an access token carries only the
scopes the portal asked for that the realm lets it have. So these tests show that the portal
asks for the scopes it needs and refuses a token that still cannot read tickets (with a page
saying what is missing and who can grant it), that a refused token ends on a page saying why
instead of a redirect loop, and that signing out ends the provider's session too (RP-initiated
logout), so that the next visit asks for the login form again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import BACKENDS
from tests.oidc_provider import OidcProvider, Realm, reserve
from tests.support import Database, Server, Tenant, new_tenant_config, start_server, stop_server
from tests.test_portal_browser import Visit, load_axe

pytestmark = pytest.mark.parametrize("database", [BACKENDS[1]], indirect=True)

CLIENT_ID = "ticketing-portal-test"
# What the audience-checking server wants; the provider issues `ticketing-api`.
OTHER_AUDIENCE = "ticketing-elsewhere"


def _user(tenant_id: str, name: str, roles: list[str]) -> dict[str, Any]:
    """The claims of a person's access token, as a Keycloak realm would add them."""
    return {
        "tenant_id": tenant_id,
        "realm_access": {"roles": roles},
        "email": f"{name.lower()}@example.com",
        "preferred_username": f"{name.lower()}@example.com",
        "given_name": name,
        "family_name": "Oidc",
        "teams": ["james"],
    }


@dataclass
class Setup:
    provider: OidcProvider
    # The tenant whose realm grants the portal the tickets scopes, and one whose does not.
    tenant: dict[str, Any]
    stingy: dict[str, Any]
    portal: Server
    # Servers that refuse the provider's tokens: another audience, another issuer host.
    refusing: dict[str, Server]


@pytest.fixture(scope="module")
def setup(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work: Path = tmp_path_factory.mktemp("portal-oidc-browser")
    provider = reserve(work)
    tenant, stingy = new_tenant_config(), new_tenant_config()
    database.load({"tenants": [tenant, stingy]})
    env = {
        "TICKETING_OIDC_BASE_URL": provider.base_url,
        "TICKETING_PORTAL_CLIENT_ID": CLIENT_ID,
        # The sign-in's tenant when the address names none (as after a refused callback).
        "TICKETING_PORTAL_TENANT": tenant["id"],
    }
    servers: list[Server] = []
    try:
        for extra in (
            {},
            {"TICKETING_OIDC_AUDIENCE": OTHER_AUDIENCE},
            # The provider is reached as localhost; its tokens name 127.0.0.1.
            {"TICKETING_OIDC_BASE_URL": f"http://localhost:{provider.port}"},
        ):
            servers.append(start_server(database_url=database.url, data_dir=work, env=env | extra))
        provider.start(
            realms={
                tenant["realm"]: Realm(
                    users={
                        "avery": _user(tenant["id"], "Avery", ["ticket_agent"]),
                        "olive": _user(tenant["id"], "Olive", ["ticket_user"]),
                    }
                ),
                # The realm lets the portal's client have none of the API's scopes.
                stingy["realm"]: Realm(
                    users={"rita": _user(stingy["id"], "Rita", ["ticket_user"])},
                    scopes="",
                    access_token_alg="ES256",
                ),
            },
            client_id=CLIENT_ID,
            portal_urls=[s.base_url for s in servers],
        )
        yield Setup(
            provider,
            tenant,
            stingy,
            servers[0],
            {"audience": servers[1], "issuer host": servers[2]},
        )
    finally:
        provider.stop()
        for server in servers:
            stop_server(server)


@pytest.fixture
def visit(database: Database) -> Visit:
    return Visit(load_axe(), database)


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Opens pages, each in a browser context of its own (own cookies at both sites)."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        context = browser.new_context(viewport={"width": 1000, "height": 720})
        # The provider's development pages import a web font; the tests run offline.
        context.route(
            re.compile(r"^https://fonts\.(googleapis|gstatic)\.com/"), lambda r: r.abort()
        )
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def _sign_in(page: Page, server: Server, tenant: dict[str, Any], login: str) -> None:
    """Starts the portal's sign-in and fills the provider's login form (any password)."""
    page.goto(f"{server.base_url}/portal/oidc/start?tenant={tenant['id']}")
    expect(page.locator("input[name=login]")).to_be_visible()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()


def _not_signed_in(page: Page, server: Server) -> None:
    """The browser has no portal session: a page of the portal sends it to the sign-in."""
    answer = page.request.get(f"{server.base_url}/portal/catalog", max_redirects=0)
    assert answer.status == 303, answer.status
    assert answer.headers["location"] == "/portal/oidc/start"


def _portal_cookies(page: Page) -> dict[str, Any]:
    """The portal's cookies in the page's browser context (those of every path: cookies
    know no port, so the provider's, on the same host, are told apart by name)."""
    return {c["name"]: c for c in page.context.cookies() if c["name"].startswith("ticketing_")}


def test_a_person_signs_in_at_the_provider_and_can_read_tickets(
    setup: Setup, new_page: Callable[[], Page], visit: Visit
) -> None:
    realm = setup.tenant["realm"]
    exchanges = setup.provider.token_requests(realm)
    page = new_page()
    _sign_in(page, setup.portal, setup.tenant, "avery")
    # The agent's start page is the queue: it reads the tenant's tickets.
    expect(page).to_have_url(re.compile(r"/portal/queue$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Queue")
    expect(page.locator(".who")).to_contain_text("Avery Oidc")
    visit.check(page, "oidc-queue")
    page.get_by_role("link", name="My tickets").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My tickets")
    assert setup.provider.token_requests(realm) == exchanges + 1
    # The browser holds the session's id only: the access token and the ID token (for the
    # provider's logout) stay in the service's database.
    cookies = _portal_cookies(page)
    assert set(cookies) == {"ticketing_portal"}, cookies
    assert "eyJ" not in cookies["ticketing_portal"]["value"]
    assert len(cookies["ticketing_portal"]["value"]) < 300

    # A requester lands on the catalog and reads her own tickets the same way.
    requester = new_page()
    _sign_in(requester, setup.portal, setup.tenant, "olive")
    expect(requester).to_have_url(re.compile(r"/portal/catalog$"))
    expect(requester.get_by_role("link", name="New laptop")).to_be_visible()
    requester.get_by_role("link", name="My tickets").click()
    expect(requester.get_by_role("heading", level=1)).to_have_text("My tickets")


def test_a_token_without_the_tickets_scopes_starts_no_session_and_says_what_is_missing(
    setup: Setup, new_page: Callable[[], Page], visit: Visit
) -> None:
    page = new_page()
    responses: list[int] = []
    page.on(
        "response",
        lambda r: responses.append(r.status) if "/portal/oidc/callback" in r.url else None,
    )
    _sign_in(page, setup.portal, setup.stingy, "rita")
    expect(page.get_by_role("heading", level=1)).to_have_text("You cannot use the service desk yet")
    assert responses == [403]
    main = page.locator("main")
    expect(main).to_contain_text("rita@example.com")
    # Which permission, and who can grant it: the provider's administrator, for this realm
    # and this client.
    expect(main).to_contain_text("The permission (scope) tickets:read")
    expect(main).to_contain_text("The portal asked for openid tickets:read tickets:write")
    expect(main).to_contain_text(
        f"An administrator of the identity provider, in the realm {setup.stingy['realm']}: "
        f"the client {CLIENT_ID} must be allowed"
    )
    expect(page.get_by_role("link", name="Try again")).to_be_visible()
    visit.check(page, "oidc-missing-permission")
    _not_signed_in(page, setup.portal)
    names = set(_portal_cookies(page))
    assert not names & {"ticketing_portal_logout", "ticketing_portal_oidc"}, names

    # To sign in as someone else: the provider's logout, back to the signed-out page.
    page.get_by_role("link", name="Sign out of the identity provider").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You have signed out")
    page.get_by_role("link", name="Sign in again").click()
    expect(page.locator("input[name=login]")).to_be_visible()


@pytest.mark.parametrize("refusal", ["audience", "issuer host"])
def test_a_refused_token_shows_why_with_a_link_to_try_again_instead_of_a_redirect_loop(
    setup: Setup, new_page: Callable[[], Page], visit: Visit, refusal: str
) -> None:
    server = setup.refusing[refusal]
    realm = setup.tenant["realm"]
    exchanges = setup.provider.token_requests(realm)
    page = new_page()
    _sign_in(page, server, setup.tenant, "avery")
    # One code exchange, not one per round trip until Chromium gives up with
    # ERR_TOO_MANY_REDIRECTS.
    page.wait_for_load_state("networkidle")
    exchanged = setup.provider.token_requests(realm) - exchanges
    assert exchanged == 1, f"{exchanged} code exchanges"
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in failed")
    reason = page.locator("#reason")
    if refusal == "audience":
        expect(reason).to_contain_text(
            f"it is for the audience ticketing-api, and this service accepts only {OTHER_AUDIENCE}"
        )
    else:
        expect(reason).to_contain_text(
            f"Token issuer is not trusted): it was issued by {setup.provider.issuer(realm)}, "
            f"and this service trusts http://localhost:{setup.provider.port}/realms/{realm}"
        )
    visit.check(page, f"oidc-refused-{refusal.replace(' ', '-')}")
    _not_signed_in(page, server)

    # Trying again goes through the provider (still signed in there) once, to the same page.
    page.get_by_role("link", name="Try again").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in failed")
    assert setup.provider.token_requests(realm) == exchanges + 2


def test_signing_out_ends_the_providers_session_and_lands_on_a_signed_out_page(
    setup: Setup, new_page: Callable[[], Page], visit: Visit
) -> None:
    realm = setup.tenant["realm"]
    portal = setup.portal.base_url
    page = new_page()
    _sign_in(page, setup.portal, setup.tenant, "avery")
    expect(page).to_have_url(re.compile(r"/portal/queue$"))
    logouts = len(setup.provider.end_sessions(realm))

    page.get_by_role("button", name="Sign out").click()
    # The provider asks to confirm (its own page); the portal sent the ID token as the hint.
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(f"{portal}/portal/signed-out?state={setup.tenant['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("You have signed out")
    visit.check(page, "oidc-signed-out")
    ended = setup.provider.end_sessions(realm)[logouts:]
    assert len(ended) == 1, ended
    assert ended[0]["post_logout_redirect_uri"] == f"{portal}/portal/signed-out"
    hint = jwt.decode(ended[0]["id_token_hint"], options={"verify_signature": False})
    assert hint["iss"] == setup.provider.issuer(realm)
    assert hint["aud"] == CLIENT_ID and hint["sub"] == "avery"
    _not_signed_in(page, setup.portal)

    # Not signed back in silently: the provider asks who it is again.
    exchanges = setup.provider.token_requests(realm)
    page.get_by_role("link", name="Sign in again").click()
    expect(page.locator("input[name=login]")).to_be_visible()
    assert page.url.startswith(f"{setup.provider.issuer(realm)}/interaction/")
    assert setup.provider.token_requests(realm) == exchanges


def test_signing_out_of_the_development_sign_in_lands_on_a_signed_out_page(
    browser: Browser, server: Server, demo_tenant: Tenant, visit: Visit
) -> None:
    tenant = demo_tenant
    context = browser.new_context(viewport={"width": 1000, "height": 720})
    try:
        page = context.new_page()
        page.goto(f"{server.base_url}/portal/sign-in?tenant={tenant.id}")
        page.get_by_role("button", name="Sign in as Jane Doe (Requester)").click()
        expect(page).to_have_url(re.compile(r"/portal/catalog$"))
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{server.base_url}/portal/signed-out?tenant={tenant.id}")
        expect(page.get_by_role("heading", level=1)).to_have_text("You have signed out")
        visit.check(page, "signed-out")
        answer = page.request.get(f"{server.base_url}/portal/catalog", max_redirects=0)
        assert answer.status == 303 and answer.headers["location"] == "/portal/sign-in"
        page.get_by_role("link", name="Sign in again").click()
        expect(page).to_have_url(f"{server.base_url}/portal/sign-in?tenant={tenant.id}")
    finally:
        context.close()
