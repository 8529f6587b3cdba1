"""The layer home is opened, never trusted by path.

Each test plants what an unprivileged user (uid 65534) could have planted
around or inside the home, then checks that the store refuses with a clear
error and that nothing outside the home (the canary) was touched.
"""

import os
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import removal, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import content_dir, snapshot

NOBODY = 65534


def planted_dir(path, mode=0o755):
    os.mkdir(path)
    os.chown(path, NOBODY, NOBODY)
    os.chmod(path, mode)
    return path


def planted_symlink(target, path):
    os.symlink(target, path)
    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    return path


def made_home(home):
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("base")
        store.ensure_present("app", "base")
    store.close()
    return home


@pytest.fixture
def guarded(canary):
    """The canary's snapshot is checked after the test: nothing outside the home changes."""
    before = snapshot(canary)
    yield canary
    assert snapshot(canary) == before


def refused(home, match="refusing this layer home", **kwargs):
    with pytest.raises(OverlayError, match=match):
        LayerStore(home, **kwargs)


def test_ancestor_writable_by_others_is_refused(scratch, guarded):
    shared = planted_dir(os.path.join(scratch, "shared"), 0o777)
    os.chown(shared, 0, 0)
    refused(os.path.join(shared, "home"), "writable by every user")
    assert os.listdir(shared) == []


def test_ancestor_or_home_owned_by_another_user_is_refused(scratch, guarded):
    theirs = planted_dir(os.path.join(scratch, "theirs"))
    refused(os.path.join(theirs, "home"), "owned by uid 65534")
    assert os.listdir(theirs) == []
    home = planted_dir(os.path.join(scratch, "home"), 0o700)
    refused(home, "owned by uid 65534")
    refused(home, "owned by uid 65534", read_only=True)
    assert os.listdir(home) == []


def test_sticky_world_writable_ancestor_is_fine_but_not_a_symlink_planted_in_it(scratch, guarded):
    tmp = os.path.join(scratch, "tmp")
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    made_home(os.path.join(tmp, "home"))
    planted_symlink(guarded, os.path.join(tmp, "link"))
    refused(os.path.join(tmp, "link"), "symlink owned by uid 65534")
    refused(os.path.join(tmp, "link", "home"), "symlink owned by uid 65534")


def test_slash_and_a_directory_of_other_things_are_refused(scratch, guarded):
    refused("/", "it is /")
    refused(guarded, "holds 'etc', which is not a layer directory")
    refused(guarded, "not a layer directory", read_only=True)
    assert not os.path.exists(os.path.join(guarded, ".strata"))
    # directories whose names could be layer ids are not layers unless they hold only a layer's entries
    only_dirs = os.path.join(guarded, "etc")
    refused(only_dirs, "holds 'passwd', which is not a layer directory")
    os.makedirs(os.path.join(scratch, "usr", "lib", "x"))
    refused(os.path.join(scratch, "usr"), "holds 'lib', which is not a layer directory")
    assert os.listdir(os.path.join(scratch, "usr")) == ["lib"]


@pytest.mark.parametrize("planted", [".strata", ".strata/tmp", ".strata/layers"])
def test_symlinked_bookkeeping_dirs_are_refused_in_every_mode(home, guarded, planted):
    made_home(home)
    path = os.path.join(home, planted)
    subprocess.run(["rm", "-rf", path], check=True)
    planted_symlink(guarded, path)
    refused(home, "symlink or not a directory")
    refused(home, "symlink or not a directory", read_only=True)


@pytest.mark.parametrize("planted", [".strata", ".strata/tmp"])
def test_bookkeeping_dirs_of_another_user_or_open_to_others_are_refused(home, guarded, planted):
    made_home(home)
    path = os.path.join(home, planted)
    os.chown(path, NOBODY, NOBODY)
    refused(home, "0700 directory owned by root")
    os.chown(path, 0, 0)
    os.chmod(path, 0o777)
    refused(home, "0700 directory owned by root")


def test_symlinked_lock_is_refused_and_its_target_untouched(home, guarded):
    made_home(home)
    lock = os.path.join(home, ".strata", "lock")
    os.unlink(lock)
    planted_symlink(os.path.join(guarded, "etc", "passwd"), lock)
    with pytest.raises(OverlayError, match="lock is not a regular file"):
        with LayerStore(home).locked():
            pass
    os.unlink(lock)
    planted_symlink(os.path.join(guarded, "created-by-root"), lock)
    with pytest.raises(OverlayError, match="lock is not a regular file"):
        with LayerStore(home).locked():
            pass


def test_symlinked_layer_dir_is_not_a_layer(home, guarded):
    made_home(home)
    os.makedirs(os.path.join(guarded, "evil", "root"))
    planted_symlink(os.path.join(guarded, "evil"), os.path.join(home, "evil"))
    with open(os.path.join(home, ".strata", "layers", "evil.json"), "w") as f:
        f.write('{"diff_id": "sha256:%s", "holders": []}' % ("0" * 64))
    refused(home, "holds 'evil', which is not a layer directory")
    os.unlink(os.path.join(home, "evil"))
    os.rmdir(os.path.join(guarded, "evil", "root"))
    os.rmdir(os.path.join(guarded, "evil"))


def test_symlinked_record_is_neither_read_nor_followed(home, guarded):
    made_home(home)
    record = os.path.join(home, ".strata", "layers", "app.json")
    os.unlink(record)
    planted_symlink(os.path.join(guarded, "etc", "passwd"), record)
    store = LayerStore(home)
    assert "record cannot be read" in store.state("app")["problem"]
    os.unlink(record)
    planted_symlink(os.path.join(guarded, "etc", "passwd"), os.path.join(home, ".strata", "layers", "gone.json"))
    with LayerStore(home).locked():  # prunes the orphan record: the link, not its target
        pass
    assert not os.path.lexists(os.path.join(home, ".strata", "layers", "gone.json"))


