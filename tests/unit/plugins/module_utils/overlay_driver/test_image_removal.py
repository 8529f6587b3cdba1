"""overlay_image state=absent: an image's layers go unless another image, a holder or a layer that stays needs them.

Real OCI layouts staged into a real home; removal by the same src, by the recorded
reference and by the manifest digest; check mode and diff mode predict the real run.
"""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.managers import LayerManager, MountManager

from imagebuild import Image, write_oci_layout
from layertools import layer_names, TarBuilder

BASE = TarBuilder().dir("etc").file("etc/os-release", "ID=test\n").bytes()
LIB = TarBuilder().dir("usr").file("usr/lib.so", "lib\n").bytes()
APP = TarBuilder().file("app", "app\n").bytes()
TOOL = TarBuilder().file("tool", "tool\n").bytes()


@pytest.fixture
def oci_layout(scratch):
    """An OCI layout with app (base, lib, app) and tool (base, lib, tool): they share two layers."""
    path = os.path.join(scratch, "layout")
    os.mkdir(path)
    app, tool = Image([BASE, LIB, APP]), Image([BASE, LIB, TOOL])
    digests = write_oci_layout(path, {"app": app, "tool": tool})
    return {"path": path, "app": app, "tool": tool, "digests": digests}


def image(home, src, state="present", check_mode=False, diff=False, **extra):
    params = {"home": home, "src": src, "state": state, "remote_src": True, "platform": "linux/amd64",
              "registry_auth": None, "validate_certs": True, "ca_path": None}
    params.update(extra)
    return ImageManager(params, check_mode=check_mode, diff=diff).run()


def test_staging_records_the_image_with_the_home(home, oci_layout):
    src = "oci:%s:app" % oci_layout["path"]
    staged = image(home, src)
    records = os.path.join(home, ".strata", "image-records")
    names = os.listdir(records)
    assert len(names) == 1
    st = os.stat(os.path.join(records, names[0]))
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600 and os.stat(records).st_mode & 0o777 == 0o700
    import json
    with open(os.path.join(records, names[0]), encoding="utf-8") as f:
        record = json.load(f)
    assert record["reference"] == src and record["manifest_digest"] == staged["manifest_digest"]
    assert record["platform"] == "linux/amd64" and record["layers"] == oci_layout["app"].chain_ids
    assert record["config_digest"] == staged["config_digest"]
    again = image(home, src)
    assert again["changed"] is False and again["recorded"] is False  # staging again: the same record, no change


def test_the_same_layers_under_another_reference_are_recorded_but_no_change(home, oci_layout):
    write_oci_layout(oci_layout["path"], {"again": oci_layout["app"]})
    first, other = "oci:%s:app" % oci_layout["path"], "oci:%s:again" % oci_layout["path"]
    assert image(home, first)["recorded"] is True
    staged = image(home, other)
    assert staged["changed"] is False and staged["recorded"] is True
    result = image(home, first, state="absent")
    assert result["removed"] == [] and {k["reason"] for k in result["kept"]} == {"image %s uses it" % other}


def test_absent_by_the_same_src_removes_the_layers_no_other_image_needs(home, oci_layout):
    app, tool = "oci:%s:app" % oci_layout["path"], "oci:%s:tool" % oci_layout["path"]
    image(home, app)
    image(home, tool)
    assert len(layer_names(home)) == 4
    result = image(home, app, state="absent")
    app_ids, tool_ids = oci_layout["app"].chain_ids, oci_layout["tool"].chain_ids
    assert result["changed"] is True and result["removed"] == [app_ids[2]]
    assert result["kept"] == [{"id": app_ids[1], "reason": "image %s uses it" % tool},
                              {"id": app_ids[0], "reason": "image %s uses it" % tool}]
    assert layer_names(home) == sorted(tool_ids)
    again = image(home, app, state="absent")
    assert again == {"changed": False, "images": [], "removed": [], "kept": []}
    last = image(home, tool, state="absent")
    assert last["removed"] == list(reversed(tool_ids)) and last["kept"] == []
    assert layer_names(home) == [] and os.listdir(os.path.join(home, ".strata", "image-records")) == []


def test_absent_by_manifest_digest(home, oci_layout):
    staged = image(home, "oci:%s:app" % oci_layout["path"])
    result = image(home, staged["manifest_digest"], state="absent")
    assert result["changed"] and len(result["removed"]) == 3 and layer_names(home) == []
    assert result["images"][0]["reference"] == "oci:%s:app" % oci_layout["path"]


