"""Django admin shows entries and receipts read-only; the OpenAPI schema documents the inbox."""

from __future__ import annotations

import pytest
from django.test import Client

from contexts.models import ContextEntry


@pytest.fixture
def admin_client_(db, django_user_model) -> Client:
    user = django_user_model.objects.create_superuser("root", password="correct-horse-battery")
    client = Client()
    client.force_login(user)
    return client


def test_admin_lists_searches_and_shows_entries_read_only(cast, send, admin_client_):
    entry = send(subject="customer:acme")
    cast.alice.client.post(f"/api/v1/contexts/{entry['id']}/ack/", {"note": "on it"}, format="json")

    changelist = admin_client_.get("/admin/contexts/contextentry/", {"q": "acme"})
    assert changelist.status_code == 200
    assert b"customer:acme" in changelist.content
    assert admin_client_.get("/admin/contexts/contextentry/", {"q": "no-such-thing"}).status_code == 200
    assert admin_client_.get("/admin/contexts/contextentry/", {"expired_at__isempty": "1"}).status_code == 200
    detail = admin_client_.get(f"/admin/contexts/contextentry/{entry['id']}/change/")
    assert detail.status_code == 200
    assert b"on it" in detail.content  # the receipts inline
    assert admin_client_.get("/admin/contexts/contextentry/add/").status_code == 403
    assert admin_client_.post(f"/admin/contexts/contextentry/{entry['id']}/delete/", {"post": "yes"}).status_code == 403
    assert ContextEntry.objects.filter(id=entry["id"]).exists()


def test_admin_lists_receipts_with_filters(cast, send, admin_client_):
    send()
    for params in ({}, {"acked_at__isempty": "1"}, {"q": "sales-1"}, {"entry_expired__exact": "0"}):
        response = admin_client_.get("/admin/contexts/receipt/", params)
        assert response.status_code == 200, params
    assert b"sales-2" in admin_client_.get("/admin/contexts/receipt/").content


def test_schema_documents_the_inbox_endpoints(human):
    response = human.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/contexts/",
        "/api/v1/contexts/{entry_id}/",
        "/api/v1/contexts/{entry_id}/read/",
        "/api/v1/contexts/{entry_id}/ack/",
        "/api/v1/inbox/",
        "/api/v1/inbox/ack/",
    ):
        assert path in paths, path
    send_body = paths["/api/v1/contexts/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert send_body["$ref"].endswith("/SendInput")
    schema = response.json()["components"]["schemas"]["SendInput"]
    assert "from_role" not in schema["properties"]
    assert set(schema["required"]) == {"context_type", "content"}
