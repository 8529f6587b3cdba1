"""The home remembers each staged image's config, so staging it again reads only its manifest.

The layouts here are real OCI layouts; whether the config was read is proved by
taking the config blob away: staging then only succeeds from what the home
remembers, and fails naming the config when the entry may not be used.
"""

import json
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from imagetools import Image


@pytest.fixture
def store(home):
    return LayerStore(home)


def entry_path(home, image):
    return os.path.join(home, ".strata", "images", image.doc["config"]["digest"].split(":")[1] + ".json")


def staged_then_config_gone(store, home, scratch):
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    first = stage_image(store, "oci:%s:v1" % layout)
    assert first.changed
    config = image.blob_path(layout, image.doc["config"]["digest"])
    with open(config, "rb") as f:
        saved = f.read()
    os.unlink(config)
    return image, layout, first, (config, saved)


def test_staging_again_needs_no_config(store, home, scratch):
    image, layout, first, _config = staged_then_config_gone(store, home, scratch)
    st = os.stat(entry_path(home, image))
    assert oct(st.st_mode & 0o777) == "0o600"
    again = stage_image(store, "oci:%s:v1" % layout)
    assert not again.changed
    assert again.config == first.config and again.config["WorkingDir"] == "/app"
    assert again.config_digest == first.config_digest
    assert [layer.id for layer in again.layers] == image.ids


@pytest.mark.parametrize("damage", ["garbage", "other-digest", "short", "bad-diff-id", "symlink", "fifo"])
def test_a_damaged_entry_is_ignored_and_rewritten(store, home, scratch, damage):
    image, layout, first, (config, saved) = staged_then_config_gone(store, home, scratch)
    path = entry_path(home, image)
    with open(path, encoding="utf-8") as f:
        entry = json.load(f)
    original = json.loads(json.dumps(entry))
    os.unlink(path)
    if damage == "garbage":
        with open(path, "wb") as f:
            f.write(b"\x00{not json")
    elif damage == "symlink":
        with open(os.path.join(scratch, "planted.json"), "w", encoding="utf-8") as f:
            json.dump(entry, f)
        os.symlink(os.path.join(scratch, "planted.json"), path)
    elif damage == "fifo":
        os.mkfifo(path)
    else:
        if damage == "other-digest":
            entry["config_digest"] = "sha256:" + "0" * 64
        elif damage == "short":
            entry["diff_ids"] = entry["diff_ids"][:1]
        else:
            entry["diff_ids"][0] = "sha256:../../x"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(entry, f)
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s:v1" % layout)
    assert "the config: " in e.value.message, "the entry was not used: the config had to be read"
    with open(config, "wb") as f:
        f.write(saved)
    again = stage_image(store, "oci:%s:v1" % layout)
    assert not again.changed and again.config == first.config
    assert not os.path.islink(path), "the entry replaces what was planted, never writes through it"
    if damage == "symlink":
        with open(os.path.join(scratch, "planted.json"), encoding="utf-8") as f:
            assert json.load(f) == entry
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == original, "rewritten whole"


def test_an_entry_whose_layers_are_gone_is_not_used(store, home, scratch):
    image, layout, _first, (config, saved) = staged_then_config_gone(store, home, scratch)
    store.ensure_absent(image.ids[1])
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s:v1" % layout)
    assert "the config: " in e.value.message
    with open(config, "wb") as f:
        f.write(saved)
    again = stage_image(store, "oci:%s:v1" % layout)
    assert [layer.changed for layer in again.layers] == [False, True]


def test_an_entry_naming_other_diff_ids_is_not_used(store, home, scratch):
    """diff_ids of layers that exist, but not as this chain: each ChainID must hold its diff_id."""
    image, layout, _first, _config = staged_then_config_gone(store, home, scratch)
    other = Image(tars=list(reversed(image.tars)))
    other_layout = other.write_layout(os.path.join(scratch, "other"))
    stage_image(store, "oci:%s:v1" % other_layout)
    path = entry_path(home, image)
    with open(path, encoding="utf-8") as f:
        entry = json.load(f)
    entry["diff_ids"] = other.diff_ids[:1] + image.diff_ids[1:]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(entry, f)
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s:v1" % layout)
    assert "the config: " in e.value.message


