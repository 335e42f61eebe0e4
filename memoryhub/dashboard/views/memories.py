"""/memories/: the namespace tree and search; /memories/<namespace>/<key>/: the current state, the
version timeline (writer, time, reason), a diff between any two versions, edit as a human (with the
version check) and revert to a version."""

from __future__ import annotations

import re
from typing import Any

from django.http import Http404
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from memoryhub.api.params import INT_MAX
from memoryhub.errors import Invalid, NotFound
from memoryhub.memories.selectors import (
    LIFECYCLE_EVENT_TYPES,
    memories_list,
    memory_get,
    memory_history,
    memory_version,
)
from memoryhub.memories.services import memory_put, memory_revert
from memoryhub.search.selectors import memories_search

from ..access import human, staff_required
from ..forms import MemoryEditForm, MemorySearchForm, RevertForm
from ..selectors import namespace_children, pretty, version_diff
from .common import override, page

PAGE_SIZE = 100
NAMESPACE_CHARS = re.compile(r"[A-Za-z0-9_.@:-]+")
TIMELINE_PAGE = 50
SEARCH_PAGE_SIZE = 25


@require_GET
@staff_required
def memory_list(request):
    form = MemorySearchForm(request.GET)
    results: list[dict[str, Any]] = []
    status = 200
    following = None
    searched = any(request.GET.get(name) for name in ("namespace", "q", "kind", "updated_by"))
    search = None
    if form.is_valid() and form.cleaned_data["q"].strip():
        data = form.cleaned_data
        try:
            search = memories_search(
                actor=human(request),
                q=data["q"],
                mode=data["mode"] or "hybrid",
                namespaces=[data["namespace"]] if data["namespace"] else None,
                kind=data["kind"] or None,
                updated_by=data["updated_by"].strip() or None,
                limit=SEARCH_PAGE_SIZE,
                cursor=data["cursor"] or None,
            )
            results = search.results
        except Invalid as error:
            form.add_error("q", error.message)
            status = 400
    elif form.is_valid():
        data = form.cleaned_data
        try:
            results, following = memories_list(
                actor=human(request),
                namespace=data["namespace"] or None,
                kind=data["kind"] or None,
                q=data["q"].strip() or None,
                updated_by=data["updated_by"].strip() or None,
                limit=PAGE_SIZE,
                cursor=data["cursor"] or None,
            )
        except Invalid as error:
            form.add_error(None, error.message)
            status = 400
    else:
        status = 400
    prefix = _tree_prefix(request.GET.get("tree"))
    tree, tree_more = namespace_children(prefix, after=_tree_prefix(request.GET.get("tree_after")) or None)
    filters = request.GET.copy()
    for name in ("page", "cursor", "tree", "tree_after"):
        filters.pop(name, None)
    return page(
        request,
        "dashboard/memories.html",
        {
            "nav": "memories",
            "form": form,
            "tree": tree,
            "tree_prefix": prefix,
            "tree_more": tree_more,
            "results": results,
            "search": search,
            "searched": searched,
            "next_cursor": following,
            "first_page": bool(form.is_valid() and form.cleaned_data["cursor"]),
            "filters": filters.urlencode(),
        },
        status=status,
    )


def _tree_prefix(raw: str | None) -> str:
    """A namespace prefix from the query string, or "" (the root) when it is not one."""
    value = (raw or "").strip()
    return value if value and len(value) <= 255 and NAMESPACE_CHARS.fullmatch(value) else ""


def _version_number(raw: str | None) -> int | None:
    try:
        value = int(raw or "")
    except ValueError:
        return None
    return value if 0 < value <= INT_MAX else None


def _changed_keys(item: dict[str, Any]) -> list[str]:
    if item["type"] == "memory.created" and isinstance(item["content"], dict):
        return sorted(item["content"])
    diff = item["diff"]
    return sorted(name or "(whole content)" for name in {*diff["added"], *diff["removed"], *diff["changed"]})


