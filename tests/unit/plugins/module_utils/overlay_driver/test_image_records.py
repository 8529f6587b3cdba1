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


REMAPPED = 100000
MAPS = [{"container_id": 0, "host_id": REMAPPED, "size": 65536}]


def _as_an_earlier_version_left_it(home):
    """Earlier versions gave .strata and its directories to the remapped root (root wrote every file in them)."""
    for where, _dirs, _files in os.walk(os.path.join(home, ".strata")):
        os.chown(where, REMAPPED, REMAPPED)


def test_a_record_the_remapped_root_wrote_is_not_believed(home, scratch):
    """In a .strata an earlier version gave the remapped root, that user can put a record of its own in place of
    root's (the name and shape are public). state=absent believed it: a record of the image naming one more layer
    removed that layer, which no image brought. A record not root's own is now an error naming it and how to fix
    it, for state=absent as for overlay_info's images_problem, and nothing is removed."""
    from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
    from ansible_collections.strata.overlay.plugins.module_utils import layer_images
    from imagebuild import Image, write_oci_layout
    from layertools import TarBuilder, layer_names, run_as

    layout = os.path.join(scratch, "layout")
    os.mkdir(layout)
    app = Image([TarBuilder().file("app", "app\n").bytes()])
    write_oci_layout(layout, {"app": app})
    src = "oci:%s:app" % layout

    def image(state):
        params = {"home": home, "src": src, "state": state, "remote_src": True, "platform": "linux/amd64",
                  "registry_auth": None, "validate_certs": True, "ca_path": None, "uid_maps": MAPS, "gid_maps": MAPS}
        return ImageManager(params).run()

    image("present")
    other = "d" * 64  # root's layer, no image's
    store = LayerStore(home, MAPS, MAPS)
    try:
        store.ensure_present(other)
    finally:
        store.close()
    _as_an_earlier_version_left_it(home)
    [name] = os.listdir(records_dir(home))
    path = os.path.join(records_dir(home), name)
    with open(path, encoding="utf-8") as f:
        forged = json.load(f)
    forged["layers"].append(other)

    def plant():
        with open(path + ".new", "w", encoding="utf-8") as f:
            json.dump(forged, f)
        os.rename(path + ".new", path)

    run_as(REMAPPED, REMAPPED, plant)
    with pytest.raises(OverlayError, match="chown it to root and chmod it 0600") as error:
        image("absent")
    assert "uid %d" % REMAPPED in error.value.message and error.value.path == path
    assert layer_names(home) == sorted(app.chain_ids + [other]), "nothing is removed on a record root did not write"
    store = LayerStore(home, MAPS, MAPS)
    try:
        records, problem = layer_images.read_records(store.driver.dirs)
    finally:
        store.close()
    assert records == [] and "chown it to root" in problem
    os.unlink(path)  # the remedy the message names (or chown, when the record is right)
    result = image("absent")
    assert result["removed"] == [] and layer_names(home) == sorted(app.chain_ids + [other])


@pytest.mark.parametrize("owner, mode", [(REMAPPED, 0o600), (0, 0o620), (0, 0o602)], ids=["users", "group-w", "other-w"])
def test_a_record_not_roots_own_is_rewritten_by_staging(store, home, owner, mode):
    """Staging the image again rewrites a record that is not root's own even when it says the same: left as it is,
    every later read refused it."""
    records = ImageRecords(store.driver.dirs)
    records.save(RECORD)
    path = os.path.join(records_dir(home), RECORD.name)
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    with pytest.raises(OverlayError, match="must be root's and writable by root only"):
        records.all()
    assert records.would_change(RECORD)
    assert records.save(RECORD) is True
    st = os.stat(path)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600) and records.all()[0].as_dict() == RECORD.as_dict()


def test_a_directory_under_a_records_name_is_set_aside_by_staging(store, home):
    """The remapped root could put a directory under the name of an image's record (a hash of public things) in
    an image-records/ an earlier version gave it: staging that image failed every time with a bare
    IsADirectoryError, and the message's advice (stage it again) could not help."""
    records = ImageRecords(store.driver.dirs)
    records.save(RECORD)
    path = os.path.join(records_dir(home), RECORD.name)
    os.unlink(path)
    os.makedirs(os.path.join(path, "inside"))
    assert records.save(RECORD) is True
    assert os.path.isfile(path) and [r.name for r in records.all()] == [RECORD.name]
