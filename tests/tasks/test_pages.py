"""The task list a page at a time (issue 16): keyset by id with a signed cursor bound to the filters."""

from __future__ import annotations

import pytest

from .conftest import create


@pytest.mark.django_db
def test_task_pages_follow_next_and_a_forged_cursor_is_a_400(worker):
    made = [create(worker, idempotency_key=f"k{n}").json()["id"] for n in range(7)]
    seen, cursor = [], ""
    while True:
        body = worker.client.get(f"/api/v1/tasks/?role=worker&limit=3&cursor={cursor}").json()
        seen += [task["id"] for task in body["results"]]
        cursor = body["next"]
        if cursor is None:
            break
        # A task created between pages lands after the cursor: it is seen once, not shifting a page.
        made.append(create(worker, idempotency_key=f"late{len(made)}").json()["id"])
    assert seen == made
    tampered = worker.client.get("/api/v1/tasks/?role=worker&cursor=" + "x" + body["results"][0]["kind"])
    assert tampered.status_code == 400
    first = worker.client.get("/api/v1/tasks/?role=worker&limit=1").json()["next"]
    assert worker.client.get(f"/api/v1/tasks/?status=queued&cursor={first}").status_code == 400  # other filters
    assert worker.client.get("/api/v1/tasks/?offset=1001").status_code == 400
