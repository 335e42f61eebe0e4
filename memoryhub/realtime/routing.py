from django.urls import path

from .consumers import EventStreamConsumer

websocket_urlpatterns = [path("ws/v1/events/", EventStreamConsumer.as_asgi())]
