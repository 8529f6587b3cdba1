"""Random plantings around and inside a home: every run either works or fails with OverlayError,
and nothing outside the home changes."""

import os
import random
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import run_as, run_isolated, snapshot

NOBODY = 65534
SPOTS = [".strata", ".strata/tmp", ".strata/layers", ".strata/lock", ".strata/maps.json",
         ".strata/layers/base.json", ".strata/layers/app.json", ".strata/layers/ghost.json", ".strata/tmp/apply-x-1",
         "base", "base/root",
         "base/lower-id", "app", "app/upper", "app/lower-id", "app/merged", "ghost", ".."]


BAD_RECORDS = ['{"parent": {"id": "base"}}', '{"parent": "../../canary"}', '{"holders": "web"}',
               '{"holders": ["web\\nbase (held)"]}', '{"holders": [{"a": 1}]}', '{"size": "12"}', '{"size": -1}',
               '{"diff_id": ["sha256:x"]}', '{"version": 9}', '{"id": "other"}', '{"mount_options": ["suid"]}',
               '{"mount_options": "nosuid"}', '[]', '"x"', '{"holders": [' + '"h",' * 3 + '1]}']


def plant(rng, home, canary):
    spot = rng.choice(SPOTS)
    path = os.path.normpath(os.path.join(home, spot))
    if spot == "..":
        os.chmod(path, rng.choice([0o777, 0o775, 0o755]))
        os.chown(path, rng.choice([0, NOBODY]), rng.choice([0, NOBODY]))
        return spot
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", path], check=True)
    if not os.path.isdir(os.path.dirname(path)):
        return None
    kind = rng.choice(["link-dir", "link-file", "file", "dir", "dir-open", "bad-record"])
    if kind == "link-dir":
        os.symlink(os.path.join(canary, "etc"), path)
    elif kind == "link-file":
        os.symlink(os.path.join(canary, "etc", "passwd"), path)
    elif kind == "file":
        with open(path, "w") as f:
            f.write('{"holders": ["x"], "diff_id": "sha256:%s"}' % ("0" * 64))
    elif kind == "bad-record":  # a file of the right name whose fields have the wrong shape
        with open(path, "w") as f:
            f.write(rng.choice(BAD_RECORDS))
    else:
        os.mkdir(path)
        if kind == "dir-open":
            os.chmod(path, 0o777)
    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    return "%s %s" % (kind, spot)


def make_home_with_app(scratch, keep_mounted):
    """A home at scratch/parent/home holding base and app on it; app has been mounted once and, unless
    keep_mounted, unmounted again. Returns the home's path."""
    home = os.path.join(scratch, "parent", "home")
    os.mkdir(os.path.dirname(home))
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("base")
        store.ensure_present("app", "base")
        store.ensure_mounted("app", "web")
        if not keep_mounted:
            store.ensure_unmounted("app", "web")
    store.close()
    return home


@pytest.mark.parametrize("seed", range(40))
def test_random_plantings_never_reach_outside(scratch, canary, seed):
    rng = random.Random(seed)
    home = make_home_with_app(scratch, keep_mounted=False)
    before = snapshot(canary)
    planted = [plant(rng, home, canary) for _n in range(rng.randint(1, 3))]
    for read_only in (True, False):
        try:
            s = LayerStore(home, read_only=read_only)
            try:
                with s.locked():
                    s.layers()
                    s.ensure_present("new", "base", check_mode=read_only)
                    s.ensure_mounted("app", "w", check_mode=read_only)
                    s.ensure_unmounted("app", "w", check_mode=read_only)
                    s.ensure_absent("new", check_mode=read_only)
                    s.driver.changes("app", "base")
            finally:
                s.close()
        except OverlayError:
            pass
        assert snapshot(canary) == before, planted
    mounted = [line.split()[4] for line in open("/proc/self/mountinfo") if home in line.split()[4]]
    for point in mounted:
        subprocess.run(["umount", point], check=False)


ACL_SPOTS = ["..", ".", ".strata", ".strata/layers", ".strata/tmp"]
ACL_ENTRIES = ["u:%d:rwx" % NOBODY, "g:%d:rwx" % NOBODY, "u:%d:rwx,m::r-x" % NOBODY]


