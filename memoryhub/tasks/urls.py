from django.urls import path

from . import api

urlpatterns = [
    path("tasks/", api.TaskListView.as_view(), name="tasks"),
    path("tasks/claim/", api.TaskClaimView.as_view(), name="task-claim"),
    path("tasks/<id:task_id>/", api.TaskDetailView.as_view(), name="task"),
    path("tasks/<id:task_id>/heartbeat/", api.TaskHeartbeatView.as_view(), name="task-heartbeat"),
    path("tasks/<id:task_id>/complete/", api.TaskCompleteView.as_view(), name="task-complete"),
    path("tasks/<id:task_id>/fail/", api.TaskFailView.as_view(), name="task-fail"),
    path("tasks/<id:task_id>/requeue/", api.TaskRequeueView.as_view(), name="task-requeue"),
    path("tasks/<id:task_id>/cancel/", api.TaskCancelView.as_view(), name="task-cancel"),
]
