"""Image records are read by fd and checked whole: a planted or malformed file is an error naming it."""

import json
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.image_records import (
    ImageRecord, ImageRecords)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.image_removal import remove_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

LAYER = "a" * 64
RECORD = ImageRecord("oci:/images/app:v1", "sha256:" + "b" * 64, "sha256:" + "c" * 64, "linux/amd64", [LAYER])


@pytest.fixture
def store(home):
    s = LayerStore(home)
    try:
        yield s
    finally:
        s.close()


def records_dir(home):
    return os.path.join(home, ".strata", "image-records")


def test_a_saved_record_reads_back_and_is_private(store, home):
    records = ImageRecords(store.driver.dirs)
    assert records.all() == [] and records.would_change(RECORD)
    assert records.save(RECORD) is True and records.save(RECORD) is False and not records.would_change(RECORD)
    [back] = records.all()
    assert back.as_dict() == RECORD.as_dict()
    assert os.stat(records_dir(home)).st_mode & 0o777 == 0o700
    assert RECORD.matches("oci:/images/app:v1") and RECORD.matches("sha256:" + "b" * 64)
    assert RECORD.matches("docker://x/app@sha256:" + "b" * 64) and not RECORD.matches("oci:/images/app:v2")


BAD = [
    ("not-json", b"{", "not JSON"),
    ("extra-key", dict(RECORD.as_dict(), extra=1), "not a version 1 record"),
    ("layers-not-list", dict(RECORD.as_dict(), layers="../../etc"), "layers must be a list"),
    ("layer-path", dict(RECORD.as_dict(), layers=["../etc"]), "is not a ChainID's hex"),
    ("bad-digest", dict(RECORD.as_dict(), manifest_digest="md5:00"), "manifest_digest must be"),
    ("bad-platform", dict(RECORD.as_dict(), platform="linux"), "platform must be"),
    ("other-name", dict(RECORD.as_dict(), reference="oci:/images/other:v1"), "not named after the image"),
]


@pytest.mark.parametrize("content,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_record_of_the_wrong_shape_is_refused_naming_it(store, home, content, message):
    ImageRecords(store.driver.dirs).save(RECORD)
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    with open(os.path.join(records_dir(home), RECORD.name), "wb") as f:
        f.write(data)
    with pytest.raises(OverlayError) as error:
        remove_image(store, "oci:/images/app:v1")
    assert message in error.value.message and error.value.path == os.path.join(records_dir(home), RECORD.name)


def test_a_planted_symlink_or_fifo_is_refused_not_followed(store, home, scratch):
    ImageRecords(store.driver.dirs).save(RECORD)
    target = os.path.join(scratch, "elsewhere.json")
    with open(target, "w", encoding="utf-8") as f:
        json.dump(RECORD.as_dict(), f)
    path = os.path.join(records_dir(home), RECORD.name)
    os.unlink(path)
    os.symlink(target, path)
    with pytest.raises(OverlayError, match="not a regular file"):
        ImageRecords(store.driver.dirs).all()
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(OverlayError, match="not a regular file"):
        ImageRecords(store.driver.dirs).all()  # and did not block on the FIFO


def test_a_records_directory_that_is_a_symlink_is_refused(store, home, scratch):
    os.makedirs(os.path.join(scratch, "planted"), mode=0o700)
    os.symlink(os.path.join(scratch, "planted"), records_dir(home))
    with pytest.raises(OverlayError, match="symlink or not a directory"):
        ImageRecords(store.driver.dirs).save(RECORD)
    assert os.listdir(os.path.join(scratch, "planted")) == []
