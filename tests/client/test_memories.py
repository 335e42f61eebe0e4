"""Reading and writing memories through HubClient against a real hub."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memoryhub.client import NotFound, VersionConflict, merge_patch
from memoryhub.memories.models import Memory as MemoryRow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


def test_put_then_get_returns_content_version_and_writer(connect):
    hub = connect("docs-1", "docs")
    written = hub.put("code:review", "pr-1", {"verdict": "pending"}, reason="review started")
    assert (written.version, written.updated_by, written.reason) == (1, "docs-1", "review started")
    assert written.seq and not written.replayed

    read = hub.get("code:review", "pr-1")
    assert read.content == {"verdict": "pending"}
    assert read.version == 1
    assert read.resource == "code:review/pr-1"


def test_update_with_the_version_read_bumps_the_version(connect):
    hub = connect("docs-1", "docs")
    first = hub.put("code:review", "pr-1", {"verdict": "pending"})
    second = hub.put("code:review", "pr-1", {"verdict": "lgtm"}, version=first.version, reason="done")
    assert second.version == 2
    assert MemoryRow.objects.get(namespace="code:review", key="pr-1").content == {"verdict": "lgtm"}


def test_patch_merges_and_delete_leaves_history(connect):
    hub = connect("docs-1", "docs")
    hub.put("code:review", "pr-2", {"verdict": "pending", "files": 3})
    patched = hub.patch("code:review", "pr-2", {"verdict": "lgtm", "files": None}, version=1)
    assert patched.content == {"verdict": "lgtm"}

    deleted = hub.delete("code:review", "pr-2", version=2, reason="merged")
    assert deleted.content is None and deleted.version == 3
    with pytest.raises(NotFound):
        hub.get("code:review", "pr-2")
    history = hub.history("code:review", "pr-2")
    assert [v["version"] for v in history] == [3, 2, 1]  # newest first
    assert history[0]["reason"] == "merged"


def test_past_versions_by_number_and_time_and_revert(connect):
    hub = connect("docs-1", "docs")
    hub.put("code:review", "pr-3", {"verdict": "pending"})
    between = datetime.now(UTC)
    hub.put("code:review", "pr-3", {"verdict": "reject"}, version=1)

    assert hub.get("code:review", "pr-3", version=1).content == {"verdict": "pending"}
    assert hub.get("code:review", "pr-3", as_of=between).content == {"verdict": "pending"}

    reverted = hub.revert("code:review", "pr-3", 1, reason="wrong call")
    assert (reverted.version, reverted.content) == (3, {"verdict": "pending"})


def test_create_only_refuses_an_existing_memory_with_its_current_state(connect):
    hub = connect("docs-1", "docs")
    hub.put("code:review", "pr-4", {"verdict": "pending"}, create_only=True)
    with pytest.raises(VersionConflict) as refused:
        hub.put("code:review", "pr-4", {"verdict": "mine"}, create_only=True)
    assert refused.value.current.content == {"verdict": "pending"}


def test_list_memories_by_glob_shows_only_readable_ones(connect):
    docs = connect("docs-1", "docs")
    support = connect("support-1", "support")
    docs.put("code:review", "pr-5", {"n": 1})
    support.put("customer:vip:acme", "profile", {"tier": "gold"})

    keys = {m.resource for m in docs.list_memories(namespace="*")}
    assert "code:review/pr-5" in keys
    assert "customer:vip:acme/profile" not in keys
    assert [m.resource for m in support.list_memories(namespace="customer:*")] == ["customer:vip:acme/profile"]


def test_update_applies_a_function_and_creates_from_default(connect):
    hub = connect("worker-1", "worker")
    created = hub.update("counter:stock", "sku-1", lambda c: {**c, "n": c["n"] + 1}, default={"n": 0})
    assert (created.version, created.content) == (1, {"n": 1})
    again = hub.update("counter:stock", "sku-1", lambda c: merge_patch(c, {"label": "widgets"}))
    assert again.content == {"n": 1, "label": "widgets"}
    in_place = hub.update("counter:stock", "sku-1", lambda c: c.update(n=c["n"] + 1))
    assert (in_place.version, in_place.content["n"]) == (3, 2)
    unchanged = hub.update("counter:stock", "sku-1", lambda c: c)
    assert unchanged.version == 3  # nothing to write
