"""Attacks on retries and Range resume (retry.py, resume.py, registry._send/_probe/open_range).

Waits go through retry.sleep (the `waits` fixture records them instead of sleeping).
"""

import socket
import time

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from fake_registry import cut_after, status
from imagetools import Image
from layertools import layer_names


def pull(server, pki, home, **network):
    return stage_image(LayerStore(home), "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0],
                       network=Network(environ={}, **network))


def blob_requests(server, digest):
    return [headers for path, headers in server.requests if path.endswith("/blobs/" + digest)]


# -- what held up (kept as regression checks) ----------------------------------------------------------

def test_holds_a_206_with_more_bytes_than_the_blob_fails_the_digest_or_size(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    digest = image.layer_digest(1)
    data = server.blobs[digest]
    half = len(data) // 2

    def too_long(handler):  # right Content-Range, no Content-Length, the rest plus garbage, then close
        handler.send_response(206)
        handler.send_header("Content-Range", "bytes %d-%d/%d" % (half, len(data) - 1, len(data)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(data[half:] + b"GARBAGE" * 100)
        handler.wfile.flush()
        handler.close_connection = True
        handler.request.shutdown(socket.SHUT_RDWR)
    server.fail_first("/v2/strata/app/blobs/" + digest, cut_after(half), too_long)
    with pytest.raises(ImageError) as e:
        pull(server, pki, home)
    assert "more bytes than" in e.value.message and layer_names(home) == [image.ids[0]]


@pytest.mark.parametrize("value", ["-5", "1e9", "Thu, 01 Jan 1970 00:00:00 GMT", "9" * 40, "garbage", ""])
def test_holds_odd_retry_after_values_stay_bounded(server, pki, waits, value):
    server.push("strata/app", Image())
    server.override["/v2/strata/app/manifests/"] = status(503, retry_after=value)
    with pytest.raises(ImageError) as e:
        stage_image(None, "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], check_mode=True,
                    network=Network(environ={}, retries=3, retry_max_delay=4))
    assert "503" in e.value.message and len(waits) <= 3 and all(0 <= w <= 4 for w in waits)


def test_a_cut_while_a_restart_reads_past_the_kept_bytes_is_resumed(server, pki, home, waits):
    """A registry that ignores Range (answers 200, the whole blob) on a flaky link: the first answer is cut
    after half the blob, the restart is cut after a quarter, while the kept half is still being read past.
    That is a cut like the first, with retries left (default 5): a third request, and the pull succeeds
    (resume.py: each resume is a retry, bounded by retries), as Docker and containers/image retry a cut."""
    image = Image()
    server.push("strata/app", image)
    server.honour_range = False
    digest = image.layer_digest(1)
    size = len(server.blobs[digest])
    server.fail_first("/v2/strata/app/blobs/" + digest, cut_after(size // 2), cut_after(size // 4))
    try:
        result = pull(server, pki, home)
    except ImageError as e:
        pytest.fail("a second cut, with %d retries left, failed the pull: %s" % (5 - 1, e.message))
    assert result.changed and layer_names(home) == sorted(image.ids)
    assert len(blob_requests(server, digest)) == 3


def test_a_503_on_the_probe_says_what_happened(server, pki, waits):
    """/v2/ always answers 503 with Retry-After: 100000: the pull gives up at once, saying what the registry
    answered and why it was not retried, as for a manifest, without calling it "not a registry API" (which
    would send an operator looking at a load balancer's 503 the wrong way)."""
    server.push("strata/app", Image())
    server.override["/v2/"] = status(503, retry_after=100000)
    started = time.monotonic()
    with pytest.raises(ImageError) as e:
        stage_image(None, "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], check_mode=True,
                    network=Network(environ={}))
    assert time.monotonic() - started < 10 and waits == []
    assert "503" in e.value.message and "100000s" in e.value.message
    assert "is not a registry API" not in e.value.message, e.value.message
