"""The blobs of later layers download while earlier layers apply, in order, a bounded number at a time."""

import contextlib
import io
import os
import threading

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import prefetch
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from imagetools import Image, mkimages, sha256
from layertools import layer_names

WAIT = 30  # seconds a blocked answer waits for what the test expects; only reached when the test fails


def image_of(n):
    return Image(tars=[mkimages.layer_tar([("layer-%d" % i, b"content %d" % i, 0o644)]) for i in range(n)])


def pull(server, pki, home):
    return stage_image(LayerStore(home), "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0],
                       network=Network(environ={}))


def test_later_blobs_download_while_the_first_layer_waits(server, pki, home):
    """The first layer's blob is held back until the second layer's is asked for: one download at a time would
    wait here for WAIT seconds and fail the assertion."""
    image = image_of(3)
    server.push("strata/app", image)
    asked_second = threading.Event()
    overlapped = []

    def first(handler):
        overlapped.append(asked_second.wait(WAIT))
        del server.override[first_path]
        handler.do_GET()

    def second(handler):
        asked_second.set()
        del server.override[second_path]
        handler.do_GET()
    first_path = "/v2/strata/app/blobs/" + image.layer_digest(0)
    second_path = "/v2/strata/app/blobs/" + image.layer_digest(1)
    server.override[first_path] = first
    server.override[second_path] = second
    result = pull(server, pki, home)
    assert overlapped == [True]
    assert result.changed and layer_names(home) == sorted(image.ids)
    for i in range(3):  # applied in order, each on the one below
        assert LayerStore(home).state(image.ids[i])["parent"] == (image.ids[i - 1] if i else None)
    assert result.bytes == sum(len(server.blobs[image.layer_digest(i)]) for i in range(3))


def test_a_failed_download_fails_its_own_layer_after_the_ones_below(server, pki, home):
    image = image_of(4)
    server.push("strata/app", image)
    del server.blobs[image.layer_digest(2)]
    with pytest.raises(ImageError) as e:
        pull(server, pki, home)
    assert "layer 3 of 4" in e.value.message and "blob not found" in e.value.message
    assert layer_names(home) == sorted(image.ids[:2])
    # nothing of the blobs fetched ahead stays in the home's tmp
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []


def test_layers_present_are_not_fetched_ahead(server, pki, home):
    image = image_of(4)
    server.push("strata/app", image)
    base = Image(tars=image.tars[:2])
    server.push("strata/base", base)
    stage_image(LayerStore(home), "docker://%s/strata/base:v1" % server.netloc, ca_path=pki[0],
                network=Network(environ={}))
    del server.requests[:]
    result = pull(server, pki, home)
    assert [layer.changed for layer in result.layers] == [False, False, True, True]
    fetched = [path.rsplit("/", 1)[1] for path, _h in server.requests if "/blobs/" in path]
    assert image.layer_digest(0) not in fetched and image.layer_digest(1) not in fetched


# -- the bound, with a source whose blobs come when the test says ------------------------------------

class _Descriptor:
    def __init__(self, data):
        self.data = data
        self.digest = sha256(data)
        self.size = len(data)
        self.path = None


class _Source:
    """open_blob of each descriptor waits until the test releases it."""

    def __init__(self):
        self.release = {}

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        assert self.release[descriptor.digest].wait(WAIT)
        yield io.BytesIO(descriptor.data)


class _Counting(prefetch.Prefetcher):
    held = []

    def _job(self, index):
        self.held.append((index, len(self._jobs) + 1))
        return super()._job(index)


def test_at_most_depth_downloads_are_held(scratch):
    descriptors = [_Descriptor(b"blob %d" % i) for i in range(7)]
    source = _Source()
    for d in descriptors:
        source.release[d.digest] = threading.Event()
    tmp_fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
    counted = []
    fetcher = _Counting(source, tmp_fd, None, counted.append, enumerate(descriptors))
    _Counting.held = []
    try:
        for i, d in enumerate(descriptors):
            source.release[d.digest].set()
            with fetcher.take(i) as f:
                assert f.read() == d.data
    finally:
        fetcher.close()
        os.close(tmp_fd)
    started = [index for index, _held in _Counting.held]
    assert started == list(range(7))  # in order, each once
    assert max(held for _index, held in _Counting.held) == prefetch.DEPTH
    assert sum(counted) == sum(d.size for d in descriptors)


def test_a_layer_found_present_has_its_download_thrown_away(scratch):
    descriptors = [_Descriptor(b"blob %d" % i) for i in range(3)]
    source = _Source()
    for d in descriptors:
        source.release[d.digest] = threading.Event()
        source.release[d.digest].set()
    tmp_fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fetcher = prefetch.Prefetcher(source, tmp_fd, None, lambda n: None, enumerate(descriptors))
        with fetcher.take(0) as f:
            assert f.read() == b"blob 0"
        fetcher.skip(1)
        with fetcher.take(2) as f:
            assert f.read() == b"blob 2"
        fetcher.close()
    finally:
        os.close(tmp_fd)