def test_removing_a_layer_with_a_bind_mount_inside_is_refused_first(home, guarded):
    made_home(home)
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("solo")
    target = os.path.join(content_dir(home, "solo"), "data")
    os.mkdir(target)
    syscalls.mount(os.path.join(guarded, "etc"), target, None, 4096)  # MS_BIND
    try:
        with store.locked():
            with pytest.raises(OverlayError, match=r"%s is mounted inside .*refusing to remove" % target):
                store.ensure_absent("solo")
        assert os.path.isdir(target)
        assert store.state("solo")["exists"]
    finally:
        syscalls.umount(target)


def test_recursive_removal_never_crosses_a_mount_or_a_filesystem(scratch, guarded):
    victim = os.path.join(scratch, "victim")
    os.makedirs(os.path.join(victim, "sub", "mnt"))
    syscalls.mount("tmpfs", os.path.join(victim, "sub", "mnt"), "tmpfs", 0, "size=1m")
    with open(os.path.join(victim, "sub", "mnt", "precious"), "w") as f:
        f.write("keep")
    try:
        with pytest.raises(OverlayError, match="is mounted inside"):
            removal.remove_tree(victim)
        assert os.path.exists(os.path.join(victim, "sub", "mnt", "precious"))
    finally:
        syscalls.umount(os.path.join(victim, "sub", "mnt"))
    removal.remove_tree(victim)
    assert not os.path.exists(victim)


def test_read_only_run_on_a_symlinked_tmp_empties_nothing(home, guarded):
    """The reported case: a check run on a home whose .strata/tmp was a symlink emptied its target."""
    made_home(home)
    tmp = os.path.join(home, ".strata", "tmp")
    os.rmdir(tmp)
    planted_symlink(guarded, tmp)
    with pytest.raises(OverlayError, match="symlink or not a directory"):
        with LayerStore(home, read_only=True).locked():
            pass
    with pytest.raises(OverlayError, match="symlink or not a directory"):
        with LayerStore(home).locked():
            pass


@pytest.mark.layout("overlay")  # the seed's lower-id
def test_a_symlinked_lower_id_is_not_read_through(home, guarded):
    made_home(home)
    lower_id = os.path.join(home, "app", "lower-id")
    os.unlink(lower_id)
    planted_symlink(os.path.join(guarded, "etc", "passwd"), lower_id)
    store = LayerStore(home)
    with pytest.raises(OverlayError, match="cannot read lower-id"):
        store.driver.lower_id("app")


@pytest.mark.layout("overlay")  # the seed's root/ and upper/
def test_a_damaged_layer_is_a_layer_but_foreign_contents_still_refuse_the_home(home, guarded):
    """A layer directory missing root/ and upper/, or holding a name no layer has, is that layer's problem,
    not a reason to refuse the home; a file of root's in the home, or a layer-named directory holding none
    of a layer's names, still is (is this the right home?)."""
    made_home(home)
    os.rmdir(os.path.join(home, "app", "upper"))
    with LayerStore(home).locked() as store:
        assert "neither root/ nor upper/" in store.state("app")["problem"]
    with open(os.path.join(home, "app", "notes.txt"), "w") as f:
        f.write("mine\n")
    with LayerStore(home).locked() as store:
        assert "holds 'notes.txt', which is not part of a layer" in store.state("app")["problem"]
        assert store.state("base")["problem"] is None
    os.unlink(os.path.join(home, "app", "notes.txt"))
    with open(os.path.join(home, "README"), "w") as f:
        f.write("mine\n")
    refused(home, "holds 'README', which is not a layer directory")
    refused(home, "holds 'README', which is not a layer directory", read_only=True)
    os.unlink(os.path.join(home, "README"))
    os.makedirs(os.path.join(home, "docs", "notes"))
    refused(home, "holds 'docs', which is not a layer directory")


@pytest.fixture(params=["tmpfs", "ext4"])
def acl_fs(request, scratch, loopfs):
    """A directory on a filesystem that keeps POSIX ACLs: the test's tmpfs, or a real ext4."""
    return scratch if request.param == "tmpfs" else loopfs("ext4", 64)


@pytest.mark.parametrize("entry,cause", [
    ("u:65534:rwx", "writable by uid 65534 through an ACL entry"),
    ("g:65534:rwx", "writable by group 65534 through an ACL entry"),
    ("g::rwx", "writable by group 4242"),
])
def test_an_ancestor_writable_through_an_acl_is_refused(acl_fs, guarded, entry, cause):
    """Mode 0755 and owned by root, but an ACL entry lets another user (or group) change it."""
    shared = os.path.join(acl_fs, "shared")
    os.mkdir(shared, 0o755)
    os.chown(shared, 0, 4242)
    subprocess.run(["setfacl", "-m", entry, shared], check=True)
    refused(os.path.join(shared, "home"), cause)
    assert os.listdir(shared) == []


def test_the_acl_mask_limits_what_an_entry_grants(acl_fs, guarded):
    shared = os.path.join(acl_fs, "shared")
    os.mkdir(shared, 0o755)
    subprocess.run(["setfacl", "-m", "u:65534:rwx,u:0:rwx,m::r-x", shared], check=True)
    store = LayerStore(os.path.join(shared, "home"))
    with store.locked():
        store.ensure_present("base")
    store.close()


def test_the_home_itself_writable_through_an_acl_is_refused(home, guarded):
    made_home(home)
    subprocess.run(["setfacl", "-m", "u:65534:rwx", home], check=True)
    refused(home, "writable by uid 65534 through an ACL entry")