def test_absent_by_the_reference_recorded_as_when_the_action_sent_a_copy(home, oci_layout):
    image(home, "oci:%s:app" % oci_layout["path"], record_as="oci:images/app:app")
    result = image(home, "oci:images/app:app", state="absent")
    assert len(result["removed"]) == 3 and layer_names(home) == []


def test_a_writable_layer_and_a_holder_keep_what_they_need(home, oci_layout):
    src = "oci:%s:app" % oci_layout["path"]
    ids = oci_layout["app"].chain_ids
    top = image(home, src)["top"]
    LayerManager({"home": home, "id": "web", "parent": top, "state": "present", "force": False}).run()
    MountManager({"home": home, "id": ids[0], "holder": "inspect", "mount_label": "", "force": False,
                  "state": "mounted"}).run()
    try:
        check = image(home, src, state="absent", check_mode=True, diff=True)
        result = image(home, src, state="absent", diff=True)
        assert check == result
        assert result["removed"] == [] and result["changed"] is False  # nothing went: the record stays
        assert result["kept"] == [{"id": ids[2], "reason": "layer web is built on it"},
                                  {"id": ids[1], "reason": "layer %s is built on it" % ids[2]},
                                  {"id": ids[0], "reason": "held by inspect"}]
        assert result["diff"]["before"]["layers"] == result["diff"]["after"]["layers"] == [ids[2], ids[1], ids[0]]
        assert sorted(layer_names(home)) == sorted(ids + ["web"])
    finally:
        MountManager({"home": home, "id": ids[0], "holder": "inspect", "mount_label": "", "force": True,
                      "state": "unmounted"}).run()


def test_the_record_stays_while_a_layer_is_kept_so_the_same_absent_removes_them_later(home, oci_layout):
    """A writable layer on the image keeps its layers; the record must outlive them, or nothing names them."""
    app, tool = "oci:%s:app" % oci_layout["path"], "oci:%s:tool" % oci_layout["path"]
    ids = oci_layout["app"].chain_ids
    top = image(home, app)["top"]
    image(home, tool)
    LayerManager({"home": home, "id": "web", "parent": top, "state": "present", "force": False}).run()
    kept = image(home, app, state="absent")
    assert kept["changed"] is False and kept["removed"] == [] and kept["images"][0]["reference"] == app
    assert image(home, app, state="absent") == kept  # again: still nothing to do, still recorded
    gone = image(home, tool, state="absent")  # tool's own layer goes; the shared ones stay for app
    assert gone["removed"] == [oci_layout["tool"].chain_ids[2]] and gone["kept"] == [
        {"id": ids[1], "reason": "image %s uses it" % app}, {"id": ids[0], "reason": "image %s uses it" % app}]
    LayerManager({"home": home, "id": "web", "state": "absent", "force": False}).run()
    check = image(home, app, state="absent", check_mode=True)
    result = image(home, app, state="absent")
    assert check == result and result["changed"] is True and result["removed"] == list(reversed(ids))
    assert layer_names(home) == [] and os.listdir(os.path.join(home, ".strata", "image-records")) == []
    assert image(home, app, state="absent") == {"changed": False, "images": [], "removed": [], "kept": []}


def test_check_mode_shows_what_would_go_and_changes_nothing(home, oci_layout):
    src = "oci:%s:app" % oci_layout["path"]
    image(home, src)
    before = sorted(os.listdir(os.path.join(home, ".strata", "image-records")))
    check = image(home, src, state="absent", check_mode=True, diff=True)
    assert check["changed"] and check["removed"] == list(reversed(oci_layout["app"].chain_ids))
    assert check["diff"]["after"]["layers"] == []
    assert len(layer_names(home)) == 3 and sorted(os.listdir(os.path.join(home, ".strata", "image-records"))) == before


def test_absent_on_a_missing_home_creates_nothing(scratch):
    home = os.path.join(scratch, "typo", "home")
    for check_mode in (True, False):
        result = image(home, "oci:/nowhere:app", state="absent", check_mode=check_mode)
        assert result == {"changed": False, "images": [], "removed": [], "kept": []}
    assert not os.path.lexists(os.path.join(scratch, "typo"))