def test_check_mode_writes_no_entry(home, scratch):
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    store = LayerStore(home)
    with store.locked():
        pass  # the home and its bookkeeping exist, no image in it
    before = sorted(os.listdir(os.path.join(home, ".strata")))
    result = stage_image(store, "oci:%s:v1" % layout, check_mode=True)
    assert result.changed
    assert sorted(os.listdir(os.path.join(home, ".strata"))) == before
    assert not os.path.exists(os.path.join(home, ".strata", "images"))
    stage_image(store, "oci:%s:v1" % layout)
    os.unlink(entry_path(home, image))
    again = stage_image(store, "oci:%s:v1" % layout, check_mode=True)
    assert not again.changed
    assert not os.path.exists(entry_path(home, image)), "check mode rewrites no entry either"


REMAPPED = 100000
MAPS = [{"container_id": 0, "host_id": REMAPPED, "size": 65536}]


def test_an_entry_the_remapped_root_wrote_is_not_used(home, scratch):
    """In a .strata an earlier version gave the remapped root (it holds .strata/images until a writer takes it
    back), that user can write the entry of an image it expects root to stage: the diff_ids of another image
    already in the home, with as many layers, pass the layers' check, so staging took that image's layers for
    this one's, fetched nothing and reported the config it chose. An entry not root's own is ignored, and the
    staging writes root's own in its place (every writer takes images/ back first)."""
    from layertools import run_as

    image, other = Image(), Image(tars=list(reversed(Image().tars)))
    layout = image.write_layout(os.path.join(scratch, "layout"))
    other_layout = other.write_layout(os.path.join(scratch, "other"))
    store = LayerStore(home, MAPS, MAPS)
    try:
        stage_image(store, "oci:%s:v1" % other_layout)
    finally:
        store.close()
    for where, _dirs, _files in os.walk(os.path.join(home, ".strata")):
        os.chown(where, REMAPPED, REMAPPED)  # as earlier versions left them
    path = entry_path(home, image)
    forged = {"version": 1, "config_digest": image.doc["config"]["digest"], "diff_ids": other.diff_ids,
              "config": {"Entrypoint": ["/bin/sh", "-c", "forged"]}}

    def plant():
        with open(path, "w", encoding="utf-8") as f:
            json.dump(forged, f)

    run_as(REMAPPED, REMAPPED, plant)
    store = LayerStore(home, MAPS, MAPS)
    try:
        staged = stage_image(store, "oci:%s:v1" % layout)
    finally:
        store.close()
    assert [layer.id for layer in staged.layers] == image.ids, "another image's layers taken for this one's"
    assert staged.config == image.config_doc()["config"] and all(layer.changed for layer in staged.layers)
    with open(path, encoding="utf-8") as f:
        written = json.load(f)
    assert written["diff_ids"] == image.diff_ids and written["config"] == image.config_doc()["config"]
    assert os.stat(path).st_uid == 0 and os.stat(os.path.dirname(path)).st_uid == 0


@pytest.mark.parametrize("owner, mode", [(REMAPPED, 0o600), (0, 0o620), (0, 0o602)], ids=["users", "group-w", "other-w"])
def test_an_entry_not_roots_own_is_ignored_and_rewritten(store, home, scratch, owner, mode):
    image, layout, first, (config, saved) = staged_then_config_gone(store, home, scratch)
    path = entry_path(home, image)
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s:v1" % layout)
    assert "the config: " in e.value.message, "the entry was not used: the config had to be read"
    with open(config, "wb") as f:
        f.write(saved)
    again = stage_image(store, "oci:%s:v1" % layout)
    assert not again.changed and again.config == first.config
    st = os.stat(path)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
