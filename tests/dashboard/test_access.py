"""Who may use the dashboard: anonymous visitors go to /login/ (and come back), logged-in users who
are not staff get a 403 page that says why, staff see every page. Overrides need a CSRF token."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from memoryhub.agents.models import Agent
from memoryhub.events.models import Event
from memoryhub.memories.services import memory_put

from .conftest import PASSWORD

PAGES = [
    "/",
    "/?range=24h",
    "/inbox/",
    "/memories/",
    "/memories/?namespace=code:*&q=ruff",
    "/memories/code:style/guide/",
    "/events/",
    "/events/?type=memory.*",
    "/events/export.jsonl",
    "/events/export.csv",
    "/locks/",
    "/tasks/",
    "/agents/",
    "/policies/",
]

OVERRIDES = [
    "/agents/docs-1/suspend/",
    "/agents/docs-1/resume/",
    "/locks/1/force-release/",
    "/locks/holds/",
    "/locks/holds/1/lift/",
    "/tasks/1/requeue/",
    "/tasks/1/cancel/",
    "/inbox/1/ack/",
    "/memories/code:style/guide/edit/",
    "/memories/code:style/guide/revert/",
]


@pytest.fixture
def memory(docs):
    memory_put(actor=docs.actor, namespace="code:style", key="guide", content={"rule": "use ruff"})


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.django_db
@pytest.mark.parametrize("url", PAGES)
def test_anonymous_visitor_is_sent_to_login_and_back(client, url):
    response = client.get(url)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/login/"
    assert parse_qs(location.query)["next"] == [url]


@pytest.mark.parametrize("url", PAGES)
def test_non_staff_user_gets_a_403_page_saying_the_dashboard_is_for_staff(nonstaff, memory, url):
    response = nonstaff.get(url)
    assert response.status_code == 403
    text = response.content.decode()
    assert "Staff only" in text
    assert "bob" in text and "not a staff account" in text


@pytest.mark.parametrize("url", PAGES)
def test_staff_user_sees_every_page(staff, memory, url):
    response = staff.get(url)
    assert response.status_code == 200, body_of(response)[:2000]


@pytest.mark.parametrize("url", OVERRIDES)
def test_anonymous_override_goes_to_login_and_changes_nothing(client, memory, url):
    before = Event.objects.count()
    response = client.post(url, {"reason": "x", "note": "x", "agent": "docs-1", "resource": "code:style"})
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/login/"
    assert Event.objects.count() == before


@pytest.mark.parametrize("url", OVERRIDES)
def test_non_staff_override_is_refused_and_changes_nothing(nonstaff, memory, url):
    before = Event.objects.count()
    response = nonstaff.post(url, {"reason": "x", "note": "x", "agent": "docs-1", "resource": "code:style"})
    assert response.status_code == 403
    assert Event.objects.count() == before
    assert Agent.objects.get(id="docs-1").status == "active"


def test_override_pages_answer_405_to_get(staff):
    assert staff.get("/agents/docs-1/suspend/").status_code == 405


def test_override_without_csrf_token_is_refused(django_user_model, docs):
    django_user_model.objects.create_user("olivia", password=PASSWORD, is_staff=True)
    browser = Client(enforce_csrf_checks=True)
    browser.login(username="olivia", password=PASSWORD)
    response = browser.post("/agents/docs-1/suspend/", {"reason": "forged"})
    assert response.status_code == 403
    assert "The form could not be checked" in response.content.decode()
    assert Agent.objects.get(id="docs-1").status == "active"


def test_login_page_logs_a_staff_user_in_and_returns_to_next(django_user_model, db):
    django_user_model.objects.create_user("olivia", password=PASSWORD, is_staff=True)
    browser = Client()
    page = browser.get("/login/?next=/agents/")
    assert page.status_code == 200
    assert 'name="next" value="/agents/"' in page.content.decode()
    response = browser.post("/login/", {"username": "olivia", "password": PASSWORD, "next": "/agents/"})
    assert response.status_code == 302
    assert response["Location"] == "/agents/"
    assert browser.get("/agents/").status_code == 200


def test_login_with_a_wrong_password_says_so(django_user_model, db):
    django_user_model.objects.create_user("olivia", password=PASSWORD, is_staff=True)
    response = Client().post("/login/", {"username": "olivia", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_logout_ends_the_session(staff):
    response = staff.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert staff.get("/").status_code == 302


def test_unknown_page_is_a_404_page(staff):
    response = staff.get("/no-such-page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()
