from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from contexts import urls as contexts_urls
from memoryhub.agents import api as agents
from memoryhub.api.errors import json_404, json_500
from memoryhub.events import api as events
from memoryhub.health import healthz, readyz
from memoryhub.locks import urls as locks_urls
from memoryhub.memories import api as memories
from memoryhub.metrics import metrics
from memoryhub.search import api as search
from memoryhub.tasks import urls as tasks_urls

api_v1: list[URLPattern | URLResolver] = [
    path("me/", agents.MeView.as_view(), name="me"),
    path("agents/", agents.AgentListView.as_view(), name="agents"),
    path("agents/<str:agent_id>/suspend/", agents.AgentSuspendView.as_view(), name="agent-suspend"),
    path("agents/<str:agent_id>/resume/", agents.AgentResumeView.as_view(), name="agent-resume"),
    path("heartbeat/", agents.HeartbeatView.as_view(), name="heartbeat"),
    path("memories/", memories.MemoryListView.as_view(), name="memories"),
    path("memories/<str:namespace>/<str:key>/", memories.MemoryDetailView.as_view(), name="memory"),
    path(
        "memories/<str:namespace>/<str:key>/history/",
        memories.MemoryHistoryView.as_view(),
        name="memory-history",
    ),
    path(
        "memories/<str:namespace>/<str:key>/revert/",
        memories.MemoryRevertView.as_view(),
        name="memory-revert",
    ),
    path(
        "memories/<str:namespace>/<str:key>/verify/",
        memories.MemoryVerifyView.as_view(),
        name="memory-verify",
    ),
    path("events/", events.EventListView.as_view(), name="events"),
    path("search/", search.SearchView.as_view(), name="search"),
    # Spread rather than include("")-ed: a path that an empty-prefix include does not hold makes Django
    # collect every pattern of it as "tried", on each request (7 % of a task request's CPU).
    *contexts_urls.urlpatterns,
    *locks_urls.urlpatterns,
    *tasks_urls.urlpatterns,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's own script as a file: no inline script, so the CSP holds.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics),
    path("admin/", admin.site.urls),
    path("", include("memoryhub.dashboard.urls")),
]


def handler404(request, exception=None):
    if request.path.startswith("/api/"):
        return json_404(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if request.path.startswith("/api/"):
        return json_500(request)
    from django.views.defaults import server_error

    return server_error(request)
