"""A layer home named through a bind-mount alias is the same home: mounts, removals and the dest guard
compare directories by device and inode (and mounts by where they are in their filesystem), not by
the text of their paths.

The layer is mounted through the home's own path; the alias is bound afterwards (a bind mount
does not carry the mounts below its source), so through the alias merged/ is a plain directory
while the overlay on it is live.
"""

import os
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, content_dir, opener

BASE = TarBuilder().dir("etc").file("etc/hostname", "base\n").bytes()


@pytest.fixture
def mounted_home(home):
    """A home with base (a root layer) and app (an overlay on it) mounted through the home's path."""
    store = LayerStore(home)
    with store.locked():
        store.apply_diff("base", "", opener(BASE))
        store.ensure_present("app", "base")
        store.ensure_mounted("app")
    store.close()
    with open(os.path.join(home, "app", "merged", "written-live"), "w") as f:
        f.write("data of a running layer\n")
    return home


@pytest.fixture(params=["home", "above"])
def alias(request, scratch, mounted_home):
    """The home named another way: a bind of the home itself, or of the directory above it."""
    source = mounted_home if request.param == "home" else scratch
    target = os.path.join(scratch, "alias")
    os.mkdir(target)
    subprocess.run(["mount", "--bind", source, target], check=True)
    try:
        subprocess.run(["mount", "--make-private", target], check=True)
        yield target if request.param == "home" else os.path.join(target, "home")
    finally:
        for entry in sorted(mounts.mounts_below(scratch), key=lambda m: -m.mount_id):
            syscalls.umount(entry.mount_point, syscalls.MNT_DETACH)


def overlays_on(upper):
    """The overlay mounts whose upperdir is the directory upper, however either is named.

    The driver's overlays name /proc/self/fd paths and carry a strata- source token: those are the
    ones on a merged/ of the same layer anywhere in the test's world (the home or its alias).
    """
    want = os.stat(upper)
    layer_dir = os.path.dirname(upper)
    world = os.path.dirname(os.path.dirname(layer_dir))
    tail = "/%s/merged" % os.path.basename(layer_dir)
    out = []
    for entry in mounts.read_mountinfo():
        if entry.fstype != "overlay":
            continue
        if entry.source.startswith("strata-"):
            if entry.mount_point.startswith(world + "/") and entry.mount_point.endswith(tail):
                out.append(entry)
            continue
        named = entry.options_dict().get("upperdir")
        try:
            st = os.stat(named)
        except (OSError, TypeError):
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            out.append(entry)
    return out


def test_the_alias_sees_the_live_mount_as_the_layers_own(mounted_home, alias):
    store = LayerStore(alias)
    with store.locked():
        state = store.state("app")
    store.close()
    assert (state["mounted"], state["foreign_mount"], state["holders"]) == (True, False, ["ansible"])


def test_force_absent_through_an_alias_unmounts_before_it_removes(mounted_home, alias):
    upper = content_dir(mounted_home, "app")
    assert len(overlays_on(upper)) == 1
    store = LayerStore(alias)
    try:
        with store.locked():
            try:
                store.ensure_absent("app", force=True)
            except OverlayError:
                pass  # refusing is safe too; deleting under a live mount is not
    finally:
        store.close()
    live = [e for e in mounts.read_mountinfo() if e.mount_point == os.path.join(mounted_home, "app", "merged")]
    if live:  # refused: the running layer keeps its files
        with open(os.path.join(content_dir(mounted_home, "app"), "written-live")) as f:
            assert f.read() == "data of a running layer\n"
    else:
        assert not os.path.exists(os.path.join(mounted_home, "app"))


def test_mounting_through_an_alias_mounts_no_second_overlay_on_the_same_upper(mounted_home, alias):
    store = LayerStore(alias)
    try:
        with store.locked():
            outcome = store.ensure_mounted("app", holder="second")
    finally:
        store.close()
    assert outcome.after["mounted"] is True
    assert len(overlays_on(content_dir(mounted_home, "app"))) == 1


def test_unmounting_through_an_alias_unmounts_the_live_mount(mounted_home, alias):
    store = LayerStore(alias)
    try:
        with store.locked():
            store.ensure_unmounted("app")
    finally:
        store.close()
    assert overlays_on(content_dir(mounted_home, "app")) == []


def test_a_dest_through_an_alias_of_the_home_is_refused(mounted_home, alias):
    before = sorted(os.listdir(mounted_home))
    store = LayerStore(mounted_home)
    try:
        with store.locked(), pytest.raises(OverlayError, match="inside the layer home"):
            store.export_diff("app", os.path.join(alias, "app.tar"))
    finally:
        store.close()
    assert sorted(os.listdir(mounted_home)) == before


def test_a_dest_below_an_alias_of_the_home_is_refused(mounted_home, alias):
    store = LayerStore(mounted_home)
    try:
        with store.locked(), pytest.raises(OverlayError, match="inside the layer home"):
            store.export_diff("app", os.path.join(alias, os.path.relpath(content_dir(mounted_home, "app"), mounted_home), "etc-diff.tar"))
    finally:
        store.close()
    assert not os.path.exists(os.path.join(content_dir(mounted_home, "app"), "etc-diff.tar"))
