"""Passing failures of a registry (429, 502, 503, 504, a reset connection) retried with bounded waits.

The waits go through retry.sleep, which these tests replace with a recorder:
they see every wait the client chose and never sleep.
"""

import email.utils
import os
import time

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.retry import RetryPolicy, retry_after
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from fake_registry import reset, status
from imagetools import Image
from layertools import layer_names


def pull(server, pki, home, **network):
    return stage_image(LayerStore(home), "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0],
                       network=Network(environ={}, **network))


def test_retry_after_in_seconds_and_as_an_http_date():
    assert retry_after("7") == 7.0
    assert retry_after(" 0 ") == 0.0
    now = 1_700_000_000
    assert retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0  # already past
    for unreadable in (None, "", "soon", "-3", "1.5", "Mon, 99 Foo 2026 00:00:00 GMT"):
        assert retry_after(unreadable) is None


def test_a_retry_after_that_only_looks_like_digits_counts_as_none():
    # str.isdigit() is true for a superscript two ("\xb2", one latin-1 byte of a header) and for other
    # scripts' digits, which int() refuses; a long run of digits overflows float or passes int's digit limit
    for unreadable in ("\xb2", "\u0661\u0662", "1" * 400, "9" * 5000, "7" * 13):
        assert retry_after(unreadable) is None
    assert retry_after("9" * 12) == 999999999999.0


def test_the_backoff_doubles_up_to_the_max_delay_and_the_count_is_bounded():
    policy = RetryPolicy(retries=4, max_delay=5)
    assert [policy.next_wait(n, None)[0] for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.next_wait(5, None) == (None, "4 retries")
    assert policy.next_wait(1, 3.0) == (3.0, None)  # the registry's own wait wins
    assert policy.next_wait(1, 6.0)[1] == "it asked to wait 6s (Retry-After), more than retry_max_delay (5s)"
    assert RetryPolicy(retries=0).next_wait(1, None) == (None, "0 retries")
    for bad in ({"retries": -1}, {"max_delay": -2}, {"retries": True}, {"retries": "3"}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


@pytest.mark.parametrize("code", [429, 502, 503, 504])
def test_a_passing_status_on_every_kind_of_request_is_retried(server, pki, home, waits, code):
    """The /v2/ probe, the manifest, the config and a layer blob each fail twice first, and the pull succeeds."""
    image = Image()
    server.push("strata/app", image)
    for prefix in ("/v2/strata/app/manifests/", "/v2/strata/app/blobs/" + image.doc["config"]["digest"],
                   "/v2/strata/app/blobs/" + image.layer_digest(1)):
        server.fail_first(prefix, status(code, retry_after=3), status(code))
    server.fail_first("/v2/", status(code, retry_after=2))  # the probe: /v2/ exactly, first in line
    result = pull(server, pki, home)
    assert result.changed and layer_names(home) == sorted(image.ids)
    assert waits == [2.0] + [3.0, 2.0] * 3  # Retry-After when given, else the backoff of the second retry


def test_retry_after_as_an_http_date(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    server.fail_first("/v2/strata/app/manifests/", status(429, retry_after=when))
    assert pull(server, pki, home).changed
    assert len(waits) == 1 and 15 <= waits[0] <= 20


def test_the_retries_are_bounded_and_the_error_says_so(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    server.override["/v2/strata/app/blobs/" + image.layer_digest(1)] = status(503)
    with pytest.raises(ImageError) as e:
        pull(server, pki, home, retries=3, retry_max_delay=2)
    assert "the registry answered 503 Service Unavailable (TOOMANYREQUESTS: slow down) (no retry: 3 retries)" \
        in e.value.message
    assert "layer 2 of 2" in e.value.message
    assert waits == [1.0, 2.0, 2.0]
    assert layer_names(home) == [image.ids[0]]


def test_a_registry_asking_for_a_wait_longer_than_retry_max_delay_fails_at_once(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    server.override["/v2/strata/app/manifests/"] = status(429, retry_after=3600)
    with pytest.raises(ImageError) as e:
        pull(server, pki, home, retry_max_delay=60)
    assert "429 Too Many Requests" in e.value.message
    assert "no retry: it asked to wait 3600s (Retry-After), more than retry_max_delay (60s)" in e.value.message
    assert waits == [] and layer_names(home) == []


def test_a_wait_past_the_blob_deadline_is_not_made(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    server.override["/v2/strata/app/manifests/"] = status(503, retry_after=30)
    with pytest.raises(ImageError) as e:
        stage_image(LayerStore(home), "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], blob_deadline=10,
                    network=Network(environ={}))
    assert "no retry: a wait of 30s would pass the deadline" in e.value.message
    assert waits == []


def test_a_connection_reset_is_retried(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    server.fail_first("/v2/strata/app/blobs/" + image.layer_digest(0), reset, reset)
    assert pull(server, pki, home).changed
    assert waits == [1.0, 2.0]
    assert layer_names(home) == sorted(image.ids)
    server.override["/v2/strata/app/manifests/"] = reset
    with pytest.raises(ImageError) as e:
        pull(server, pki, home, retries=1)
    assert "the connection to 127.0.0.1:%d was reset" % server.server.server_address[1] in e.value.message
    assert "(no retry: 1 retry)" in e.value.message


def test_bad_retry_options_are_refused_before_anything_is_read():
    with pytest.raises(ImageError) as e:
        Network(retries=-1, environ={}, image="docker://example.com/app")
    assert "retries must be a number of attempts, 0 or more, not -1" in e.value.message


def test_check_mode_retries_too_and_writes_nothing(server, pki, scratch, waits):
    """A check run reads the manifest and the config through the same retries and predicts the layers; no home
    is made."""
    image = Image()
    server.push("strata/app", image)
    server.fail_first("/v2/strata/app/manifests/", status(503, retry_after=1))
    home = os.path.join(scratch, "home")
    result = stage_image(None, "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], check_mode=True,
                         network=Network(environ={}))
    assert result.changed and [layer.id for layer in result.layers] == image.ids
    assert waits == [1.0] and not os.path.exists(home)


def test_the_module_refuses_bad_retry_options_before_the_home_is_made(scratch):
    home = os.path.join(scratch, "home")
    with pytest.raises(ImageError) as e:
        ImageManager({"home": home, "src": "docker://r.example/app:v1", "retry_max_delay": -5})
    assert "retry_max_delay must be a number of seconds, 0 or more, not -5" in e.value.message
    assert not os.path.exists(home)
