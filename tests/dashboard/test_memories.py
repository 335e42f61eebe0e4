"""The memory browser: tree and search, the version timeline, a diff between any two versions, and
the human overrides (edit with the version check, revert), each an event with the human and reason."""

import json

import pytest
from django.utils import timezone

from memoryhub.actors import Actor
from memoryhub.events.models import Event
from memoryhub.memories.models import Memory
from memoryhub.memories.services import memory_delete, memory_patch, memory_put

from .conftest import last_event, messages_of

URL = "/memories/customer:acme/profile/"
# Deleting changes every field, and each role owns one: only a human may delete the profile.
OTHER_HUMAN = Actor(kind="human", id="hank", role="human")


@pytest.fixture
def profile(sales, support):
    """Three versions by two agents: v1 created, v2 seats changed, v3 health added."""
    memory_put(
        actor=sales.actor,
        namespace="customer:acme",
        key="profile",
        content={"name": "Acme", "deal_stage": "proposal", "seats": 40},
        reason="first call",
    )
    memory_put(
        actor=sales.actor,
        namespace="customer:acme",
        key="profile",
        content={"name": "Acme", "deal_stage": "proposal", "seats": 60},
        reason="CFO wants 60 seats",
        if_match=1,
    )
    memory_put(
        actor=support.actor,
        namespace="customer:acme",
        key="profile",
        content={"name": "Acme", "deal_stage": "proposal", "seats": 60, "health": "at_risk"},
        reason="three P1 tickets",
        if_match=2,
    )
    return Memory.objects.get(namespace="customer:acme", key="profile")


def edit(staff, content, *, version, reason="fixing a bad write", **extra):
    data = {"content": json.dumps(content), "reason": reason, "kind": "", **extra}
    if version is not None:
        data["version"] = version
    return staff.post(URL + "edit/", data)


# --- reading ------------------------------------------------------------------------------------------


def test_timeline_names_every_version_writer_and_reason(staff, profile):
    page = staff.get(URL).content.decode()
    for text in ("v1", "v2", "v3", "sales-1", "support-1", "first call", "CFO wants 60 seats", "three P1 tickets"):
        assert text in page
    assert "changed: health" in page


def test_default_diff_is_the_latest_change(staff, profile):
    response = staff.get(URL)
    assert (response.context["a"], response.context["b"]) == (2, 3)
    comparison = response.context["comparison"]
    assert comparison["added"] == [("health", "at_risk")]
    assert comparison["changed"] == [] and comparison["removed"] == []


def test_diff_between_any_two_versions(staff, profile):
    response = staff.get(URL + "?a=1&b=3")
    comparison = response.context["comparison"]
    assert comparison["changed"] == [("seats", {"from": 40, "to": 60})]
    assert comparison["added"] == [("health", "at_risk")]
    lines = [(line["kind"], line["text"]) for line in comparison["lines"]]
    assert any(kind == "del" and '"seats": 40' in text for kind, text in lines)
    assert any(kind == "add" and '"seats": 60' in text for kind, text in lines)
    assert any(kind == "add" and '"health": "at_risk"' in text for kind, text in lines)
    page = response.content.decode()
    assert "Version 1 → version 3" in page


def test_diff_backwards_and_of_a_version_with_itself(staff, profile):
    backwards = staff.get(URL + "?a=3&b=1").context["comparison"]
    assert backwards["removed"] == [("health", "at_risk")]
    same = staff.get(URL + "?a=2&b=2")
    assert same.context["comparison"]["same"]
    assert "same content" in same.content.decode()


def test_unknown_versions_in_the_query_fall_back_to_the_latest_change(staff, profile):
    response = staff.get(URL + "?a=99&b=banana")
    assert response.status_code == 200
    assert (response.context["a"], response.context["b"]) == (2, 3)


def test_deleted_memory_keeps_its_timeline(staff, profile):
    memory_delete(actor=OTHER_HUMAN, namespace="customer:acme", key="profile", if_match=3, reason="duplicate")
    response = staff.get(URL)
    assert response.status_code == 200
    assert response.context["current"] is None
    assert "deleted or expired" in response.content.decode()
    assert "memory.deleted" in response.content.decode()


def test_unknown_memory_is_404(staff, policies):
    assert staff.get("/memories/customer:acme/nothing/").status_code == 404
    assert staff.get("/memories/bad name/x/").status_code == 404


