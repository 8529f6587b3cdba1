"""A registry that sends a blob one byte at a time: bounded by deadlines, and never while the home is locked.

Each read of such a blob returns within the socket timeout, so only an
overall deadline ends it: blob_deadline per blob, image_deadline for the
pull. The blob is downloaded before the home's lock is taken, so other
writers of the home go on meanwhile.
"""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.locking import HomeLock
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from fake_registry import FakeRegistry
from imagetools import Image
from layertools import layer_names


def lock_is_free(store):
    """Whether another writer could take the home's lock right now (one try, no waiting)."""
    try:
        with HomeLock(store.layout.lock, timeout=0):
            return True
    except OverlayError:
        return False


@pytest.mark.parametrize("deadline", ["blob_deadline", "image_deadline"])
def test_a_trickling_blob_ends_at_its_deadline_without_holding_the_lock(server, pki, home, deadline):
    image = Image()
    server.push("strata/app", image)
    server.trickle[image.layer_digest(1)] = 0.2  # a few hundred bytes: minutes at this pace
    store = LayerStore(home)
    free = []
    server.trickle_hook = lambda: free.append(lock_is_free(store))
    bounds = {"blob_deadline": 3600, "image_deadline": 3600}
    bounds[deadline] = 1
    with pytest.raises(ImageError) as e:
        stage_image(store, "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], **bounds)
    message = e.value.message
    assert "did not arrive within %s (1s)" % deadline in message
    assert "blob %s: layer 2 of 2" % image.layer_digest(1) in message
    assert free == [True], "the home's lock was held while the registry sent the blob"
    assert layer_names(home) == [image.ids[0]]
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []


def test_a_pull_within_its_deadlines_stages_from_the_downloaded_blob(server, pki, home):
    image = Image()
    server.push("strata/app", image)
    store = LayerStore(home)
    result = stage_image(store, "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], blob_deadline=60,
                         image_deadline=120)
    assert result.changed and layer_names(home) == sorted(image.ids)
    assert result.bytes == sum(layer["size"] for layer in image.doc["layers"])
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []


@pytest.mark.parametrize("name", ["blob_deadline", "image_deadline"])
def test_a_deadline_that_is_not_positive_is_refused_before_the_home_is_touched(home, name):
    params = {"src": "docker://127.0.0.1:9/strata/app:v1", "home": home, name: 0}
    with pytest.raises(ImageError) as e:
        ImageManager(params)
    assert "%s must be a positive number of seconds" % name in e.value.message
    assert not os.path.exists(home)


@pytest.mark.parametrize("part", ["headers", "body", "error"])
@pytest.mark.parametrize("kind", ["ping", "token", "manifest"])
def test_a_trickling_answer_other_than_a_blob_ends_at_the_deadline(pki, home, kind, part):
    """The /v2/ probe, the token endpoint and the manifest: their status lines, headers, bodies and error bodies
    are all read within blob_deadline, and before the home's lock is taken."""
    server = FakeRegistry(tls=(pki[1], pki[2]), auth="bearer" if kind == "token" else None).start()
    try:
        image = Image()
        server.push("strata/app", image)
        server.trickle_answers[kind] = (part, 0.2)
        store = LayerStore(home)
        free = []
        server.trickle_hook = lambda: free.append(lock_is_free(store))
        with pytest.raises(ImageError) as e:
            stage_image(store, "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], blob_deadline=1,
                        image_deadline=3600)
    finally:
        server.stop()
    assert "did not arrive within blob_deadline (1s)" in e.value.message
    assert free == [True], "the home's lock was held while the registry sent its answer"
    assert layer_names(home) == []
