"""overlay_image_info against a registry over TLS, and overlay_image's action answering from it.

The reader must say "staged and recorded" only where overlay_image itself would change nothing: each
case stages the image with overlay_image, changes one thing in the home or the registry, and compares
what the reader says with what the module then does.
"""

import os
import shutil

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls
from ansible_collections.strata.overlay.plugins.modules import overlay_image, overlay_image_info

from fake_registry import status
from imagetools import Image, mkimages


def _snapshot(path):
    """Every name under path with its type, size, mode and mtime: what a reader must leave as it was."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            out[os.path.relpath(full, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def test_an_image_not_staged_is_reported_and_no_home_is_made(run_module, home, pushed):
    image, args = pushed
    res = run_module(overlay_image_info, dict(args, home=home))
    assert not res.get("failed"), res
    assert res["changed"] is False
    assert [layer["id"] for layer in res["image"]["layers"]] == image.ids
    assert [layer["present"] for layer in res["image"]["layers"]] == [False] * len(image.ids)
    assert res["image"]["staged"] is False and res["image"]["recorded"] is False
    assert res["image"]["manifest_digest"] == image.manifest["digest"]
    assert res["home"]["exists"] is False and not os.path.exists(home)


def test_a_staged_image_is_reported_as_the_module_staged_it_and_nothing_is_touched(run_module, home, pushed, layout):
    _image, args = pushed
    staged = run_module(overlay_image, dict(args, home=home))
    assert staged["changed"] is True, staged
    before = _snapshot(home)
    res = run_module(overlay_image_info, dict(args, home=home))
    assert _snapshot(home) == before
    image = res["image"]
    assert image["staged"] is True and image["recorded"] is True
    assert image["top"] == staged["top"]
    assert [(layer["id"], layer["diff_id"], layer["digest"], layer["size"]) for layer in image["layers"]] == \
        [(layer["id"], layer["diff_id"], layer["digest"], layer["size"]) for layer in staged["layers"]]
    assert image["config"] == staged["config"]
    assert (image["manifest_digest"], image["config_digest"]) == (staged["manifest_digest"], staged["config_digest"])
    assert res["home"]["layout"] == layout and res["home"]["read_only"] is False


@pytest.mark.parametrize("damage", ["top layer removed", "record of another diff", "record of another parent",
                                    "record unreadable", "image record removed", "image record of another tag"])
def test_what_staging_would_change_is_not_reported_as_recorded(run_module, home, pushed, damage):
    image, args = pushed
    run_module(overlay_image, dict(args, home=home))
    top, records = image.ids[-1], os.path.join(home, ".strata", "layers")
    if damage == "top layer removed":
        shutil.rmtree(os.path.join(home, top))
        os.unlink(os.path.join(records, top + ".json"))
    elif damage.startswith("record of another"):
        path = os.path.join(records, top + ".json")
        with open(path) as f:
            text = f.read()
        old = image.diff_ids[-1] if damage.endswith("diff") else image.ids[-2]
        new = "sha256:" + "e" * 64 if damage.endswith("diff") else "f" * 64
        assert old in text
        with open(path, "w") as f:
            f.write(text.replace(old, new))
    elif damage == "record unreadable":
        with open(os.path.join(records, top + ".json"), "w") as f:
            f.write("{not json")
    else:
        records_dir = os.path.join(home, ".strata", "image-records")
        (name,) = os.listdir(records_dir)
        if damage == "image record removed":
            os.unlink(os.path.join(records_dir, name))
        else:
            with open(os.path.join(records_dir, name)) as f:
                text = f.read()
            with open(os.path.join(records_dir, name), "w") as f:
                f.write(text.replace("app:v1", "app:v0"))
    res = run_module(overlay_image_info, dict(args, home=home))
    assert res["image"]["recorded"] is False, (damage, res)
    assert res["image"]["staged"] is (damage.startswith("image record")), (damage, res)
    again = run_module(overlay_image, dict(args, home=home))
    # the module does something (or refuses) in each of these homes: the reader must not have vouched for it
    assert again.get("failed") or again["changed"] or again["recorded"], (damage, again)


def test_a_tag_moved_since_staging_is_not_recorded(image_action, run_module, home, server, pushed):
    """v1 now names an image of the first layer alone: that layer is there, the record names another image."""
    _image, args = pushed
    run_module(overlay_image, dict(args, home=home))
    server.push("strata/app", Image(tars=mkimages.default_layers()[:1]), tag="v1")
    res = run_module(overlay_image_info, dict(args, home=home))
    assert res["image"]["staged"] is True and res["image"]["recorded"] is False
    again, ran = image_action(dict(args, home=home))
    assert ran[-1] == "strata.overlay.overlay_image" and again["recorded"] is True


def test_maps_other_than_the_homes_are_refused_as_the_module_refuses_them(run_module, home, pushed):
    _image, args = pushed
    run_module(overlay_image, dict(args, home=home))
    maps = [{"container_id": 0, "host_id": 100000, "size": 65536}]
    res = run_module(overlay_image_info, dict(args, home=home, uid_maps=maps, gid_maps=maps))
    module = run_module(overlay_image, dict(args, home=home, uid_maps=maps, gid_maps=maps))
    assert res.get("failed") and module.get("failed")
    assert res["msg"] == module["msg"] and res["failed_at"] == "home"


def test_a_registry_failure_is_the_modules_failure_word_for_word(run_module, home, pushed, waits):
    del waits
    _image, args = pushed
    args = dict(args, src=args["src"].replace("strata/app", "strata/none"))
    res = run_module(overlay_image_info, dict(args, home=home))
    module = run_module(overlay_image, dict(args, home=home))
    assert res.get("failed") and module.get("failed")
    assert res["msg"] == module["msg"] and res["failed_at"] == "registry"


def test_an_option_refused_by_the_module_is_refused_alike(run_module, home, pushed):
    _image, args = pushed
    for bad in ({"image_deadline": 0}, {"ca_path": "relative.pem"}, {"username": "u", "registry_auth": {"username": "v"}}):
        res = run_module(overlay_image_info, dict(args, home=home, **bad))
        module = run_module(overlay_image, dict(args, home=home, **bad))
        assert res.get("failed") and module.get("failed"), bad
        assert res["msg"] == module["msg"] and res["failed_at"] == "registry", bad
    assert not os.path.exists(home)


def test_a_file_image_is_refused_naming_what_it_reads(run_module, home):
    res = run_module(overlay_image_info, {"src": "oci:/srv/images/app:v1", "home": home})
    assert res.get("failed") and "reads images from a registry" in res["msg"]


# -- the action: overlay_image answered by overlay_image_info ------------------------------------------------


WHAT_BOTH_SAY = ("changed", "recorded", "top", "layers", "manifest_digest", "config_digest", "config", "bytes",
                 "fetched_bytes")


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("diff", [False, True])
def test_an_image_staged_already_is_answered_by_the_reader_alone_as_the_module_answers(
        image_action, run_module, home, pushed, check_mode, diff):
    _image, args = pushed
    args = dict(args, home=home)
    first, ran = image_action(args)
    assert first["changed"] is True and ran == ["strata.overlay.overlay_image_info", "strata.overlay.overlay_image"]
    before = _snapshot(home)
    again, ran = image_action(args, check_mode=check_mode, diff=diff)
    assert ran == ["strata.overlay.overlay_image_info"]
    assert _snapshot(home) == before
    module = run_module(overlay_image, args, check_mode=check_mode, diff=diff)
    assert {k: again[k] for k in WHAT_BOTH_SAY} == {k: module[k] for k in WHAT_BOTH_SAY}
    assert again.get("diff") == module.get("diff")


@pytest.mark.parametrize("extra", [{"max_layer_size": "1G"}, {"policy": "host"}, {"record_as": "docker://x/y:1"},
                                   {"state": "present", "layout": "the other one"}])
def test_a_task_the_reader_cannot_vouch_for_goes_to_the_module(image_action, run_module, home, pushed, layout, extra):
    _image, args = pushed
    args = dict(args, home=home)
    image_action(args)
    if extra.get("layout"):
        extra = dict(extra, layout="overlay2" if layout == "overlay" else "overlay")
    result, ran = image_action(dict(args, **extra))
    assert ran[-1] == "strata.overlay.overlay_image", (extra, ran)
    if extra.get("layout"):
        assert result.get("failed") and "layout" in result["msg"], result


def test_a_read_only_home_goes_to_the_module_which_refuses_it(image_action, run_module, home, pushed, scratch):
    del scratch  # the tmpfs the home is on, remounted read-only here
    _image, args = pushed
    args = dict(args, home=home)
    image_action(args)
    fs = os.path.dirname(home)
    syscalls.mount("none", fs, None, syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
    try:
        result, ran = image_action(args)
    finally:
        syscalls.mount("none", fs, None, syscalls.MS_REMOUNT)
    assert ran[-1] == "strata.overlay.overlay_image"
    assert result.get("failed") and "read-only" in result["msg"], result


def test_a_registry_that_fails_is_asked_once(image_action, run_module, home, pushed, server, waits):
    del waits
    _image, args = pushed
    args = dict(args, home=home, src=args["src"].replace("strata/app", "strata/none"))
    result, ran = image_action(args)
    # the home records nothing of it: the reader does not ask the registry (only_recorded), the module does
    assert result.get("failed") and ran == ["strata.overlay.overlay_image_info", "strata.overlay.overlay_image"]
    assert "failed_at" not in result
    assert len([p for p, _h in server.requests if "/manifests/" in p]) == 1


def test_a_registry_that_fails_after_staging_is_asked_once(image_action, run_module, home, pushed, server, waits):
    """The image recorded, the registry down since: the reader's registry failure is the module's, asked once."""
    del waits
    _image, args = pushed
    args = dict(args, home=home)
    image_action(args)
    server.override["/v2/strata/app/manifests/"] = status(503)
    before = len(server.requests)
    result, ran = image_action(dict(args, retries=1))
    assert result.get("failed") and "503" in result["msg"] and ran == ["strata.overlay.overlay_image_info"]
    assert "failed_at" not in result
    assert len([p for p, _h in server.requests[before:] if "/manifests/" in p]) == 2  # one try, one retry


def test_a_first_staging_asks_the_registry_for_the_manifest_once(image_action, run_module, home, pushed, server):
    _image, args = pushed
    result, ran = image_action(dict(args, home=home))
    assert result["changed"] is True and ran == ["strata.overlay.overlay_image_info", "strata.overlay.overlay_image"]
    assert len([p for p, _h in server.requests if "/manifests/" in p]) == 1


@pytest.mark.layout("overlay2")
def test_a_home_that_lost_a_short_link_goes_to_the_module_which_makes_it_again(image_action, run_module, home, pushed):
    _image, args = pushed
    args = dict(args, home=home)
    image_action(args)
    links = os.path.join(home, "l")
    os.unlink(os.path.join(links, sorted(os.listdir(links))[0]))
    res = run_module(overlay_image_info, args)
    assert res["image"]["recorded"] is True and "of layer" in res["home"]["upkeep_due"]
    result, ran = image_action(args)
    assert ran[-1] == "strata.overlay.overlay_image"
    assert result["changed"] is True and "made again" in " ".join(result.get("warnings", [])), result
    assert run_module(overlay_image_info, args)["home"]["upkeep_due"] is None
