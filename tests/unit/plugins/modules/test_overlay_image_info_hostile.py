"""Hostile and neglected homes against overlay_image's fast path (overlay_image_info answering for overlay_image).

Each test is a home where a writer's run does something beside staging (takes back, seals, clears, refuses)
or an image the module refuses: the fast path must leave it to the module. The pattern: stage with
overlay_image, change one thing in the home, run the overlay_image action (which asks overlay_image_info
first; a reader, so the home is as it was), then run the overlay_image module on the same home and
compare.
"""

import os
import shutil
import stat

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import manifests
from ansible_collections.strata.overlay.plugins.modules import overlay_image, overlay_image_info

from imagetools import Image, mkimages
from layertools import run_as

INFO = "strata.overlay.overlay_image_info"
MODULE = "strata.overlay.overlay_image"
REMAPPED = 100000
MAPS = [{"container_id": 0, "host_id": REMAPPED, "size": 65536}]


def _owner(path):
    st = os.lstat(path)
    return st.st_uid, stat.S_IMODE(st.st_mode)


# -- an older home whose bookkeeping the remapped root owns: the module takes it back -------------------------------

def _stage_remapped_and_give_back(run_module, args, home):
    """A home with id maps, its .strata (and layers/, tmp/) given to the remapped root as earlier versions
    left them."""
    staged = run_module(overlay_image, dict(args, uid_maps=MAPS, gid_maps=MAPS))
    assert staged["changed"] is True, staged
    for name in (".strata", ".strata/layers", ".strata/tmp"):
        os.chown(os.path.join(home, name), REMAPPED, REMAPPED)


def test_an_earlier_versions_bookkeeping_is_taken_back_by_a_rerun_as_the_module_takes_it_back(
        image_action, run_module, home, pushed):
    """Every writer takes .strata back from the remapped root (home.py _check_private / _take_back_all): the
    fix that closed that user's write access to root's records. A re-run of the same image through the
    action never runs a writer any more, so the hole stays open for as long as the playbook changes nothing."""
    _image, args = pushed
    args = dict(args, home=home)
    _stage_remapped_and_give_back(run_module, args, home)
    fast, ran = image_action(dict(args, uid_maps=MAPS, gid_maps=MAPS))
    assert not fast.get("failed"), fast
    assert _owner(os.path.join(home, ".strata", "layers"))[0] == 0, \
        "after the re-run the remapped root still owns .strata/layers (the action ran %s)" % ran


def test_a_file_the_remapped_root_planted_in_its_old_records_dir_fails_the_module_and_the_fast_path_alike(
        image_action, run_module, home, pushed):
    """overlay_image refuses (and closes) a taken-back records directory holding a file that is not root's own;
    the reader reads the directory as it is and vouches for the image."""
    _image, args = pushed
    args = dict(args, home=home, uid_maps=MAPS, gid_maps=MAPS)
    _stage_remapped_and_give_back(run_module, args, home)

    def plant():
        with open(os.path.join(home, ".strata", "layers", "0" * 64 + ".json"), "w") as f:
            f.write('{"version": 1, "holders": ["forged"]}')
    run_as(REMAPPED, REMAPPED, plant)
    fast, ran = image_action(args)
    module = run_module(overlay_image, args)
    assert module.get("failed") and "not root's own" in module["msg"], module
    assert fast.get("failed"), "fast path (%s) said ok where overlay_image fails with: %s" % (ran, module["msg"])


def test_a_strata_of_the_remapped_roots_with_no_maps_of_roots_is_refused_by_the_fast_path_too(
        image_action, run_module, home, pushed):
    """A .strata of the remapped root's holding no maps.json of root's: the writer refuses the home (the
    remapped root could have made it); the reader takes the task's maps and reads it."""
    _image, args = pushed
    args = dict(args, home=home, uid_maps=MAPS, gid_maps=MAPS)
    _stage_remapped_and_give_back(run_module, args, home)
    os.unlink(os.path.join(home, ".strata", "maps.json"))
    fast, ran = image_action(args)
    module = run_module(overlay_image, args)
    assert module.get("failed") and "0700 directory owned by root" in module["msg"], module
    assert fast.get("failed"), "fast path (%s) said ok where overlay_image fails with: %s" % (ran, module["msg"])


# -- what a writer keeps in order is left to the writer -------------------------------------------------------------