def _render_detail(request, namespace: str, key: str, *, status: int = 200, edit_form: MemoryEditForm | None = None):
    """The memory, one page of its timeline (newest first, `vcursor` for older ones) and a comparison
    of any two versions, each read by the (resource, version) index: the page costs the same with 50
    versions or 50,000."""
    actor = human(request)
    try:
        entries, older = memory_history(
            actor=actor, namespace=namespace, key=key, limit=TIMELINE_PAGE, cursor=request.GET.get("vcursor") or None
        )
        latest = memory_history(actor=actor, namespace=namespace, key=key, limit=1, lifecycle=False)[0][0]
    except (NotFound, Invalid):
        raise Http404(f"no memory {namespace}/{key}")
    # This page's versions, and apart from them its lifecycle events (verified, stale, superseded, archived).
    history = [item for item in entries if item["type"] not in LIFECYCLE_EVENT_TYPES]
    lifecycle = [item for item in entries if item["type"] in LIFECYCLE_EVENT_TYPES]
    try:
        # A superseded, past-validity or archived memory is shown too: a human reads the whole record.
        current = memory_get(actor=actor, namespace=namespace, key=key, include_invalid=True)
    except NotFound:
        current = None  # deleted or expired: its history stays

    def version(number: int | None) -> dict[str, Any] | None:
        if number is None:
            return None
        return memory_version(actor=actor, namespace=namespace, key=key, version=number)

    b_item = version(_version_number(request.GET.get("b"))) or latest
    b = b_item["version"]
    a_item = version(_version_number(request.GET.get("a"))) or version(b - 1 if b > 1 else None) or b_item
    a = a_item["version"]
    comparison = version_diff(a_item["content"], b_item["content"])

    timeline = []
    for index, item in enumerate(history):
        # The next older version on this page, or (the page's last item) the number before it.
        previous = history[index + 1]["version"] if index + 1 < len(history) else (item["version"] or 1) - 1
        timeline.append(
            {
                **item,
                "previous": previous or None,
                "changed_keys": _changed_keys(item),
                "revertable": current is not None
                and item["content"] is not None
                and item["version"] != current["version"],
            }
        )

    moved_on = False
    if edit_form is not None and edit_form.is_bound and current is not None:
        seen = _version_number(edit_form.data.get("version"))
        if seen != current["version"]:
            # Keep the human's text but let the next save go against what they now see on the page.
            data = {**edit_form.data, "version": str(current["version"])}
            edit_form, moved_on = MemoryEditForm(data), True
            edit_form.is_valid()
    if edit_form is None:
        edit_form = MemoryEditForm(
            initial={
                "content": pretty(current["content"]) if current else "{}",
                "version": current["version"] if current else None,
            }
        )
    return page(
        request,
        "dashboard/memory_detail.html",
        {
            "nav": "memories",
            "namespace": namespace,
            "key": key,
            "resource": f"{namespace}/{key}",
            "current": current,
            "current_json": pretty(current["content"]) if current else "",
            "timeline": timeline,
            "older": older,
            "latest_version": latest["version"],
            "lifecycle": lifecycle,
            "a": a,
            "b": b,
            "a_item": a_item,
            "b_item": b_item,
            "comparison": comparison,
            "edit_form": edit_form,
            "moved_on": moved_on,
        },
        status=status,
        page_url=reverse("dashboard:memory", args=[namespace, key]) + (f"?a={a}&b={b}" if request.GET else ""),
    )


@require_GET
@staff_required
def memory_detail(request, namespace: str, key: str):
    return _render_detail(request, namespace, key)


@require_POST
@staff_required
def memory_edit(request, namespace: str, key: str):
    form = MemoryEditForm(request.POST)

    def call(data) -> str:
        version = data.get("version")
        result = memory_put(
            actor=human(request),
            namespace=namespace,
            key=key,
            content=data["content"],
            kind=data.get("kind") or None,
            reason=data["reason"],
            # The version the human saw; none means it was deleted then, so only re-create if still absent.
            if_match=version,
            if_none_match=version is None,
        )
        return f"Saved {namespace}/{key} as version {result.memory.version}."

    return override(
        request,
        form=form,
        call=call,
        back=reverse("dashboard:memory", args=[namespace, key]),
        show=lambda code: _render_detail(request, namespace, key, status=code, edit_form=form),
    )


@require_POST
@staff_required
def memory_revert_view(request, namespace: str, key: str):
    def call(data) -> str:
        result = memory_revert(
            actor=human(request),
            namespace=namespace,
            key=key,
            version=data["version"],
            reason=data["reason"],
            if_match=data.get("current"),
        )
        return f"Reverted {namespace}/{key} to the content of version {data['version']} (now version {result.memory.version})."

    return override(
        request,
        form=RevertForm(request.POST),
        call=call,
        back=reverse("dashboard:memory", args=[namespace, key]),
        show=lambda code: _render_detail(request, namespace, key, status=code),
    )