def test_namespace_tree_shows_one_level_at_a_time(staff, profile, docs):
    memory_put(actor=docs.actor, namespace="code:style", key="guide", content={"rule": "ruff"})
    memory_put(actor=docs.actor, namespace="code:review", key="pr-1", content={"ok": True})
    _bulk_namespaces(1, namespace="code")  # a namespace that is also a prefix (no policy covers it)
    tree = staff.get("/memories/").context["tree"]
    by_name = {node.name: node for node in tree}
    assert set(by_name) == {"code", "customer"}
    assert (by_name["code"].leaf, by_name["code"].namespace) == (False, True)
    below = staff.get("/memories/?tree=code:").context["tree"]
    assert [(node.path, node.leaf, node.namespace) for node in below] == [
        ("code:review", True, True),
        ("code:style", True, True),
    ]


def test_namespace_tree_pages_beyond_2000_namespaces(staff, docs):
    """The old tree stopped silently at 2,000 namespaces; now every one is reachable, a page at a time."""
    _bulk_namespaces(2_050)
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        response = staff.get(f"/memories/?tree=docs:&tree_after={after}")
        seen += [node.path for node in response.context["tree"]]
        pages += 1
        after = response.context["tree_more"]
        if not after:
            break
    assert seen == [f"docs:{n:05d}" for n in range(2_050)]
    assert pages == 21  # 100 a page
    assert "More namespaces" not in response.content.decode()


def test_search_by_namespace_glob_and_text(staff, profile, docs):
    memory_put(actor=docs.actor, namespace="code:style", key="guide", content={"rule": "use ruff"})
    found = staff.get("/memories/?namespace=code:*").context["results"]
    assert [(m["namespace"], m["key"]) for m in found] == [("code:style", "guide")]
    found = staff.get("/memories/?q=at_risk&mode=lexical").context["results"]
    assert [(m["namespace"], m["key"]) for m in found] == [("customer:acme", "profile")]
    found = staff.get("/memories/?updated_by=docs-1").context["results"]
    assert [m["key"] for m in found] == ["guide"]


def test_search_with_an_invalid_namespace_says_so(staff, policies):
    response = staff.get("/memories/?namespace=bad name")
    assert response.status_code == 400
    assert "namespace must be" in response.content.decode()


# --- edit as human -----------------------------------------------------------------------------------


def test_edit_writes_a_version_with_the_human_as_actor_and_the_reason(staff, profile):
    response = edit(staff, {"name": "Acme Corp", "seats": 60}, version=3, reason="name was wrong")
    assert response.status_code == 303
    assert response["Location"] == URL
    memory = Memory.objects.get(id=profile.id)
    assert (memory.version, memory.content, memory.updated_by) == (
        4,
        {"name": "Acme Corp", "seats": 60},
        "human:olivia",
    )
    event = last_event("memory.updated")
    assert (event.actor_kind, event.actor_id, event.reason, event.version) == ("human", "olivia", "name was wrong", 4)
    assert event.after == {"name": "Acme Corp", "seats": 60}
    page = staff.get(URL)
    assert "Saved customer:acme/profile as version 4." in messages_of(page)


def test_edit_from_a_stale_version_is_refused_and_keeps_the_humans_text(staff, profile):
    response = edit(staff, {"name": "Mine"}, version=2)
    assert response.status_code == 412
    memory = Memory.objects.get(id=profile.id)
    assert memory.version == 3 and memory.content["health"] == "at_risk"
    assert not Event.objects.filter(type="memory.updated", actor_kind="human").exists()
    refused = last_event("conflict.rejected")
    assert (refused.actor_kind, refused.actor_id) == ("human", "olivia")
    page = response.content.decode()
    assert "is at version 3, not 2" in page
    assert "Mine" in page  # the textarea still holds what the human typed
    # The form now carries the version the human sees, so saving again is a deliberate overwrite.
    assert response.context["edit_form"]["version"].value() == "3"
    assert response.context["moved_on"]


def test_edit_without_a_reason_is_refused(staff, profile):
    response = edit(staff, {"name": "x"}, version=3, reason="  ")
    assert response.status_code == 400
    assert "Give a reason" in response.content.decode()
    assert Memory.objects.get(id=profile.id).version == 3


