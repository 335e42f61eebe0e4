"""Keyset pages (issue 16): exact while writers insert, cursors opaque and tamper-checked, limits capped.

The concurrent tests use real threads and real transactions against the test database (the SQLite file
in WAL + IMMEDIATE mode by default, PostgreSQL when DATABASE_URL is set)."""

from __future__ import annotations

import threading

import pytest
from django.core import signing
from django.db import connection
from django.utils import timezone

from memoryhub.memories.models import Memory
from memoryhub.memories.services import memory_put

from .conftest import put, url


def _page(persona, query: str) -> dict:
    response = persona.client.get(f"/api/v1/memories/?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def _all_pages(persona, query: str, *, on_page=lambda: None) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    cursor = ""
    while True:
        body = _page(persona, f"{query}&cursor={cursor}" if cursor else query)
        seen += [(m["namespace"], m["key"]) for m in body["results"]]
        on_page()
        if body["next"] is None:
            return seen
        cursor = body["next"]


def _bulk(namespace_keys: list[tuple[str, str]]) -> None:
    now = timezone.now()
    Memory.objects.bulk_create(
        Memory(
            namespace=ns, key=key, content={"k": key}, created_by="t", updated_by="t", created_at=now, updated_at=now
        )
        for ns, key in namespace_keys
    )


@pytest.mark.django_db(transaction=True)
def test_pages_are_exact_while_writers_insert(sales):
    """Every memory that existed before paging began is seen exactly once, and nothing is seen twice,
    while 4 threads insert memories before, between and after the page boundaries."""
    existing = [(f"customer:{n:03d}", f"k{k}") for n in range(0, 60, 2) for k in range(3)]
    _bulk(existing)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            number = 0
            while not stop.is_set() and number < 200:
                # Odd namespaces interleave with the existing ones: rows land in pages read and unread.
                memory_put(
                    actor=sales.actor,
                    namespace=f"customer:{(number * 7 + index) % 60 | 1:03d}",
                    key=f"w{index}-{number}",
                    content={"n": number},
                )
                number += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    try:
        seen = _all_pages(sales, "namespace=customer:*&limit=7")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors, errors
    assert len(seen) == len(set(seen)), "an item was repeated across pages"
    assert set(existing) <= set(seen), "an item that existed throughout was skipped"
    assert seen == sorted(seen), "pages are in (namespace, key) order"


@pytest.mark.django_db(transaction=True)
def test_history_pages_are_exact_while_versions_are_written(sales):
    for version in range(1, 31):
        assert put(sales, "customer:acme", "profile", {"v": version}, version=version - 1 or None).status_code < 300
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            version = 30
            while not stop.is_set() and version < 80:
                memory_put(
                    actor=sales.actor,
                    namespace="customer:acme",
                    key="profile",
                    content={"v": version + 1},
                    if_match=version,
                )
                version += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    first = sales.client.get(url("customer:acme", "profile", "history/") + "?limit=4").json()
    thread.start()
    versions = [v["version"] for v in first["versions"]]
    cursor = first["next"]
    try:
        while cursor:
            body = sales.client.get(url("customer:acme", "profile", "history/") + f"?limit=4&cursor={cursor}").json()
            versions += [v["version"] for v in body["versions"]]
            cursor = body["next"]
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors
    # Newest first from where the first page stood, down to version 1: none skipped, none twice.
    assert versions == list(range(versions[0], 0, -1))


@pytest.mark.django_db
def test_a_forged_or_foreign_cursor_is_a_400(sales):
    _bulk([("customer:acme", f"k{n}") for n in range(5)] + [("customer:vip:x", "secret")])
    body = _page(sales, "namespace=customer:acme&limit=2")
    cursor = body["next"]
    assert cursor and "customer" not in cursor  # opaque: not the position in plain text

    tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    forged = signing.dumps({"k": "memories", "p": ["customer:vip:x", ""], "f": "0" * 16}, salt="other")
    for bad in (tampered, forged, "garbage", "x" * 3000):
        response = sales.client.get(f"/api/v1/memories/?namespace=customer:acme&cursor={bad}")
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid"
        assert "secret" not in response.content.decode()
    # A cursor of one list does not continue another (other filters, or history).
    assert sales.client.get(f"/api/v1/memories/?namespace=customer:*&cursor={cursor}").status_code == 400
    put(sales, "customer:acme", "profile", {"v": 1})
    history = url("customer:acme", "profile", "history/")
    assert sales.client.get(f"{history}?cursor={cursor}").status_code == 400
    assert sales.client.get("/api/v1/memories/?cursor=a%00b").status_code == 400


@pytest.mark.django_db
def test_limit_is_capped_and_offset_bounded(sales):
    _bulk([("customer:acme", f"k{n:04d}") for n in range(600)])
    body = _page(sales, "namespace=customer:acme&limit=100000")
    assert body["limit"] == 500 and len(body["results"]) == 500 and body["next"]
    assert sales.client.get("/api/v1/memories/?offset=1001").status_code == 400
    assert [m["key"] for m in _page(sales, "namespace=customer:acme&limit=1&offset=3")["results"]] == ["k0003"]
    history = sales.client.get(url("customer:acme", "k0001", "history/") + "?limit=201")
    assert history.status_code == 400


@pytest.mark.django_db
def test_history_of_many_versions_is_paged_newest_first(sales):
    for version in range(1, 8):
        put(sales, "customer:acme", "profile", {"v": version}, version=version - 1 or None)
    page = sales.client.get(url("customer:acme", "profile", "history/") + "?limit=3").json()
    assert [v["version"] for v in page["versions"]] == [7, 6, 5]
    older = sales.client.get(url("customer:acme", "profile", "history/") + f"?limit=3&cursor={page['next']}").json()
    assert [v["version"] for v in older["versions"]] == [4, 3, 2]
    last = sales.client.get(url("customer:acme", "profile", "history/") + f"?limit=3&cursor={older['next']}").json()
    assert [v["version"] for v in last["versions"]] == [1] and last["next"] is None