def plant_acl(rng, home):
    """An ACL entry giving another user write access (or, behind a mask, none) to a directory."""
    spot, entry = rng.choice(ACL_SPOTS), rng.choice(ACL_ENTRIES)
    subprocess.run(["setfacl", "-m", entry, os.path.normpath(os.path.join(home, spot))], check=True)
    return spot, entry


def live_overlays(upper):
    want = os.stat(upper)
    out = []
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        if "overlay" not in fields:
            continue
        for option in fields[-1].split(","):
            if option.startswith("upperdir="):
                try:
                    st = os.stat(option[len("upperdir="):])
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    out.append(fields[4])
    return out


@pytest.mark.parametrize("seed", range(24))
def test_aliases_and_acls_never_reach_outside_nor_under_a_live_mount(scratch, canary, seed):
    """Two classes: the home named through a bind-mount alias (of itself or of its parent) while a
    layer is mounted through its own path, and ACL entries giving another user write access."""
    rng = random.Random(seed)
    home = make_home_with_app(scratch, keep_mounted=True)
    upper = os.path.join(home, "app", "upper")
    with open(os.path.join(home, "app", "merged", "live"), "w") as f:
        f.write("live\n")
    before = snapshot(canary)
    aliased = rng.choice([None, "home", "parent"])
    named = home
    if aliased is not None:
        alias = os.path.join(scratch, "alias")
        os.mkdir(alias)
        subprocess.run(["mount", "--bind", home if aliased == "home" else os.path.dirname(home), alias], check=True)
        subprocess.run(["mount", "--make-private", alias], check=True)
        named = alias if aliased == "home" else os.path.join(alias, "home")
    acl = plant_acl(rng, home) if aliased is None or rng.random() < 0.5 else None
    granted = acl is not None and "m::" not in acl[1] and acl[0] in ("..", ".")
    ops = rng.sample(["mount", "unmount", "absent", "diff", "new"], 3)
    failed = None
    try:
        s = LayerStore(named)
        try:
            with s.locked():
                for op in ops:
                    if op == "mount":
                        s.ensure_mounted("app", "other")
                    elif op == "unmount":
                        s.ensure_unmounted("app", "web")
                    elif op == "absent":
                        s.ensure_absent("app", force=True)
                    elif op == "diff":
                        s.export_diff("app", os.path.join(named, "app.tar"))
                    else:
                        s.ensure_present("new", "base")
        finally:
            s.close()
    except OverlayError as e:
        failed = e
    case = (aliased, acl, ops, failed)
    assert snapshot(canary) == before, case
    if granted:
        assert failed is not None and "ACL" in str(failed), case
    assert not os.path.exists(os.path.join(home, "app.tar")), case
    if os.path.isdir(upper):
        assert len(live_overlays(upper)) <= 1, case
        if live_overlays(upper):
            with open(os.path.join(upper, "live")) as f:
                assert f.read() == "live\n", case
    else:
        assert not os.path.exists(os.path.join(home, "app")), case
    for entry in sorted((line.split() for line in open("/proc/self/mountinfo")), key=lambda f: -int(f[0])):
        if entry[4].startswith(scratch + "/"):
            subprocess.run(["umount", "-l", entry[4]], check=False)


# -- the home owned by the remapped root: it plants what it likes in the home and the layers ----------

REMAPPED = 100000
REMAPPED_MAPS = [{"container_id": 0, "host_id": REMAPPED, "size": 65536}]
REMAPPED_SPOTS = ["app/upper", "app/work", "app/merged", "app/lower-id", "app/upper/d", "app/upper/d/f",
                  "app/upper/f", "base/root", "base/root/etc", "ghost", ".strata", ".strata-x"]

