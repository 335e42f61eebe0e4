"""The benchmark servers' URLconf (MEMORYHUB_URLCONF=tests.bench.urls): the whole hub plus the floor
endpoints, so floors are served by the same server processes, in the same run, as the hub's endpoints."""

from django.urls import include, path

from memoryhub.urls import handler404, handler500

from . import floor

urlpatterns = [
    path("api/bench/floor/read/", floor.FloorReadView.as_view()),
    path("api/bench/floor/items/<int:item_id>/", floor.FloorItemView.as_view()),
    path("", include("memoryhub.urls")),
]

__all__ = ["handler404", "handler500", "urlpatterns"]
