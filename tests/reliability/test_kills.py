"""kill -9 of a real module process at each crash point; the next run converges.

On both layouts (the `layout` fixture): the modules run in processes of their own, so each call names it.

For every point: the killed run dies by SIGKILL; the next identical run
succeeds; a third reports no change; nothing is left in the store's temp dir
or as a half-written record; no layer shows partial content; and the final
layer equals what an uninterrupted run produces.
"""

import json
import os
import shutil

import pytest

from layertools import TarBuilder, snapshot
import modules

BASE = (TarBuilder().dir("etc").file("etc/motd", "base\n").file("etc/old", "old\n").dir("srv")
        .file("srv/a", "a\n").file("srv/b", "b\n").dir("bin").file("bin/tool", "#!\n", mode=0o755).bytes())
CHILD = (TarBuilder().dir("etc").file("etc/motd", "child\n").whiteout("etc/old").dir("srv").opaque("srv")
         .file("srv/c", "c\n").file("srv/d", "d\n").file("new1", "1").file("new2", "2").bytes())


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture
def store(home, layout, scratch):
    return {"home": home, "layout": layout, "base": write(os.path.join(scratch, "base.tar"), BASE),
            "child": write(os.path.join(scratch, "child.tar"), CHILD)}


def at(s, **args):
    """A module's args on the store's home, in the test's layout (a module process writing a new home
    takes the layout it is given)."""
    return dict(args, home=s["home"], layout=s["layout"])


def ok(module, args):
    rc, result, err = modules.run(module, args)
    assert rc == 0, (result, err)
    return result


def stage_base(s):
    ok("overlay_apply_diff", at(s, id="base", src=s["base"], remote_src=True))


def stage_init(s):
    """An overlay layer without a diff: in the seed's layout, without root/, so its children take the
    naive path."""
    stage_base(s)
    ok("overlay_layer", at(s, id="init", parent="base"))


def apply_child_on_root(s):
    return "overlay_apply_diff", at(s, id="child", parent="base", src=s["child"], remote_src=True)


def apply_child_on_overlay(s):
    return "overlay_apply_diff", at(s, id="child", parent="init", src=s["child"], remote_src=True)


def apply_base(s):
    return "overlay_apply_diff", at(s, id="base", src=s["base"], remote_src=True)


def create_child(s):
    return "overlay_layer", at(s, id="app", parent="base")


def create_grandchild(s):
    ok("overlay_layer", at(s, id="app", parent="base"))
    ok("overlay_mount", at(s, id="app", holder="w"))
    with open(os.path.join(s["home"], "app", "merged", "written"), "w") as f:
        f.write("in app's upper")
    os.utime(os.path.join(s["home"], "app", "merged", "written"), (1700000000, 1700000000))
    ok("overlay_mount", at(s, id="app", holder="w", state="unmounted"))
    return "overlay_layer", at(s, id="app2", parent="app")


def remove_layer(s):
    ok("overlay_layer", at(s, id="app", parent="base"))
    return "overlay_layer", at(s, id="app", state="absent")


def stage_without_short_links(s):
    """base and app on it, then l/ removed (an operator's rm): the mount makes l/ and both links again."""
    stage_base(s)
    ok("overlay_layer", at(s, id="app", parent="base"))
    shutil.rmtree(os.path.join(s["home"], "l"))


def mount_app(s):
    return "overlay_mount", at(s, id="app", holder="web")


def mount_layer(s):
    ok("overlay_layer", at(s, id="app", parent="base"))
    return "overlay_mount", at(s, id="app", holder="web")


def unmount_layer(s):
    ok("overlay_layer", at(s, id="app", parent="base"))
    ok("overlay_mount", at(s, id="app", holder="web"))
    return "overlay_mount", at(s, id="app", holder="web", state="unmounted")


