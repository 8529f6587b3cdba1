"""A layer blob cut off mid-way is resumed with Range (206), or sent again whole (200), and verified whole.

The fake registry sends part of a blob and then closes the
connection; the waits between attempts go through retry.sleep, recorded here
instead of slept.
"""

import contextlib
import http.client

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.resume import ResumingReader
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.retry import RetryPolicy
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from fake_registry import cut_after
from imagetools import Image
from layertools import layer_names


def pull(server, pki, home, **network):
    return stage_image(LayerStore(home), "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0],
                       network=Network(environ={}, **network))


def blob_requests(server, digest):
    return [headers for path, headers in server.requests if path.endswith("/blobs/" + digest)]


def test_a_cut_blob_is_resumed_with_range(server, pki, home, waits):
    """The connection closes after half the blob (a reset would race with the client's reads: what was sent but
    not yet read is lost with the RST, so a reset mid-body is the scripted reader's case below)."""
    image = Image()
    server.push("strata/app", image)
    digest = image.layer_digest(1)
    data = server.blobs[digest]
    half = len(data) // 2
    server.fail_first("/v2/strata/app/blobs/" + digest, cut_after(half))
    result = pull(server, pki, home)
    assert result.changed and layer_names(home) == sorted(image.ids)
    asked = blob_requests(server, digest)
    assert len(asked) == 2 and "Range" not in asked[0]
    assert asked[1]["Range"] == "bytes=%d-" % half
    assert server.ranges_served == [(digest, half)]
    assert waits == [1.0]
    # every byte fetched once: the first answer's half and the rest
    assert result.bytes == sum(len(server.blobs[image.layer_digest(i)]) for i in (0, 1))


def test_a_registry_ignoring_range_sends_the_blob_again_whole(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    server.honour_range = False
    digest = image.layer_digest(1)
    server.fail_first("/v2/strata/app/blobs/" + digest, cut_after(len(server.blobs[digest]) // 3))
    result = pull(server, pki, home)
    assert result.changed and layer_names(home) == sorted(image.ids)
    assert len(blob_requests(server, digest)) == 2 and server.ranges_served == []
    assert result.bytes == sum(len(server.blobs[image.layer_digest(i)]) for i in (0, 1))


def test_the_digest_covers_the_whole_blob_across_a_resume(server, pki, home, waits):
    """The rest comes from a registry whose copy differs after the cut: the assembled blob fails its digest."""
    image = Image()
    server.push("strata/app", image)
    digest = image.layer_digest(1)
    data = server.blobs[digest]
    half = len(data) // 2
    server.fail_first("/v2/strata/app/blobs/" + digest, cut_after(half))
    changed = bytearray(data)
    changed[-10] ^= 0xFF
    original = server.blobs[digest]
    server.blobs[digest] = bytes(changed)
    with pytest.raises(ImageError) as e:
        pull(server, pki, home)
    assert "content has digest" in e.value.message and "layer 2 of 2" in e.value.message
    assert server.blobs[digest] != original and layer_names(home) == [image.ids[0]]


def test_a_206_for_another_range_is_refused(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    digest = image.layer_digest(1)
    data = server.blobs[digest]

    def wrong_range(handler):
        handler.send(206, data[10:], {"Content-Range": "bytes 10-%d/%d" % (len(data) - 1, len(data))})
    server.fail_first("/v2/strata/app/blobs/" + digest, cut_after(len(data) // 2), wrong_range)
    with pytest.raises(ImageError) as e:
        pull(server, pki, home)
    assert "asked for bytes=%d-, the registry sent Content-Range bytes 10-" % (len(data) // 2) in e.value.message
    assert layer_names(home) == [image.ids[0]]


def test_resumes_are_retries_and_bounded(server, pki, home, waits):
    image = Image()
    server.push("strata/app", image)
    digest = image.layer_digest(1)
    server.override["/v2/strata/app/blobs/" + digest] = cut_after(1)
    with pytest.raises(ImageError) as e:
        pull(server, pki, home, retries=2)
    assert "the download was cut after 1 bytes" in e.value.message
    assert "not resumed (no retry: 2 retries)" in e.value.message
    assert waits == [1.0, 2.0] and len(blob_requests(server, digest)) == 3
    assert layer_names(home) == [image.ids[0]]


# -- the reader alone, with a scripted source: cuts that are exceptions ------------------------------

class _Descriptor:
    digest = "sha256:" + "ab" * 32
    size = 10


class _Answer:
    """A body that gives `good` bytes of the blob from `start`, then raises `error`."""

    def __init__(self, data, start, good, error):
        self._data, self._pos, self._end, self._error = data, start, start + good, error

    def read(self, n=-1):
        if self._pos >= self._end:
            if self._error is not None:
                raise self._error
            return b""
        chunk = self._data[self._pos:min(self._end, self._pos + (n if n > 0 else 1 << 20))]
        self._pos += len(chunk)
        return chunk


class _Source:
    def __init__(self, data, script):
        self.data, self.script, self.asked = data, list(script), []

    @contextlib.contextmanager
    def open_range(self, descriptor, offset, deadline):
        del descriptor, deadline
        self.asked.append(offset)
        ranged, good, error = self.script.pop(0)
        start = offset if ranged else 0
        yield _Answer(self.data, start, good if good is not None else len(self.data) - start, error), start, \
            len(self.data) - start


@pytest.mark.parametrize("error", [ConnectionResetError(104, "Connection reset by peer"),
                                   http.client.IncompleteRead(b"abc", 7)])
def test_a_reset_mid_body_is_resumed(waits, error):
    data = b"0123456789"
    source = _Source(data, [(False, 3, error), (True, 4, error), (False, None, None)])
    with ResumingReader(source, _Descriptor(), RetryPolicy(), None) as reader:
        got = b"".join(iter(lambda: reader.read(4), b""))
    assert got == data
    assert source.asked == [0, 3, 7]  # from the start, then from where each cut stopped
    assert reader.resumes == 2 and reader.restarts == 1  # the last answer was the whole blob (200)
    assert waits == [1.0, 2.0]
