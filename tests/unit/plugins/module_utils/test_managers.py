"""Managers: plain calls with a module's params, reading the host once per run."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.managers import InfoManager, LayerManager, MountManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import fscheck, mounts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore


def test_overlay_info_probes_d_type_once(home, monkeypatch):
    LayerManager({"home": home, "id": "base", "state": "present", "force": False}).run()
    probes = []
    real = fscheck.dtype_without_writing
    monkeypatch.setattr(fscheck, "dtype_without_writing", lambda path: probes.append(path) or real(path))
    result = InfoManager({"home": home, "id": "base", "changes": True}).run()
    assert result["status"]["d_type"] is True and [s["id"] for s in result["layers"]] == ["base"]
    assert len(probes) == 1


def test_overlay_mount_reads_mountinfo_three_times(home, monkeypatch):
    LayerManager({"home": home, "id": "base", "state": "present", "force": False}).run()
    LayerManager({"home": home, "id": "app", "parent": "base", "state": "present", "force": False}).run()
    reads = []
    real = mounts.read_mountinfo
    monkeypatch.setattr(mounts, "read_mountinfo", lambda *args: reads.append(args) or real(*args))
    params = {"home": home, "id": "app", "holder": "web", "mount_label": "", "force": False}
    result = MountManager(dict(params, state="mounted")).run()
    assert result["mounted"] and result["changed"]
    assert len(reads) == 3  # the run's cleanup, the state before, the state after
    MountManager(dict(params, state="unmounted")).run()


def test_a_holder_with_a_newline_is_refused_before_the_home_is_touched(home):
    for state in ("mounted", "unmounted"):
        with pytest.raises(OverlayError, match="control or non-printable") as raised:
            MountManager({"home": home, "id": "app", "state": state, "holder": "web\nforged", "force": False})
        assert raised.value.layer == "app"
    assert not os.path.exists(home)


def test_a_holder_with_a_newline_is_refused_by_the_store_too(home):
    LayerManager({"home": home, "id": "app", "state": "present", "force": False}).run()
    store = LayerStore(home)
    try:
        with pytest.raises(OverlayError, match="control or non-printable"):
            store.ensure_mounted("app", "web\nforged")
        assert store.record("app").holders == set()
    finally:
        store.close()


def test_overlay_info_lists_a_damaged_layer_with_its_problem(home):
    """A record that does not parse made overlay_info fail for the whole home."""
    for layer_id, parent in (("base", ""), ("app", "base"), ("broken", "base")):
        LayerManager({"home": home, "id": layer_id, "parent": parent, "state": "present", "force": False}).run()
    with open(home + "/.strata/layers/app.json", "w") as f:
        f.write('{"holders": "web"}')
    result = InfoManager({"home": home}).run()
    by_id = {layer["id"]: layer for layer in result["layers"]}
    assert "expected format" in by_id["app"]["problem"] and by_id["app"]["parent"] == "base"
    assert by_id["base"]["problem"] is None and result["damaged"] == ["app"]
    assert any(line.startswith("|-- app (?) DAMAGED: ") for line in result["tree"])
    assert "|-- broken (overlay)" in result["tree"] or "`-- broken (overlay)" in result["tree"]


def test_overlay_info_names_image_layers_by_their_images_and_shows_sizes(home, scratch):
    """Image layers are ChainIDs; the tree and the facts said nothing of which image brought them, nor how big."""
    from imagetools import Image  # pylint: disable=import-outside-toplevel
    from ansible_collections.strata.overlay.plugins.module_utils.image_manager import (  # pylint: disable=import-outside-toplevel
        ImageManager)

    refs = ["oci:%s:v1" % Image().write_layout(scratch + "/" + name) for name in ("layout", "copy")]
    staged = [ImageManager({"home": home, "src": ref, "state": "present"}).run() for ref in refs]
    LayerManager({"home": home, "id": "app", "parent": staged[0]["top"], "state": "present", "force": False}).run()
    result = InfoManager({"home": home, "as_facts": True}).run()
    by_id = {layer["id"]: layer for layer in result["layers"]}
    chain = [layer["id"] for layer in staged[0]["layers"]]
    for layer_id in chain:
        assert by_id[layer_id]["images"] == sorted(refs)
        assert by_id[layer_id]["size"] >= 0
    assert by_id["app"]["images"] == [] and by_id["app"]["size"] is None
    assert [i["reference"] for i in result["images"]] == sorted(refs) and result["images_problem"] is None
    assert result["images"][0]["layers"] == chain and result["images"][0]["present"]
    assert result["images"][0]["size"] == sum(by_id[i]["size"] for i in chain) > 0
    top_line = [line for line in result["tree"] if chain[-1] in line][0]
    assert "image: %s, %s" % tuple(sorted(refs)) in top_line and "B" in top_line.split("image:")[1]
    assert result["ansible_facts"]["overlay_info"]["images"] == result["images"]


def test_overlay_info_warns_of_a_stray_name_the_remapped_root_left_in_the_home(home):
    """A stray of the remapped root's in the home used to refuse every module; overlay_info now works and says it."""
    from layertools import run_as

    maps = [{"container_id": 0, "host_id": 100000, "size": 65536}]
    LayerManager({"home": home, "id": "base", "state": "present", "force": False, "uid_maps": maps,
                  "gid_maps": maps}).run()
    run_as(100000, 100000, lambda: open(os.path.join(home, "stray"), "w").close())
    result = InfoManager({"home": home}).run()
    assert [s["id"] for s in result["layers"]] == ["base"]
    assert any("holds 'stray', which is not a layer directory (made by the remapped root, uid 100000)" in w
               for w in result["warnings"])
