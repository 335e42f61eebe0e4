from django.urls import path

from . import api

urlpatterns = [
    path("contexts/", api.ContextListView.as_view(), name="contexts"),
    path("contexts/<id:entry_id>/", api.ContextDetailView.as_view(), name="context"),
    path("contexts/<id:entry_id>/read/", api.ContextReadView.as_view(), name="context-read"),
    path("contexts/<id:entry_id>/ack/", api.ContextAckView.as_view(), name="context-ack"),
    path("inbox/", api.InboxView.as_view(), name="inbox"),
    path("inbox/ack/", api.InboxAckView.as_view(), name="inbox-ack"),
]
