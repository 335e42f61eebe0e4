"""ASGI entry point (daphne): HTTP through Django, websockets at /ws/v1/events/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryhub.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from memoryhub.mcp.asgi import with_mcp  # noqa: E402
from memoryhub.realtime.routing import websocket_urlpatterns  # noqa: E402
from memoryhub.realtime.security import BrowserOriginValidator  # noqa: E402
from memoryhub.search.embedders import warm_up  # noqa: E402
from memoryhub.sweepers import InProcessSweeper  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": with_mcp(django_asgi_app),  # /mcp/: MCP over Streamable HTTP (memoryhub.mcp)
        "websocket": BrowserOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
# The embedded default has no Celery beat: the server runs the sweepers itself (see memoryhub.sweepers).
application = InProcessSweeper(application)
warm_up()  # the embedding model loads while the server starts, not in its first search
