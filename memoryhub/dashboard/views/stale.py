"""Stale knowledge: semantic memories past their namespace's stale_after_seconds, oldest verified
first, each with a re-verify override (the memory is still true: POST .../verify/ as the human)."""

from __future__ import annotations

from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from memoryhub import times
from memoryhub.memories.lifecycle import stale_since
from memoryhub.memories.selectors import stale_memories
from memoryhub.memories.services import memory_verify
from policies.decide import namespace_rule
from policies.selectors import policy_set

from ..access import human, staff_required
from ..forms import ReasonForm
from .common import override, page

LIMIT = 200


def _render(request, status: int = 200):
    policies, now = policy_set(), times.now()
    memories = stale_memories(policies=policies, now=now, limit=LIMIT)
    rows = [{"memory": m, "stale_since": stale_since(m, namespace_rule(policies, m.namespace))} for m in memories]
    return page(
        request,
        "dashboard/stale.html",
        {"nav": "stale", "rows": rows, "more": len(rows) >= LIMIT},
        status=status,
        page_url=reverse("dashboard:stale"),
    )


@require_GET
@staff_required
def stale_list(request):
    return _render(request)


@require_POST
@staff_required
def stale_verify(request, namespace: str, key: str):
    def call(data) -> str:
        result = memory_verify(actor=human(request), namespace=namespace, key=key, reason=data["reason"])
        return f"Verified {namespace}/{key} (version {result.memory.version}): fresh again."

    return override(
        request,
        form=ReasonForm(request.POST),
        call=call,
        back=reverse("dashboard:stale"),
        show=lambda code: _render(request, status=code),
    )
