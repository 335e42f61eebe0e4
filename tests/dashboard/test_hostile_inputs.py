"""The dashboard takes what the API takes: hostile query strings on every page (enumerated from its
URLconf) and hostile JSON in the edit form get a 4xx or the form's error, never a 5xx, and write
nothing."""

import pytest
from django.urls import URLPattern

from memoryhub.dashboard.urls import urlpatterns
from memoryhub.events.models import Event
from memoryhub.memories.services import memory_put

pytestmark = pytest.mark.django_db

QUERIES = [
    "namespace=x%00",
    "q=%00",
    "agent=a%00",
    "resource=%FF",
    "before=99999999999999999999",
    "before=%C2%B2",
    "start=2020-13-45T00:00",
    "page=99999999999999999999",
    "a=%C2%B2&b=%D9%A3",
    "role=worker%0A",
]
PAGES = [
    pattern.pattern._route
    for pattern in urlpatterns
    if isinstance(pattern, URLPattern) and "<" not in str(pattern.pattern) and pattern.name not in ("logout",)
]


@pytest.mark.parametrize("route", PAGES)
def test_every_page_refuses_hostile_query_strings_without_a_5xx(staff, route):
    failures = []
    for query in QUERIES:
        response = staff.get(f"/{route}?{query}")
        if response.status_code >= 500:
            failures.append(f"/{route}?{query}: {response.status_code}")
    assert not failures, failures


@pytest.mark.parametrize(
    "content",
    [
        '{"a": "\\u0000"}',
        '{"\\ud800": 1}',
        '{"n": NaN}',
        '{"n": 1e400}',
        "[" * 5000 + "]" * 5000,
        '{"a":' * 200 + "1" + "}" * 200,
    ],
)
def test_the_edit_form_refuses_json_the_api_refuses(staff, content):
    memory_put(actor=staff.actor, namespace="scratch:a", key="k", content={"n": 1})
    before = Event.objects.count()
    response = staff.post("/memories/scratch:a/k/edit/", {"content": content, "reason": "probe", "version": 1})
    assert response.status_code < 500
    assert Event.objects.count() == before
