from channels.security.websocket import AllowedHostsOriginValidator


class BrowserOriginValidator:
    """Sockets authenticated by the session cookie (browsers) must come from an allowed Origin, which
    stops cross-site websocket hijacking. A socket carrying `Authorization: Bearer` without an Origin is
    not a browser's (browsers cannot set that header on a websocket): the token is its credential."""

    def __init__(self, application):
        self.application = application
        self.validated = AllowedHostsOriginValidator(application)

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        if b"authorization" in headers and b"origin" not in headers:
            return await self.application(scope, receive, send)
        return await self.validated(scope, receive, send)
