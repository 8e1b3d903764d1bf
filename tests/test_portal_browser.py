"""The portal in a real browser (Debian's Chromium driven by Playwright), on both databases:
a requester files a ticket through a generated form (fixing one field the server refused),
an agent finds it in the queue and works it, the requester sees the answer; the same filing
with the keyboard alone; hostile values run no script. axe-core checks every page visited
for serious or critical accessibility violations.

Set TICKETING_PORTAL_SCREENSHOTS=<folder> to save a screenshot of each page (SQLite run);
`make screenshots` refreshes docs/screenshots/ that way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.attachment_api import F_LOGS, PNG, file_tenant_config, upload
from tests.desk_support import desk_overrides
from tests.portal_client import persona_token, session_cookie
from tests.support import DESCRIPTION, TITLE, Database, Server, Tenant, seed_body
from tests.ticket_api import call, get_ticket
from ticketing.portal.schemas import DEMO_USERS
from ticketing.portal.session import COOKIE_PATH, SESSION_COOKIE

ROOT = Path(__file__).resolve().parent.parent
AXE_DIR = ROOT / ".cache" / "axe-core"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = os.environ.get("TICKETING_PORTAL_SCREENSHOTS")
AGENT = "agent@example.com"


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's browser build (load_axe)."""
    return load_axe()


def load_axe() -> str:
    """axe-core's browser build, installed from npm on first use."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        assert npm, "npm is missing: run `make browser-deps`"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR), "axe-core@^4.10"],
            check=True,
            capture_output=True,
        )
    return AXE_JS.read_text()


class Visit:
    """Checks each page a person reaches: no serious or critical axe violation, no script
    error; saves a screenshot when asked to."""

    def __init__(self, axe_source: str, database: Database) -> None:
        self.axe_source = axe_source
        self.shots = Path(SCREENSHOTS) if SCREENSHOTS and database.name == "sqlite" else None
        self.checked: list[str] = []

    def check(self, page: Page, name: str) -> None:
        page.wait_for_load_state("load")
        # Evaluated through the DevTools protocol, which the page's CSP does not govern.
        page.evaluate(self.axe_source)
        violations: list[dict[str, Any]] = page.evaluate(
            """async () => (await axe.run(document)).violations.map(v => ({
                id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html)}))"""
        )
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not bad, f"{name}: {bad}"
        self.checked.append(name)
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


@pytest.fixture
def visit(axe_source: str, database: Database) -> Visit:
    return Visit(axe_source, database)


def _page(browser: Browser) -> Page:
    context = browser.new_context(viewport={"width": 1000, "height": 720})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def _sign_in(page: Page, server: Server, tenant: Tenant, who: str) -> None:
    """Signs the page's browser in as a demo user (`Requester`, `Agent`, `Administrator`) of
    any tenant: the session the one-click sign-in would record, and its cookie."""
    key = next(u.key for u in DEMO_USERS if u.role_label == who)
    value = session_cookie(tenant, key, server.data_dir)
    host = urlsplit(server.base_url).hostname or ""
    page.context.add_cookies(
        [
            {
                "name": SESSION_COOKIE,
                "value": value,
                "domain": host,
                "path": COOKIE_PATH,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    page.goto(f"{server.base_url}/portal/")


@pytest.fixture
def desk(make_tenant: Callable[..., Tenant]) -> Tenant:
    """The standard tenant with queues and SLAs: type 16910 goes, unassigned, to a queue of
    which the demo agent is a member."""
    return make_tenant(**desk_overrides(members=[AGENT, "a2@example.com"], auto_assign="none"))


def test_a_requester_files_a_ticket_an_agent_works_it_and_the_requester_sees_the_answer(
    browser: Browser, server: Server, desk: Tenant, demo_tenant: Tenant, visit: Visit
) -> None:
    tenant = desk
    requester = _page(browser)
    # The one-click sign-in is the demo tenant's (the keyboard test signs in with it).
    requester.goto(f"{server.base_url}/portal/sign-in")
    visit.check(requester, "01-sign-in")
    _sign_in(requester, server, tenant, "Requester")
    expect(requester).to_have_url(re.compile(r"/portal/catalog$"))
    visit.check(requester, "02-catalog")

    requester.get_by_label("Search the catalog").fill("laptop")
    requester.get_by_role("button", name="Search").click()
    requester.get_by_role("link", name="New laptop").click()
    expect(requester.get_by_role("heading", level=1)).to_have_text("New laptop")
    visit.check(requester, "03-request-form")

    summary = "Laptop for the new hire"
    requester.get_by_label("Summary").fill(summary)
    requester.get_by_label("Description").fill("<p>Battery is <b>dead</b></p>")
    requester.get_by_label("Needed within").select_option("<2week")
    requester.get_by_role("button", name="Submit request").click()
    # The server's verdict, in the API's words, next to the field; the input kept.
    title = requester.get_by_label("Title")
    expect(requester.locator(f"#f-{TITLE}-error")).to_have_text("Field Title is required")
    expect(title).to_have_attribute("aria-invalid", "true")
    expect(requester.get_by_label("Summary")).to_have_value(summary)
    expect(requester.get_by_label("Needed within")).to_have_value("<2week")
    expect(requester.locator("#error-summary")).to_be_focused()
    visit.check(requester, "04-request-form-errors")

    title.fill("Replacement laptop")
    requester.get_by_role("button", name="Submit request").click()
    expect(requester).to_have_url(re.compile(r"/portal/tickets/CTC-\d{4,}\?created=1$"))
    object_id = requester.url.split("/portal/tickets/")[1].split("?")[0]
    expect(requester.get_by_role("heading", level=1)).to_contain_text(object_id)
    expect(requester.get_by_role("status")).to_contain_text(f"filed as {object_id}")
    expect(requester.locator(".rich b")).to_have_text("dead")
    visit.check(requester, "05-ticket")

    requester.get_by_role("link", name="My tickets").click()
    expect(requester.get_by_role("row", name=re.compile(object_id))).to_contain_text("Open")
    visit.check(requester, "06-my-tickets")

    agent = _page(browser)
    _sign_in(agent, server, tenant, "Agent")
    expect(agent).to_have_url(re.compile(r"/portal/queue$"))
    agent.get_by_label("Search").fill(summary)
    agent.get_by_label("Status").select_option("Open")
    agent.get_by_role("button", name="Apply").click()
    expect(agent.get_by_role("row", name=re.compile(object_id))).to_contain_text(summary)
    visit.check(agent, "07-queue")
    # The agent assigns it to themselves, moves it on, then answers.
    agent.get_by_role("link", name=object_id).click()
    expect(agent.locator("#sla-title")).to_have_text("Service level")
    agent.get_by_label("Assignee").select_option(AGENT)
    agent.get_by_label("Status").select_option("In Progress")
    agent.get_by_label("Cc watchers").fill("manager@example.com")
    agent.get_by_role("button", name="Save changes").click()
    expect(agent.locator(".facts .assignee")).to_have_text(AGENT)
    expect(agent.locator(".facts .status")).to_have_text("In Progress")
    agent.get_by_label("Add a comment").fill("Ordered today; it arrives on Monday.")
    agent.get_by_role("button", name="Add comment").click()
    expect(agent.locator(".comment")).to_contain_text("Ordered today; it arrives on Monday.")
    visit.check(agent, "08-agent-ticket")
    assert get_ticket(tenant, object_id)["assignee"] == AGENT

    requester.goto(f"{server.base_url}/portal/tickets/{object_id}")
    expect(requester.locator(".comment")).to_contain_text("Ordered today; it arrives on Monday.")
    expect(requester.locator(".comment")).to_contain_text("Alex Agent")
    expect(requester.locator(".facts .status")).to_have_text("In Progress")
    expect(requester.locator(".history")).to_contain_text("Status: Open → In Progress")
    expect(requester.locator(".history")).to_contain_text(f"Assignee: — → {AGENT}")
    requester.goto(f"{server.base_url}/portal/no-such-page")
    visit.check(requester, "09-not-found")
    assert requester.errors == agent.errors == []  # type: ignore[attr-defined]
    assert len(visit.checked) == 9


def _tab_to(page: Page, wanted: str, limit: int = 60) -> None:
    """Presses Tab until the focused element's id or text is `wanted`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => [document.activeElement.id, document.activeElement.textContent.trim()]"
        )
        if wanted in focused:
            return
    raise AssertionError(f"Tab never reached {wanted!r}")


