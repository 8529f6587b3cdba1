"""Attacks on the Bearer token handling (registry._fetch_token, _get): hostile or broken token servers.

What should happen: a token answer the client cannot use fails the task with an ImageError naming the token
server (the module turns anything else into "unexpected error: <Type>: ..." with a traceback); credentials go
only to the registry and its realm.
"""

import json

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from fake_registry import FakeRegistry
from imagetools import Image


def check_pull(server, pki, **kw):
    """The manifest and the config through the registry (check mode: no home)."""
    return stage_image(None, "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], check_mode=True,
                       network=Network(environ={}), **kw)


def token_answer(body, token="t0k"):
    def answer(handler):
        handler.registry.token_requests += 1
        handler.registry.tokens.add(token)
        handler.send(200, body if isinstance(body, bytes) else json.dumps(body).encode(),
                     {"Content-Type": "application/json"})
    return answer


@pytest.fixture
def bearer(server):
    server.auth = "bearer"
    server.push("strata/app", Image())
    return server


def _pull_ends_cleanly(server, pki):
    """The pull either succeeds or fails with an ImageError; any other exception is the finding."""
    try:
        return check_pull(server, pki)
    except ImageError as e:
        return e


def test_attack_token_expires_in_a_huge_integer(bearer, pki, waits):
    """{"expires_in": 1000...0 (400 digits)}: valid JSON, a Python int. _fetch_token checks it is an int >= 60
    and adds it to time.monotonic(): OverflowError (int too large to convert to float) escapes as an
    'unexpected error' with a traceback. Expected: capped (or refused) like any other unusable expires_in;
    docker/distribution decodes expires_in into an int and fails cleanly with a JSON error."""
    bearer.override["/token"] = token_answer(b'{"token": "t0k", "expires_in": 1' + b"0" * 400 + b"}")
    outcome = _pull_ends_cleanly(bearer, pki)
    assert not isinstance(outcome, BaseException) or isinstance(outcome, ImageError)


def test_attack_token_that_is_not_latin1(bearer, pki, waits):
    """A token with a character outside latin-1 ("\\u2603"): _fetch_token accepts any str without CR/LF, then
    http.client encodes the Authorization header as latin-1: UnicodeEncodeError escapes _send_once (it is
    neither OSError nor HTTPException) as an 'unexpected error'. Go's net/http refuses such a header value
    with a clean error; here it should be 'the token server's answer holds no (usable) token'."""
    bearer.override["/token"] = token_answer({"token": "t\u2603k", "expires_in": 300}, token="t\u2603k")
    outcome = _pull_ends_cleanly(bearer, pki)
    assert not isinstance(outcome, BaseException) or isinstance(outcome, ImageError)


# -- what held up (kept as regression checks) ----------------------------------------------------------

@pytest.mark.parametrize("body, fragment", [
    ({"expires_in": 300}, "holds no token"),
    ({"token": "", "expires_in": 300}, "holds no token"),
    ({"token": 5}, "holds no token"),
    (b"[" * 100000 + b"]" * 100000, "not JSON"),
    (b"x" * ((1 << 20) + 10), "larger than"),
])
def test_holds_unusable_token_answers_fail_cleanly(bearer, pki, waits, body, fragment):
    bearer.override["/token"] = token_answer(body)
    with pytest.raises(ImageError) as e:
        check_pull(bearer, pki)
    assert fragment in e.value.message


@pytest.mark.parametrize("expires_in", ["soon", -5, None, 1.5e308, True, [1]])
def test_holds_garbage_expires_in_is_the_minimum(bearer, pki, waits, expires_in):
    bearer.override["/token"] = token_answer({"token": "t0k", "expires_in": expires_in})
    assert check_pull(bearer, pki).changed


def test_holds_a_token_server_redirect_to_another_port_carries_no_credentials(pki, waits):
    """The realm redirects (307) to a token server on another port: the Basic credentials stay with the
    realm's origin; the token from the other port is used."""
    users = {"puller": "pw-never-elsewhere"}
    registry = FakeRegistry(auth="bearer", users=users, tls=(pki[1], pki[2])).start()
    other = FakeRegistry(auth="bearer", users=users, tls=(pki[1], pki[2])).start()
    try:
        registry.push("strata/app", Image())

        def anonymous_token(handler):
            handler.registry.tokens.add("other-tok")
            registry.tokens.add("other-tok")
            handler.send(200, b'{"token": "other-tok", "expires_in": 300}')
        other.override["/token"] = anonymous_token
        registry.override["/token"] = lambda h: h.send(307, b"", {"Location": other.base + "/token?x=1"})
        result = stage_image(None, "docker://%s/strata/app:v1" % registry.netloc, ca_path=pki[0], check_mode=True,
                             registry_auth={"username": "puller", "password": "pw-never-elsewhere"},
                             network=Network(environ={}))
        assert result.changed
        assert other.requests and all("Authorization" not in h for _p, h in other.requests)
    finally:
        registry.stop()
        other.stop()


def test_holds_a_token_the_registry_stops_accepting_is_refreshed_once(bearer, pki, home, waits):
    """Mid-pull the registry forgets every token it issued: the next blob's 401 fetches a new token."""
    image = Image()
    bearer.push("strata/app", image)
    digest = image.layer_digest(1)

    def forget_then_serve(handler):
        handler.registry.tokens.clear()
        del handler.registry.override["/v2/strata/app/blobs/" + digest]
        return handler.send(401, b"{}", {"WWW-Authenticate": handler.challenge()})
    bearer.override["/v2/strata/app/blobs/" + digest] = forget_then_serve
    result = stage_image(LayerStore(home), "docker://%s/strata/app:v1" % bearer.netloc, ca_path=pki[0],
                         network=Network(environ={}))
    assert result.changed and bearer.token_requests == 2
