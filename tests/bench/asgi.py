"""The benchmark's ASGI app (daphne tests.bench.asgi:application): the hub's application, plus a floor
websocket at /ws/bench/floor/ served by the same processes: a minimal Channels consumer that joins
one group and forwards each message, with no authentication, no log, no filtering."""

import json

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from django.urls import path

from memoryhub.asgi import application as hub_application

FLOOR_GROUP = "bench.floor"


class FloorConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.channel_layer.group_add(FLOOR_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(FLOOR_GROUP, self.channel_name)

    async def floor_event(self, message) -> None:
        await self.send(text_data=json.dumps({"type": "event", "seq": message["seq"], "event": message["event"]}))


floor_application = URLRouter([path("ws/bench/floor/", FloorConsumer.as_asgi())])


async def application(scope, receive, send):
    if scope["type"] == "websocket" and scope["path"].startswith("/ws/bench/"):
        return await floor_application(scope, receive, send)
    return await hub_application(scope, receive, send)
