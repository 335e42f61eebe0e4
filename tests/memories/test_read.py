"""Reading memories: current state, the past rebuilt from the log, history with diffs, revert, lists."""

import json
import time

from django.utils import timezone

from memoryhub.events.models import Event

from .conftest import patch, put, url


def test_get_returns_the_memory_with_its_etag(sales):
    put(sales, "customer:acme", "profile", {"name": "Acme"}, reason="met at fair")
    response = sales.client.get(url("customer:acme", "profile"))
    assert response.status_code == 200
    assert response["ETag"] == '"1"'
    body = response.json()
    assert {
        k: body[k] for k in ("namespace", "key", "kind", "content", "version", "created_by", "updated_by", "reason")
    } == {
        "namespace": "customer:acme",
        "key": "profile",
        "kind": "semantic",
        "content": {"name": "Acme"},
        "version": 1,
        "created_by": "sales-1",
        "updated_by": "sales-1",
        "reason": "met at fair",
    }
    assert sales.client.get(url("customer:acme", "profile"), HTTP_IF_NONE_MATCH='"1"').status_code == 304


def test_unreadable_namespace_is_404_not_403(sales, support):
    put(support, "customer:vip:acme", "secret", {"a": 1})
    for path in (
        url("customer:vip:acme", "secret"),
        url("customer:vip:acme", "secret", "history/"),
        url("customer:vip:acme", "absent"),
    ):
        response = sales.client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_private_namespace_is_readable_by_self_only(make_agent, policies):
    me = make_agent("docs-1", "docs")
    twin = make_agent("docs-2", "docs")
    assert put(me, "agent:private:docs-1", "plan", {"step": 1}).status_code == 201
    assert me.client.get(url("agent:private:docs-1", "plan")).status_code == 200
    assert twin.client.get(url("agent:private:docs-1", "plan")).status_code == 404
    assert put(twin, "agent:private:docs-1", "plan", {"step": 99}).status_code == 403


def test_versions_and_as_of_are_rebuilt_from_the_log(sales):
    put(sales, "customer:acme", "profile", {"stage": "lead"}, reason="v1")
    time.sleep(0.01)
    between = timezone.now()
    time.sleep(0.01)
    put(sales, "customer:acme", "profile", {"stage": "demo"}, version=1, reason="v2")
    old = sales.client.get(url("customer:acme", "profile") + "?version=1").json()
    assert (old["version"], old["content"], old["reason"]) == (1, {"stage": "lead"}, "v1")
    as_of = sales.client.get(url("customer:acme", "profile"), {"as_of": between.isoformat()}).json()
    assert as_of["content"] == {"stage": "lead"} and as_of["version"] == 1
    assert sales.client.get(url("customer:acme", "profile") + "?version=9").status_code == 404
    before_anything = sales.client.get(url("customer:acme", "profile"), {"as_of": "2000-01-01T00:00:00Z"})
    assert before_anything.status_code == 404


def test_history_lists_every_version_with_actor_reason_and_diff(sales, support, human):
    put(sales, "customer:acme", "profile", {"name": "Acme", "size": 10}, reason="created")
    patch(support, "customer:acme", "profile", {"size": 12, "tier": "gold"}, version=1, reason="bigger")
    patch(human, "customer:acme", "profile", {"name": None}, version=2, reason="anonymise")
    # Newest first: a history is read a page at a time from its end.
    versions = sales.client.get(url("customer:acme", "profile", "history/")).json()["versions"][::-1]
    assert [(v["version"], v["actor"]["id"], v["actor"]["kind"], v["reason"]) for v in versions] == [
        (1, "sales-1", "agent", "created"),
        (2, "support-1", "agent", "bigger"),
        (3, "alice", "human", "anonymise"),
    ]
    assert versions[1]["actor"]["role"] == "support"
    assert versions[1]["diff"] == {
        "added": {"tier": "gold"},
        "removed": {},
        "changed": {"size": {"from": 10, "to": 12}},
    }
    assert versions[2]["diff"]["removed"] == {"name": "Acme"}


def test_revert_writes_a_new_version_equal_to_the_old_one(sales):
    put(sales, "customer:acme", "profile", {"stage": "lead"})
    put(sales, "customer:acme", "profile", {"stage": "garbage"}, version=1)
    response = sales.client.post(
        url("customer:acme", "profile", "revert/"),
        json.dumps({"version": 1, "reason": "bad write"}),
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["content"], body["reason"]) == (3, {"stage": "lead"}, "bad write")
    assert Event.objects.get(seq=body["seq"]).type == "memory.reverted"
    versions = sales.client.get(url("customer:acme", "profile", "history/")).json()["versions"]
    assert [v["type"] for v in versions] == ["memory.reverted", "memory.updated", "memory.created"]
    missing = sales.client.post(
        url("customer:acme", "profile", "revert/"), json.dumps({"version": 7}), content_type="application/json"
    )
    assert missing.status_code == 404


def test_list_shows_only_readable_memories_with_filters(sales, support, docs):
    put(sales, "customer:acme", "profile", {"name": "Acme corp"})
    put(support, "customer:vip:globex", "profile", {"name": "Globex"})
    put(docs, "code:style", "guide", {"text": "use ruff"})
    keys = lambda response: [(m["namespace"], m["key"]) for m in response.json()["results"]]  # noqa: E731
    assert keys(sales.client.get("/api/v1/memories/")) == [("code:style", "guide"), ("customer:acme", "profile")]
    assert keys(support.client.get("/api/v1/memories/?namespace=customer:*")) == [
        ("customer:acme", "profile"),
        ("customer:vip:globex", "profile"),
    ]
    assert keys(sales.client.get("/api/v1/memories/?q=ruff")) == [("code:style", "guide")]
    assert keys(sales.client.get("/api/v1/memories/?updated_by=docs-1")) == [("code:style", "guide")]
    assert keys(sales.client.get("/api/v1/memories/?limit=1&offset=1")) == [("customer:acme", "profile")]
    assert sales.client.get("/api/v1/memories/?limit=x").status_code == 400