REMAPPED_RUN = """
import io, os, sys
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore
home, ops = %r, %r
for op in ops:
    try:
        s = LayerStore(home, read_only=op == "info")
        try:
            with s.locked():
                if op == "info":
                    s.layers()
                elif op == "new":
                    s.ensure_present("new", "app")
                elif op == "mount":
                    s.ensure_mounted("app", "other")
                elif op == "unmount":
                    s.ensure_unmounted("app", "web", force=True)
                elif op == "absent":
                    s.ensure_absent("new", force=True)
                elif op == "changes":
                    s.driver.changes("app", "base")
                else:
                    s.export_diff("app", os.path.join(%r, "app.tar"))
        finally:
            s.close()
        print(op, "ok")
    except OverlayError as e:
        print(op, "refused:", e.message)
"""


def plant_as_remapped(rng, home, canary, secret):
    """One planting in the home by the remapped root itself (a real uid 100000 process)."""
    spot = rng.choice(REMAPPED_SPOTS)
    kind = rng.choice(["link-dir", "link-file", "link-secret", "fifo", "file", "dir"])
    path = os.path.join(home, spot)

    def plant():
        if os.path.isdir(path) and not os.path.islink(path):
            try:
                subprocess.run(["rm", "-rf", path], check=True, capture_output=True)
            except subprocess.CalledProcessError:
                return "cannot remove"
        elif os.path.lexists(path):
            try:
                os.unlink(path)
            except OSError as e:
                return "cannot remove: %s" % e.strerror
        try:
            if kind == "link-dir":
                os.symlink(os.path.join(canary, "etc"), path)
            elif kind == "link-file":
                os.symlink(os.path.join(canary, "etc", "passwd"), path)
            elif kind == "link-secret":
                os.symlink(secret, path)
            elif kind == "fifo":
                os.mkfifo(path)
            elif kind == "file":
                with open(path, "w") as f:
                    f.write("planted\n")
            else:
                os.mkdir(path)
        except OSError as e:
            return "cannot plant: %s" % e.strerror
        return "planted"

    return "%s %s: %s" % (kind, spot, run_as(REMAPPED, REMAPPED, plant))


@pytest.mark.parametrize("seed", range(20))
def test_the_remapped_roots_plantings_never_reach_root_only_files(scratch, canary, seed):
    """Under maps the home and the layer directories are the remapped root's (the seed's layout), and
    some user can act as it: whatever it plants there (symlinks to root's files, FIFOs), no run chowns,
    chmods or writes through it, copies a root-only file into a layer, mounts what it names, or hangs."""
    rng = random.Random(seed)
    home = os.path.join(scratch, "home")
    secret = os.path.join(scratch, "secret")
    os.mkdir(secret, 0o700)
    with open(os.path.join(secret, "shadow"), "w") as f:
        f.write("root only\n")
    store = LayerStore(home, REMAPPED_MAPS, REMAPPED_MAPS)
    with store.locked():
        store.ensure_present("base")
        store.ensure_present("app", "base")
        store.ensure_mounted("app", "web")
        for name in ("d", "f"):
            path = os.path.join(home, "app", "merged", name)
            if name == "d":
                os.mkdir(path)
            else:
                with open(path, "w"):
                    pass
        store.ensure_unmounted("app", "web")
        if rng.random() < 0.5:
            store.ensure_mounted("app", "web")
    store.close()
    before, secret_before = snapshot(canary), snapshot(secret)
    planted = [plant_as_remapped(rng, home, canary, secret) for _n in range(rng.randint(1, 3))]
    ops = rng.sample(["info", "new", "mount", "unmount", "absent", "changes", "diff"], 4)
    done = run_isolated(REMAPPED_RUN % (home, ops, scratch), timeout=120)
    case = (planted, ops, done.stdout, done.stderr[-2000:])
    assert done.returncode == 0 and "Traceback" not in done.stderr, case
    assert snapshot(canary) == before, case
    assert snapshot(secret) == secret_before, case
    for dirpath, _dirs, files in os.walk(home):
        assert "shadow" not in files, (dirpath, case)
    for entry in sorted((line.split() for line in open("/proc/self/mountinfo")), key=lambda f: -int(f[0])):
        point = entry[4]
        assert not point.startswith(canary) and not point.startswith(secret), case
        if point.startswith(scratch + "/"):
            subprocess.run(["umount", "-l", point], check=False)