def test_the_requester_flow_works_with_the_keyboard_alone(
    browser: Browser, server: Server, demo_tenant: Tenant
) -> None:
    """From the one-click sign-in (the demo tenant's) to a filed ticket."""
    page = _page(browser)
    page.goto(f"{server.base_url}/portal/sign-in")
    _tab_to(page, "Sign in as Jane Doe (Requester)")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/portal/catalog$"))
    _tab_to(page, "New laptop")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("New laptop")
    _tab_to(page, "summary")
    page.keyboard.type("Keyboard-only request")
    _tab_to(page, "Submit request")
    page.keyboard.press("Enter")
    # Focus lands on the list of problems; its link leads to the field.
    expect(page.locator("#error-summary")).to_be_focused()
    _tab_to(page, "Field Title is required")
    page.keyboard.press("Enter")
    expect(page.locator(f"#f-{TITLE}")).to_be_focused()
    page.keyboard.type("Typed without a mouse")
    _tab_to(page, f"f-{DESCRIPTION}")
    page.keyboard.type("Nothing else")
    _tab_to(page, "Submit request")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/portal/tickets/CTC-\d{4,}\?created=1$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Keyboard-only request")
    expect(page.locator(".details")).to_contain_text("Typed without a mouse")
    assert page.errors == []  # type: ignore[attr-defined]


