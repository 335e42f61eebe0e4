"""The dashboard in a real browser (headless Chromium) against a real daphne on the test database:
login, the live feed, catching up after a dropped connection, the memory diff, the kill switch from
/agents/ and a force-release from /locks/. Set MEMORYHUB_SCREENSHOTS=<dir> to also save screenshots of
pages with demo-like data (docs/screenshots/ for the README)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from memoryhub.actors import Actor
from memoryhub.agents.services import agent_set_status
from memoryhub.events.models import Event
from memoryhub.memories.services import memory_put
from tests.servers import server

from .conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
    synchronous code, which Django must be told to allow (for this module only)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(autouse=True)
def _no_channel_layer_here(settings):
    """Writes made by the test itself publish nowhere: the sockets live in the server process (a
    separate one), which reads them from the log; and the in-memory layer could not be reached from
    inside Playwright's running event loop anyway."""
    settings.CHANNEL_LAYERS = {}


@pytest.fixture
def overseer(django_user_model, policies, settings):
    # The server process checks the password with the default hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    return django_user_model.objects.create_user("olivia", password=PASSWORD, is_staff=True)


@pytest.fixture
def hub(overseer, hub_server):
    return hub_server


@pytest.fixture
def console(page: Page) -> list[str]:
    """Errors the page logs (console errors and uncaught exceptions)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def log_in(page: Page, hub: str, path: str = "/") -> None:
    page.goto(hub + path)
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(hub + path)


def wait_live(page: Page) -> None:
    expect(page.locator("#live-status")).to_have_text("Live", timeout=10_000)


def api(hub: str, persona) -> httpx.Client:
    return httpx.Client(base_url=f"{hub}/api/v1", headers={"Authorization": f"Bearer {persona.token}"}, timeout=10)


def test_login_leads_to_the_overview(page: Page, hub, console, docs):
    log_in(page, hub)
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    expect(page.locator("#agent-docs-1")).to_contain_text("active")
    wait_live(page)
    assert console == []


def test_live_feed_shows_an_agents_write_without_reload(page: Page, hub, console, docs):
    log_in(page, hub)
    wait_live(page)
    page.evaluate("window.stillTheSamePage = true")

    with api(hub, docs) as client:
        response = client.put("/memories/code:style/guide/", json={"content": {"rule": "use ruff"}, "reason": "lint"})
    assert response.status_code == 201, response.text

    newest = page.locator("#event-feed li").first
    expect(newest).to_contain_text("memory.created", timeout=10_000)
    expect(newest).to_contain_text("code:style/guide")
    expect(newest).to_contain_text("docs-1")
    expect(newest).to_contain_text("lint")
    expect(newest.get_by_role("link", name="code:style/guide")).to_have_attribute(
        "href", "/memories/code%3Astyle/guide/"
    )
    assert page.evaluate("window.stillTheSamePage") is True  # no reload happened
    assert console == []


def test_new_locks_entries_and_agent_states_appear_without_reload(page: Page, hub, console, inventory, support, sales):
    log_in(page, hub, "/locks/")
    wait_live(page)
    page.evaluate("window.stillTheSamePage = true")
    with api(hub, inventory) as client:
        lease = client.post("/locks/", json={"resources": ["inventory:sku-7"], "ttl_seconds": 60}).json()
    expect(page.locator(f"#lease-{lease['id']}")).to_contain_text("inventory:sku-7", timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True

    page.goto(hub + "/inbox/")
    wait_live(page)
    page.evaluate("window.stillTheSamePage = true")
    with api(hub, support) as client:
        entry = client.post(
            "/contexts/",
            json={
                "to_role": "sales",
                "context_type": "escalation",
                "content": {"customer": "acme"},
                "requires_ack": True,
            },
        ).json()
    card = page.locator(f"#entry-{entry['id']}")
    expect(card).to_contain_text("escalation", timeout=10_000)
    expect(card.get_by_role("row", name=re.compile("sales-1"))).to_contain_text("unread")
    assert page.evaluate("window.stillTheSamePage") is True

    page.goto(hub + "/agents/")
    wait_live(page)
    page.evaluate("window.stillTheSamePage = true")
    # Another human suspends the agent elsewhere (here: the service, in this process; the page learns
    # of it from the log, as it would from another server process).
    agent_set_status(actor=Actor(kind="human", id="hank", role="human"), agent_id="inventory-1", status="suspended")
    expect(page.locator("#agent-inventory-1 [data-agent-status]")).to_have_text("suspended", timeout=10_000)
    assert page.evaluate("window.stillTheSamePage") is True
    assert console == []


def test_feed_catches_up_after_the_connection_drops(page: Page, overseer, docs):
    env = {"MEMORYHUB_INPROCESS_SWEEPER": "false"}
    with server(env=env) as hub:
        port = int(hub.rsplit(":", 1)[1])
        log_in(page, hub)
        wait_live(page)
    # The server is gone: the page notices, and keeps retrying with backoff.
    expect(page.locator("#live-status")).to_have_attribute("data-state", "down", timeout=10_000)
    memory_put(actor=docs.actor, namespace="code:style", key="missed", content={"while": "offline"})
    with server(env=env, port=port):
        expect(page.locator("#event-feed li").first).to_contain_text("code:style/missed", timeout=30_000)
        expect(page.locator("#live-status")).to_have_text("Live")
        # Resumed from the last seq seen: the event is there once.
        assert page.locator("#event-feed li", has_text="code:style/missed").count() == 1


def test_memory_diff_between_two_chosen_versions(page: Page, hub, console, sales):
    for version, seats in enumerate((40, 60, 60), start=1):
        content = {"name": "Acme", "seats": seats} | ({"stage": "won"} if version == 3 else {})
        memory_put(
            actor=sales.actor,
            namespace="customer:acme",
            key="profile",
            content=content,
            reason=f"update {version}",
            if_match=version - 1 or None,
        )
    log_in(page, hub, "/memories/customer:acme/profile/")
    page.get_by_label("From version", exact=True).fill("1")
    page.get_by_label("To version", exact=True).fill("3")
    page.get_by_role("button", name="Compare").click()
    diff = page.locator("#memory-diff")
    expect(diff.get_by_role("heading")).to_have_text("Version 1 → version 3")
    changes = diff.get_by_role("table", name="Fields changed")
    expect(changes.get_by_role("row", name=re.compile("seats"))).to_contain_text("40")
    expect(changes.get_by_role("row", name=re.compile("seats"))).to_contain_text("60")
    expect(changes.get_by_role("row", name=re.compile("stage"))).to_contain_text("added")
    expect(diff.locator(".diff .del")).to_contain_text('"seats": 40')
    expect(diff.locator(".diff .add").first).to_contain_text('"seats": 60')
    expect(page.locator("#memory-timeline")).to_contain_text("update 2")
    assert console == []


def test_suspending_an_agent_from_the_agents_page_refuses_its_api_calls(page: Page, hub, console, docs):
    with api(hub, docs) as client:
        assert client.get("/me/").status_code == 200
        log_in(page, hub, "/agents/")
        page.get_by_label("Reason to suspend docs-1").fill("runaway loop")
        page.get_by_role("button", name="Suspend docs-1").click()
        expect(page.get_by_role("status").filter(has_text="docs-1 suspended.")).to_be_visible()
        expect(page.locator("#agent-docs-1 [data-agent-status]")).to_have_text("suspended")
        refused = client.get("/me/")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "agent_suspended"
    event = Event.objects.filter(type="agent.suspended").latest("seq")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "runaway loop")
    assert console == []


def test_force_release_from_the_locks_page(page: Page, hub, console, inventory):
    with api(hub, inventory) as client:
        lease = client.post("/locks/", json={"resources": ["inventory:sku-1"], "ttl_seconds": 300}).json()
        log_in(page, hub, "/locks/")
        row = page.locator(f"#lease-{lease['id']}")
        expect(row).to_contain_text("inventory-1")
        row.get_by_label(f"Reason to force-release lease {lease['id']}").fill("holder crashed")
        row.get_by_role("button", name=f"Force-release lease {lease['id']}").click()
        expect(page.get_by_role("status").filter(has_text="force-released")).to_be_visible()
        expect(page.locator("#locks-leases")).to_contain_text("No active leases.")
        # The holder's lease is gone: its heartbeat is refused.
        heartbeat = client.post(
            f"/locks/{lease['id']}/heartbeat/", json={"ttl_seconds": 30, "holder_token": lease["holder_token"]}
        )
    assert heartbeat.status_code == 409
    event = Event.objects.filter(type="lock.force_released").latest("seq")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "holder crashed")
    assert console == []


def test_pages_are_readable_without_javascript(browser, hub, docs):
    memory_put(actor=docs.actor, namespace="code:style", key="guide", content={"rule": "ruff"})
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        log_in(page, hub, "/events/")
        expect(page.locator("#event-feed")).to_contain_text("code:style/guide")
        page.goto(hub + "/")
        expect(page.locator("#agent-docs-1")).to_be_visible()
        expect(page.get_by_text("The numbers behind the charts")).to_be_visible()
    finally:
        context.close()


def test_keyboard_users_can_skip_to_the_content(page: Page, hub, docs):
    log_in(page, hub)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()


@pytest.mark.skipif(not os.environ.get("MEMORYHUB_SCREENSHOTS"), reason="set MEMORYHUB_SCREENSHOTS=<dir> to save them")
def test_screenshots_of_pages_with_demo_data(page: Page, hub, make_agent):
    from .demo_data import load_demo_activity

    load_demo_activity(make_agent, hub)
    target = Path(os.environ["MEMORYHUB_SCREENSHOTS"])
    target.mkdir(parents=True, exist_ok=True)
    log_in(page, hub)
    wait_live(page)
    page.screenshot(path=str(target / "overview.png"), full_page=True)
    page.goto(hub + "/memories/customer:acme/profile/?a=1&b=3")
    page.screenshot(path=str(target / "memory-diff.png"), full_page=True)
    page.goto(hub + "/locks/")
    page.screenshot(path=str(target / "locks.png"), full_page=True)
