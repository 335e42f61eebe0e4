"""The dashboard's pages (SPEC 5). Included last in memoryhub/urls.py, at the site root."""

from django.contrib.auth import views as auth_views
from django.urls import path

from .views import agents, events, inbox, locks, memories, overview, policies, stale, tasks

app_name = "dashboard"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", overview.overview, name="overview"),
    path("inbox/", inbox.inbox, name="inbox"),
    path("inbox/<id:entry_id>/ack/", inbox.ack_on_behalf, name="inbox-ack"),
    path("memories/", memories.memory_list, name="memories"),
    path("memories/<str:namespace>/<str:key>/", memories.memory_detail, name="memory"),
    path("memories/<str:namespace>/<str:key>/edit/", memories.memory_edit, name="memory-edit"),
    path("memories/<str:namespace>/<str:key>/revert/", memories.memory_revert_view, name="memory-revert"),
    path("stale/", stale.stale_list, name="stale"),
    path("stale/<str:namespace>/<str:key>/verify/", stale.stale_verify, name="stale-verify"),
    path("events/", events.event_list, name="events"),
    path("events/export.<str:fmt>", events.event_export, name="events-export"),
    path("locks/", locks.lock_list, name="locks"),
    path("locks/<id:lease_id>/force-release/", locks.lease_force_release, name="lock-force-release"),
    path("locks/holds/", locks.hold_create, name="hold-place"),
    path("locks/holds/<id:hold_id>/lift/", locks.hold_remove, name="hold-lift"),
    path("tasks/", tasks.task_list, name="tasks"),
    path("tasks/<id:task_id>/requeue/", tasks.task_requeue_view, name="task-requeue"),
    path("tasks/<id:task_id>/cancel/", tasks.task_cancel_view, name="task-cancel"),
    path("agents/", agents.agent_list, name="agents"),
    path("agents/<str:agent_id>/suspend/", agents.agent_suspend, name="agent-suspend"),
    path("agents/<str:agent_id>/resume/", agents.agent_resume, name="agent-resume"),
    path("policies/", policies.policy_summary, name="policies"),
]
