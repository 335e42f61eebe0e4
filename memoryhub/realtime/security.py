from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def allowed_origins(scope) -> list[str]:
    """The origins a browser socket may come from: the one the hub is served at (the scheme and the
    Host header of this request, when that host is one of ALLOWED_HOSTS) and DJANGO_CSRF_TRUSTED_ORIGINS,
    the origins Django accepts for the dashboard's forms. Each is a scheme, a host and a port."""
    origins = [origin.replace("://*.", "://.") for origin in settings.CSRF_TRUSTED_ORIGINS]  # Django's wildcard
    host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin1").lower()
    domain, _port = split_domain_port(host)
    if domain and validate_host(domain, settings.ALLOWED_HOSTS):
        origins.append(f"{'https' if scope.get('scheme') == 'wss' else 'http'}://{host}")
    return origins


class BrowserOriginValidator:
    """Sockets authenticated by the session cookie (browsers) must come from an allowed Origin, which
    stops cross-site websocket hijacking: channels' OriginValidator compares scheme, host and port
    with `allowed_origins` (ALLOWED_HOSTS alone, as AllowedHostsOriginValidator checks, let any port
    of an allowed host through: another site on the same machine). A socket carrying `Authorization:
    Bearer` without an Origin is not a browser's (browsers cannot set that header on a websocket):
    the token is its credential."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer" and token.strip() and b"origin" not in headers:
            return await self.application(scope, receive, send)
        if not _parses(headers.get(b"origin", b"")):
            return await WebsocketDenier()(scope, receive, send)
        return await OriginValidator(self.application, allowed_origins(scope))(scope, receive, send)


def _parses(origin: bytes) -> bool:
    # channels' validator reads the port with urllib, which raises on one such as `8000.evil`.
    try:
        port = urlsplit(origin.decode("latin1")).port
    except ValueError:
        return False
    return port != 0
