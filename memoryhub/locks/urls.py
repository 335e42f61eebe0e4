from django.urls import path

from memoryhub.activity.api import ActivityView

from . import api

urlpatterns = [
    path("locks/", api.LockListView.as_view(), name="locks"),
    path("locks/contention/", api.LockContentionView.as_view(), name="lock-contention"),
    path("locks/<id:lease_id>/", api.LockDetailView.as_view(), name="lock"),
    path("locks/<id:lease_id>/heartbeat/", api.LockHeartbeatView.as_view(), name="lock-heartbeat"),
    path("holds/", api.HoldListView.as_view(), name="holds"),
    path("holds/<id:hold_id>/", api.HoldDetailView.as_view(), name="hold"),
    path("activity/", ActivityView.as_view(), name="activity"),
]