def test_hostile_values_run_no_script_in_the_browser(
    browser: Browser, server: Server, tenant: Tenant, visit: Visit
) -> None:
    body = seed_body(
        summary='<script>window.pwned=1</script>"><img src=x onerror="window.pwned=2">'
    )
    body["ticketBody"][TITLE] = '"><svg onload="window.pwned=3">'
    body["ticketBody"][DESCRIPTION] = (
        '<p>ok</p><img src=x onerror="window.pwned=4"><a href="javascript:window.pwned=5">go</a>'
    )
    object_id = tenant.create(body, token=persona_token(tenant, "requester")).json()["objectId"]
    page = _page(browser)
    _sign_in(page, server, tenant, "Agent")
    page.get_by_label("Search").fill("script")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("row", name=re.compile(object_id))).to_be_visible()
    visit.check(page, "hostile-queue")
    page.get_by_role("link", name=object_id).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("<script>window.pwned=1</script>")
    link = page.locator(".rich a", has_text="go")
    expect(link).not_to_have_attribute("href", re.compile(".*"))  # javascript: URL removed
    link.click()
    visit.check(page, "hostile-ticket")
    assert page.evaluate("() => window.pwned") is None
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_agents_queue_shows_a_ticket_created_meanwhile_without_a_reload(
    browser: Browser, server: Server, desk: Tenant, visit: Visit
) -> None:
    page = _page(browser)
    _sign_in(page, server, desk, "Agent")
    expect(page).to_have_url(re.compile(r"/portal/queue$"))
    first = desk.create(seed_body(summary="Before the page"), token=persona_token(desk, "agent"))
    page.reload()
    expect(page.get_by_role("row", name=re.compile(first.json()["objectId"]))).to_be_visible()
    page.evaluate("() => { window.sameDocument = true; }")
    # The page's stream has said `connected` (it is subscribed) before the create.
    expect(page.locator("#queue-results")).to_have_attribute("data-connected", "true")
    created = desk.create(
        seed_body(summary='Arrived live <b>"bold"</b>'), token=persona_token(desk, "requester")
    ).json()["objectId"]
    row = page.get_by_role("row", name=re.compile(created))
    expect(row).to_be_visible(timeout=15_000)
    expect(row).to_contain_text('Arrived live <b>"bold"</b>')
    expect(page.locator("#queue-live")).to_have_text("The queue was updated.")
    assert page.evaluate("() => window.sameDocument") is True
    # An update moves it too: the status column follows.
    ticket = get_ticket(desk, created)
    call(
        desk,
        "PATCH",
        f"/ticket/update/{created}",
        json={"etag": ticket["etag"], "status": "In Progress"},
    )
    expect(row).to_contain_text("In Progress", timeout=15_000)
    visit.check(page, "10-queue-live")
    assert page.evaluate("() => window.sameDocument") is True
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_requester_attaches_files_fixes_a_refused_one_and_downloads_them(
    browser: Browser,
    server: Server,
    make_tenant: Callable[..., Tenant],
    visit: Visit,
    tmp_path: Path,
) -> None:
    """File controls in the browser (set_input_files): a refused file is named next to its
    field in the API's words and the accepted one is kept; the ticket page links the files,
    and the link downloads the exact bytes."""
    config = file_tenant_config()
    config["offers"][-1]["catalog_types"] = ["template", "user"]
    tenant = make_tenant(**{k: v for k, v in config.items() if k not in ("id", "realm")})
    good = tmp_path / "screen.png"
    good.write_bytes(PNG)
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not a picture at all")
    refused = upload(
        tenant, "fake.png", fake.read_bytes(), token=persona_token(tenant, "requester")
    )
    words = refused.json()["validationResult"]["reason"]["file"]

    page = _page(browser)
    _sign_in(page, server, tenant, "Requester")
    page.goto(f"{server.base_url}/portal/offers/23640/new")
    visit.check(page, "10-form-with-files")
    page.get_by_label("Summary").fill("Printer on fire")
    page.get_by_label("Details").fill("Jammed, then smoke")
    page.get_by_label("Screenshots").set_input_files([str(good)])
    page.get_by_label("Logs").set_input_files([str(fake)])
    page.get_by_role("button", name="Submit request").click()

    expect(page.locator(f"#f-{F_LOGS}-error")).to_have_text(" ".join(words))
    expect(page.get_by_label("Logs")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("screen.png")).to_be_checked()
    expect(page.get_by_label("Summary")).to_have_value("Printer on fire")
    expect(page.locator("#error-summary")).to_be_focused()
    visit.check(page, "11-form-with-files-refused")

    page.get_by_role("button", name="Submit request").click()
    expect(page).to_have_url(re.compile(r"/portal/tickets/INC-\d{4,}\?created=1$"))
    link = page.get_by_role("link", name="screen.png")
    expect(link).to_be_visible()
    visit.check(page, "12-ticket-with-files")
    with page.expect_download() as started:
        link.click()
    download = started.value
    assert download.suggested_filename == "screen.png"
    assert Path(download.path()).read_bytes() == PNG
    assert page.errors == []  # type: ignore[attr-defined]