def test_a_world_writable_image_records_dir_is_sealed_by_a_rerun_as_the_module_seals_it(
        image_action, run_module, home, pushed):
    """.strata/image-records of mode 0777: any local user can delete or rename root's image records in it.
    Every writer makes it root's 0700 again (_take_back_all); the reader accepts it of any mode
    (open_private's any_mode for WRITTEN_LATER) and the fast path leaves it open."""
    _image, args = pushed
    args = dict(args, home=home)
    run_module(overlay_image, args)
    records = os.path.join(home, ".strata", "image-records")
    os.chmod(records, 0o777)
    fast, ran = image_action(args)
    assert not fast.get("failed"), fast
    assert _owner(records) == (0, 0o700), "image-records is %o after the re-run (ran %s)" % (_owner(records)[1], ran)


def test_what_a_killed_run_left_in_tmp_is_cleared_by_a_rerun_as_the_module_clears_it(
        image_action, run_module, home, pushed):
    """A run killed while it downloaded a blob leaves it in .strata/tmp (it may be gigabytes); the next writer
    clears it. A re-run answered by the fast path never does, however often it runs."""
    _image, args = pushed
    args = dict(args, home=home)
    run_module(overlay_image, args)
    leftover = os.path.join(home, ".strata", "tmp", "apply-killed-run")
    os.mkdir(leftover, 0o700)
    with open(os.path.join(leftover, "blob"), "wb") as f:
        f.write(b"\0" * (1 << 20))
    fast, ran = image_action(args)
    assert not fast.get("failed"), fast
    assert not os.path.exists(leftover), "the killed run's leftovers are still in tmp after the re-run (ran %s)" % ran


# -- a limit overlay_image enforces, enforced alike -----------------------------------------------------------------

def test_an_image_over_the_layer_limit_is_refused_by_the_fast_path_as_by_the_module(
        image_action, run_module, home, server, pki, monkeypatch):
    """An image of 126 layers staged and recorded by an earlier version (no limit then; here: the limit raised
    for the first run). overlay_image now refuses it (check_layer_count); the reader never counts."""
    tars = [mkimages.layer_tar([("f%d" % i, b"%d\n" % i, 0o644)]) for i in range(manifests.MAX_IMAGE_LAYERS + 1)]
    image = Image(tars=tars)
    server.push("strata/deep", image, tag="v1")
    args = {"src": "docker://%s/strata/deep:v1" % server.netloc, "ca_path": pki[0], "home": home}
    with monkeypatch.context() as m:
        m.setattr(manifests, "MAX_IMAGE_LAYERS", 200)
        assert run_module(overlay_image, args)["changed"] is True
    fast, ran = image_action(args)
    module = run_module(overlay_image, args)
    assert module.get("failed") and "at most 125" in module["msg"], module
    assert fast.get("failed"), "fast path (%s) said ok where overlay_image fails with: %s" % (ran, module["msg"])


# -- where overlay_image fails at the home first, so does the task --------------------------------------------------

def test_a_home_the_module_refuses_before_the_config_fails_as_the_module_fails_not_with_the_registrys_error(
        image_action, run_module, home, pushed, server, layout, waits):
    """overlay_image opens the home (and refuses a layout other than the home's) once the manifest is read,
    before it asks for the config. The reader ignores the task's layout, asks for the config, and its
    failed_at=registry failure becomes the task's: the operator is told about the registry, where the module
    would have said that the layout is wrong (and a fixed registry then still fails the task)."""
    del waits
    image, args = pushed
    args = dict(args, home=home)
    run_module(overlay_image, args)
    shutil.rmtree(os.path.join(home, ".strata", "images"))  # the remembered config (a home of before the cache)
    del server.blobs[image.doc["config"]["digest"]]
    args["layout"] = "overlay2" if layout == "overlay" else "overlay"
    fast, ran = image_action(args)
    module = run_module(overlay_image, args)
    assert module.get("failed") and "layout" in module["msg"], module
    assert fast.get("failed") and fast["msg"] == module["msg"], (ran, fast.get("msg"), module["msg"])


# -- what ansible-doc shows -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("part", ["DOCUMENTATION", "RETURN"])
def test_the_modules_documentation_parses_so_ansible_doc_can_show_it(part):
    """`ansible-doc strata.overlay.overlay_image_info` fails: "Unable to parse documentation ... while scanning a
    simple key" (DOCUMENTATION: "... in the home: no lock is taken", a plain scalar with ': '), then, with that
    fixed, "mapping values are not allowed here" (RETURN, image.staged: "Every layer is present: staging ...")."""
    import yaml  # pylint: disable=import-outside-toplevel
    yaml.safe_load(getattr(overlay_image_info, part))
