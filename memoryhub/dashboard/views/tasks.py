"""/tasks/: the queue by status, role and kind; requeue (a stuck claim, a failed or dead task) and
cancel."""

from __future__ import annotations

from django.http import QueryDict
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from memoryhub.tasks.models import TaskStatus
from memoryhub.tasks.selectors import tasks_by_status
from memoryhub.tasks.services import task_cancel, task_requeue

from ..access import human, staff_required
from ..forms import ReasonForm, TaskFilterForm
from ..selectors import tasks_page
from .common import override, page

REQUEUEABLE = {TaskStatus.CLAIMED, TaskStatus.FAILED, TaskStatus.DEAD, TaskStatus.CANCELLED}
CANCELLABLE = {TaskStatus.QUEUED, TaskStatus.CLAIMED, TaskStatus.FAILED, TaskStatus.DEAD}


def _render(request, *, status: int = 200, params=None):
    form = TaskFilterForm(params if params is not None else request.GET)
    data = form.cleaned_data if form.is_valid() else {}
    tasks, more = tasks_page(
        status=data.get("status") or "",
        role=(data.get("role") or "").strip(),
        kind=(data.get("kind") or "").strip(),
        before=data.get("before"),
    )
    rows = [
        {"task": task, "requeue": task.status in REQUEUEABLE, "cancel": task.status in CANCELLABLE} for task in tasks
    ]
    if not form.is_valid() and status == 200:
        status = 400
    filters = (params if params is not None else request.GET).copy()
    filters.pop("before", None)
    return page(
        request,
        "dashboard/tasks.html",
        {
            "nav": "tasks",
            "form": form,
            "rows": rows,
            "counts": tasks_by_status(),
            "more": more,
            "filters": filters.urlencode(),
        },
        status=status,
        page_url=None if request.method == "GET" else reverse("dashboard:tasks"),
    )


@require_GET
@staff_required
def task_list(request):
    return _render(request)


def _act(request, task_id: int, service, verb: str):
    def call(data) -> str:
        result = service(actor=human(request), task_id=task_id, reason=data["reason"])
        return f"Task {result.task.id} ({result.task.kind}) {verb}."

    return override(
        request,
        form=ReasonForm(request.POST),
        call=call,
        back=reverse("dashboard:tasks"),
        show=lambda code: _render(request, status=code, params=QueryDict()),
    )


@require_POST
@staff_required
def task_requeue_view(request, task_id: int):
    return _act(request, task_id, task_requeue, "requeued")


@require_POST
@staff_required
def task_cancel_view(request, task_id: int):
    return _act(request, task_id, task_cancel, "cancelled")
