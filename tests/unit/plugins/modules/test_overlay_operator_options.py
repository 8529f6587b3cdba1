"""overlay_info's tree and facts, overlay_mount's lazy unmount and busy message, through the modules."""

import os
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.modules import (
    overlay_apply_diff, overlay_info, overlay_layer, overlay_mount)

from layertools import TarBuilder

BASE = TarBuilder().dir("etc").file("etc/motd", "hello\n").bytes()


@pytest.fixture
def tree(run_module, home, scratch):
    path = os.path.join(scratch, "base.tar")
    with open(path, "wb") as f:
        f.write(BASE)
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": path, "remote_src": True})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    run_module(overlay_mount, {"id": "app", "home": home, "holder": "web"})
    return home


def test_info_draws_the_tree_and_returns_facts(run_module, tree):
    res = run_module(overlay_info, {"home": tree, "as_facts": True}, check_mode=True)
    assert res["tree"] == ["base (root) 6 B", "`-- app (overlay) mounted holders: web"]  # base: etc/motd, 6 bytes
    facts = res["ansible_facts"]["overlay_info"]
    assert facts["tree"] == res["tree"] and facts["layers"] == res["layers"] and "changed" not in facts
    assert "ansible_facts" not in run_module(overlay_info, {"home": tree})


def test_info_says_which_layout_the_home_is_in(run_module, tree, layout):
    assert run_module(overlay_info, {"home": tree})["layout"] == layout


def test_info_on_a_missing_home_creates_nothing(run_module, scratch):
    home = os.path.join(scratch, "nothing", "home")
    res = run_module(overlay_info, {"home": home, "as_facts": True})
    assert res["tree"] == ["no layer home at %s (it does not exist)" % home] and res["exists"] is False
    assert res["layout"] is None
    assert res["ansible_facts"]["overlay_info"]["status"]["home_exists"] is False
    assert res["ansible_facts"]["overlay_info"]["exists"] is False
    assert not os.path.exists(os.path.join(scratch, "nothing"))


@pytest.mark.parametrize("module,args", [
    (overlay_mount, {"id": "app", "holder": "web", "state": "unmounted"}),
    (overlay_mount, {"id": "app", "state": "unmounted", "force": True}),
    (overlay_layer, {"id": "app", "state": "absent"}),
    (overlay_layer, {"id": "app", "state": "absent", "force": True}),
], ids=["unmount", "unmount-force", "absent", "absent-force"])
def test_release_and_removal_on_a_missing_home_are_ok_and_create_nothing(run_module, scratch, module, args):
    home = os.path.join(scratch, "typo", "home")
    res = run_module(module, dict(args, home=home), diff=True)
    assert "failed" not in res and res["changed"] is False
    assert not os.path.lexists(os.path.join(scratch, "typo"))


def test_mount_in_a_missing_home_fails_naming_it_and_creates_nothing(run_module, scratch):
    home = os.path.join(scratch, "typo", "home")
    res = run_module(overlay_mount, {"id": "app", "holder": "web", "home": home})
    assert res["failed"] and home in res["msg"] and "does not exist" in res["msg"]
    assert not os.path.lexists(os.path.join(scratch, "typo"))


def test_busy_unmount_fails_naming_the_process_then_lazy_detaches(run_module, tree):
    merged = os.path.join(tree, "app", "merged")
    proc = subprocess.Popen(["sleep", "60"], cwd=merged)
    try:
        res = run_module(overlay_mount, {"id": "app", "home": tree, "holder": "web", "state": "unmounted"})
        assert res["failed"] and "pid %d (sleep 60: cwd)" % proc.pid in res["msg"] and res["path"] == merged
        assert "exception" not in res
        res = run_module(overlay_mount, {"id": "app", "home": tree, "holder": "web", "state": "unmounted",
                                         "lazy": True})
        assert res["changed"] and not res["mounted"] and res["holders"] == []
    finally:
        proc.kill()
        proc.wait()