# (crash point, what runs before, the operation killed)
CASES = [
    ("create.before-rename", stage_base, create_child),
    ("create.before-rename", stage_base, create_grandchild),
    ("apply.copied", stage_base, apply_child_on_root),
    ("apply.entry:3", stage_base, apply_child_on_root),
    ("apply.before-rename", stage_base, apply_child_on_root),
    ("apply.after-rename", stage_base, apply_child_on_root),
    ("apply.before-record", stage_base, apply_child_on_root),
    # the seed's naive path mounts a temp overlay to apply through; overlay2 applies into diff/ alone
    pytest.param("apply.mounted", stage_init, apply_child_on_overlay, marks=pytest.mark.layout("overlay")),
    ("apply.entry:4", stage_init, apply_child_on_overlay),
    ("apply.before-rename", stage_init, apply_child_on_overlay),
    ("apply.entry:2", None, apply_base),
    ("apply.before-rename", None, apply_base),
    ("remove.renamed", stage_base, remove_layer),
    ("mount.mounted", stage_base, mount_layer),
    ("unmount.unmounted", stage_base, unmount_layer),
    ("record.written", stage_base, mount_layer),
    ("record.written", None, apply_base),
    # killed between the short links a mount makes again: the next run makes the rest
    pytest.param("links.recreated", stage_without_short_links, mount_app, marks=pytest.mark.layout("overlay2")),
]


def layer_view(home, layer_id):
    """The layer's content as a user sees it (mounting an overlay layer briefly)."""
    result = ok("overlay_mount", {"id": layer_id, "home": home, "holder": "view"})
    try:
        return snapshot(result["path"], times=True)
    finally:
        ok("overlay_mount", {"id": layer_id, "home": home, "holder": "view", "state": "unmounted"})


def leftovers(home):
    state = os.path.join(home, ".strata")
    tmp = os.listdir(os.path.join(state, "tmp"))
    records_dir = os.path.join(state, "layers")
    # a record and a tar-split record per layer, nothing half written
    partial = [n for n in os.listdir(records_dir)
               if not (n.endswith((".json", ".tar-split")) and os.path.isdir(os.path.join(home, n.rsplit(".", 1)[0])))]
    for name in os.listdir(records_dir):
        if name.endswith(".json"):
            with open(os.path.join(records_dir, name)) as f:
                json.load(f)  # never torn
    mounted = [line.split()[4] for line in open("/proc/self/mountinfo") if state in line.split()[4]]
    return tmp, partial, mounted


def final_state(home, layer_id):
    info = ok("overlay_info", {"home": home, "id": layer_id})
    layer = info["layer"]
    view = layer_view(home, layer_id) if layer["exists"] else None
    return {k: layer[k] for k in ("exists", "kind", "parent", "holders", "diff_id", "mounted")}, view


def _case_id(case):
    values = case.values if hasattr(case, "values") else case
    return "%s-%s" % (values[0], values[2].__name__)


@pytest.mark.parametrize("fault,setup,operation", CASES, ids=[_case_id(c) for c in CASES])
def test_killed_run_converges(scratch, store, fault, setup, operation):
    # the uninterrupted outcome, in a home of its own
    reference = dict(store, home=os.path.join(scratch, "reference"))
    if setup:
        setup(reference)
    module, args = operation(reference)
    ok(module, args)
    layer_id = args["id"]
    expected = final_state(reference["home"], layer_id)

    if setup:
        setup(store)
    module, args = operation(store)
    rc, result, err = modules.run(module, args, fault=fault)
    assert rc == -9, "the fault point %s was not reached: %s %s" % (fault, result, err)

    # no layer shows partial content: it is absent, shows its parent unchanged, or is complete
    if os.path.isdir(os.path.join(store["home"], layer_id)) and module == "overlay_apply_diff":
        view = layer_view(store["home"], layer_id)
        before = layer_view(store["home"], args["parent"]) if args.get("parent") else {}
        assert view in (before, expected[1]), "partial content is visible"

    first = ok(module, args)
    again = ok(module, args)
    assert again["changed"] is False, (first, again)
    tmp, partial, mounted = leftovers(store["home"])
    assert tmp == [] and partial == [] and mounted == []
    assert final_state(store["home"], layer_id) == expected