@pytest.mark.parametrize(
    ("raw", "message"),
    [("{not json", "Not valid JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_edit_with_content_that_is_not_a_json_object_is_refused(staff, profile, raw, message):
    response = staff.post(URL + "edit/", {"content": raw, "reason": "r", "version": 3})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Memory.objects.get(id=profile.id).version == 3


def test_edit_that_breaks_a_limit_shows_the_services_message(staff, policies, docs):
    memory_put(actor=docs.actor, namespace="small:box", key="k", content={"a": 1})
    response = staff.post(
        "/memories/small:box/k/edit/", {"content": json.dumps({"a": "x" * 200}), "reason": "r", "version": 1}
    )
    assert response.status_code == 413
    assert "allows 100" in response.content.decode()


def test_edit_recreates_a_deleted_memory_only_if_still_absent(staff, profile):
    memory_delete(actor=OTHER_HUMAN, namespace="customer:acme", key="profile", if_match=3)
    response = edit(staff, {"name": "Acme again"}, version=None, reason="deleted by mistake")
    assert response.status_code == 303
    memory = Memory.objects.get(id=profile.id)
    assert memory.content == {"name": "Acme again"} and memory.deleted_at is None
    event = last_event("memory.created")
    assert (event.actor_id, event.reason) == ("olivia", "deleted by mistake")


def test_human_edits_a_locked_namespace_without_holding_the_lock(staff, inventory):
    from memoryhub.locks.services import lock_acquire

    lease = lock_acquire(actor=inventory.actor, resources=["memory:inventory:sku-1/count"], ttl_seconds=30).lease
    memory_put(
        actor=inventory.actor,
        namespace="inventory:sku-1",
        key="count",
        content={"units": 5},
        fencing_token=lease.fencing_token,
    )
    response = staff.post(
        "/memories/inventory:sku-1/count/edit/",
        {"content": json.dumps({"units": 1}), "reason": "shelf count", "version": 1},
    )
    assert response.status_code == 303
    assert Memory.objects.get(namespace="inventory:sku-1").content == {"units": 1}


# --- revert -------------------------------------------------------------------------------------------


def test_revert_makes_a_new_version_with_the_old_content(staff, profile):
    response = staff.post(URL + "revert/", {"version": 1, "current": 3, "reason": "support's edit was a mistake"})
    assert response.status_code == 303
    memory = Memory.objects.get(id=profile.id)
    assert memory.version == 4
    assert memory.content == {"name": "Acme", "deal_stage": "proposal", "seats": 40}
    event = last_event("memory.reverted")
    assert (event.actor_kind, event.actor_id, event.reason) == ("human", "olivia", "support's edit was a mistake")
    assert event.before["health"] == "at_risk"
    # Nothing is erased: all four versions are in the timeline.
    assert [item["version"] for item in staff.get(URL).context["timeline"]] == [4, 3, 2, 1]


def test_revert_when_the_memory_moved_on_is_refused(staff, profile, support):
    memory_patch(
        actor=support.actor,
        namespace="customer:acme",
        key="profile",
        patch={"health": "ok"},
        if_match=3,
    )
    response = staff.post(URL + "revert/", {"version": 1, "current": 3, "reason": "undo"})
    assert response.status_code == 412
    assert Memory.objects.get(id=profile.id).version == 4
    assert not Event.objects.filter(type="memory.reverted").exists()
    assert "Someone changed it since you opened the page" in response.content.decode()


def test_revert_needs_a_reason(staff, profile):
    response = staff.post(URL + "revert/", {"version": 1, "current": 3, "reason": ""})
    assert response.status_code == 400
    assert Memory.objects.get(id=profile.id).version == 3


def test_revert_to_a_version_that_does_not_exist_is_refused(staff, profile):
    response = staff.post(URL + "revert/", {"version": 42, "current": 3, "reason": "r"})
    assert response.status_code == 404
    assert "has no version 42" in response.content.decode()


def test_the_search_box_ranks_and_highlights(staff, profile, docs):
    memory_put(actor=docs.actor, namespace="code:style", key="guide", content={"rule": "use ruff for <lint>"})
    response = staff.get("/memories/?q=ruff&mode=lexical")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<mark>ruff</mark>" in html and "<lint>" not in html
    assert [(m["namespace"], m["key"]) for m in response.context["results"]] == [("code:style", "guide")]
    assert staff.get("/memories/?q=" + "x" * 2000).status_code == 400


def _bulk_namespaces(count: int, namespace: str = "docs:{n:05d}") -> None:
    """`count` memories in namespaces of their own, stored directly (setup only: no service needed to
    read a tree)."""
    now = timezone.now()
    Memory.objects.bulk_create(
        Memory(
            namespace=namespace.format(n=n),
            key="k",
            content={"n": n},
            created_by="docs-1",
            updated_by="docs-1",
            created_at=now,
            updated_at=now,
        )
        for n in range(count)
    )
