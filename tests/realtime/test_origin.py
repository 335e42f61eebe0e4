"""Browser sockets (the session cookie) are accepted only from the origin the hub is served at or a
trusted one, comparing scheme, host and port (issue 12, L8): a page on another port of the same host
is another site."""

import pytest
from channels.testing import WebsocketCommunicator

from memoryhub.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)
SERVED = (b"host", b"127.0.0.1:8123")  # the Host header of a hub served on port 8123


async def accepted(human, headers) -> bool:
    cookie = (b"cookie", f"sessionid={human.cookies['sessionid'].value}".encode())
    communicator = WebsocketCommunicator(application, "/ws/v1/events/", headers=[cookie, *headers])
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return connected


@pytest.mark.parametrize(
    "origin",
    [
        b"http://127.0.0.1:8123",  # the served origin
        b"http://127.0.0.1:8000",  # DJANGO_CSRF_TRUSTED_ORIGINS (default)
        b"http://localhost:8000",
    ],
)
async def test_the_served_and_trusted_origins_are_accepted(human, origin):
    assert await accepted(human, [SERVED, (b"origin", origin)])


@pytest.mark.parametrize(
    "origin",
    [
        b"http://127.0.0.1:9999",  # another port of the same host
        b"http://localhost:9999",
        b"https://127.0.0.1:8123",  # another scheme
        b"http://127.0.0.1",  # port 80
        b"http://evil.example",
        b"http://127.0.0.1.evil:8123",
        b"http://127.0.0.1:8123.evil",
        b"null",
    ],
)
async def test_other_origins_are_refused(human, origin):
    assert not await accepted(human, [SERVED, (b"origin", origin)])


async def test_a_browser_socket_without_an_origin_is_refused(human):
    assert not await accepted(human, [SERVED])


async def test_a_host_header_outside_allowed_hosts_does_not_make_its_origin_served(human):
    assert not await accepted(human, [(b"host", b"evil.example:8123"), (b"origin", b"http://evil.example:8123")])


async def test_an_empty_bearer_header_does_not_skip_the_origin_check(human):
    assert not await accepted(human, [SERVED, (b"authorization", b"Bearer ")])


async def test_trusted_origins_with_a_wildcard_cover_subdomains_on_their_scheme_and_port(human, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://*.example.com"]
    assert await accepted(human, [SERVED, (b"origin", b"https://hub.example.com")])
    assert not await accepted(human, [SERVED, (b"origin", b"http://hub.example.com")])
    assert not await accepted(human, [SERVED, (b"origin", b"https://hub.example.com:8443")])
