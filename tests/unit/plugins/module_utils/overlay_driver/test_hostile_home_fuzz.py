"""Random plantings around and inside a home: every run either works or fails with OverlayError,
and nothing outside the home changes. On both layouts, each with its own names to plant on (overlay2's
l/ and its short links, the link and lower files and what they say)."""

import os
import random
import subprocess
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import run_as, run_isolated, snapshot

NOBODY = 65534
T_OLD = 1600000000
COMMON_SPOTS = [".strata", ".strata/tmp", ".strata/layers", ".strata/lock", ".strata/maps.json",
                ".strata/layers/base.json", ".strata/layers/app.json", ".strata/layers/ghost.json",
                ".strata/tmp/apply-x-1", "base", "app", "app/merged", "ghost", ".."]
# each layout's own names: the seed's root/, upper/ and lower-id; overlay2's diff/, link, lower, work/, committed
# and l/ with its short links (l/@base and l/@app stand for the layer's own link, read when planting)
SPOTS = {
    "overlay": COMMON_SPOTS + ["base/root", "base/lower-id", "app/upper", "app/lower-id"],
    "overlay2": COMMON_SPOTS + [".strata/layout.json", "base/diff", "base/link", "base/committed", "app/diff",
                                "app/link", "app/lower", "app/work", "l", "l/@base", "l/@app",
                                "l/GHOSTGHOSTGHOSTGHOSTGHOST"],
}
# what a planted link or lower file says: another layer's link, a link to nowhere, names that climb out,
# a layer below itself, Docker's separators doubled, too long, not text
LINK_TEXTS = ["GHOSTGHOSTGHOSTGHOSTGHOST", "../../canary", "l/../../canary", "@base", "@app", "@base:@app",
              "@app:@app", "@base::@base", "", "\n", "x" * 70000, "l/@base\x00", "\xff\xfe"]


BAD_RECORDS = ['{"parent": {"id": "base"}}', '{"parent": "../../canary"}', '{"holders": "web"}',
               '{"holders": ["web\\nbase (held)"]}', '{"holders": [{"a": 1}]}', '{"size": "12"}', '{"size": -1}',
               '{"diff_id": ["sha256:x"]}', '{"version": 9}', '{"id": "other"}', '{"mount_options": ["suid"]}',
               '{"mount_options": "nosuid"}', '[]', '"x"', '{"holders": [' + '"h",' * 3 + '1]}']


def _own_link(home, layer_id):
    """The layer's short link as its link file says (overlay2), or a made-up one when it cannot be read."""
    try:
        with open(os.path.join(home, layer_id, "link")) as f:
            return f.read().strip() or "NOLINKNOLINKNOLINKNOLINKNO"
    except (OSError, UnicodeDecodeError):
        return "NOLINKNOLINKNOLINKNOLINKNO"


def _with_links(home, text):
    """@base and @app in a spot or a link text replaced by those layers' short links."""
    for layer_id in ("base", "app"):
        text = text.replace("@" + layer_id, _own_link(home, layer_id))
    return text


def _link_text(rng, home, spot):
    text = _with_links(home, rng.choice(LINK_TEXTS))
    if spot.endswith("/lower") and rng.random() < 0.5:
        text = ":".join("l/" + part if part and not part.startswith(("l/", ".")) else part for part in text.split(":"))
    return text


def plant(rng, home, canary, layout="overlay"):
    spot = _with_links(home, rng.choice(SPOTS[layout]))
    path = os.path.normpath(os.path.join(home, spot))
    if spot == "..":
        os.chmod(path, rng.choice([0o777, 0o775, 0o755]))
        os.chown(path, rng.choice([0, NOBODY]), rng.choice([0, NOBODY]))
        return spot
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", path], check=True)
    if not os.path.isdir(os.path.dirname(path)):
        return None
    kinds = ["link-dir", "link-file", "file", "dir", "dir-open", "bad-record"]
    if spot.endswith(("/link", "/lower")):
        kinds += ["link-text"] * 3  # overlay2's link and lower files: what they name is checked
    if spot.startswith("l/"):
        kinds += ["short-link"] * 3  # a short link to another place than ../<id>/diff
    kind = rng.choice(kinds)
    if kind == "link-text":
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(_link_text(rng, home, spot))
    elif kind == "short-link":
        os.symlink(rng.choice(["../app/diff", "../base", "../ghost/diff", "../../canary", canary,
                               os.path.join(canary, "etc"), "../app/diff/../../base/diff", "../.strata"]), path)
    elif kind == "link-dir":
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
    """A home at scratch/parent/home, in the test's layout (the layout fixture's default), holding base and
    app on it; app has been mounted once and, unless keep_mounted, unmounted again. Returns the home's path."""
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
def test_random_plantings_never_reach_outside(scratch, canary, layout, seed):
    rng = random.Random(seed)
    home = make_home_with_app(scratch, keep_mounted=False)
    before = snapshot(canary)
    planted = [plant(rng, home, canary, layout) for _n in range(rng.randint(1, 3))]
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
    """The overlays whose upper dir is upper. Asked of the mount itself (its upper dir is where a file
    created through it lands), as an overlay2 mount names its dirs by fd and short link in the mount table.

    Only overlays mounted on upper's own filesystem are asked (the major:minor of the mount each one's
    mount point is in): the probe is a file made and removed through the mount, and an overlay of
    anything else on the host (another test's layers, a Docker container's root) must not get one.
    """
    want = os.stat(upper)
    own_fs = "%d:%d" % (os.major(want.st_dev), os.minor(want.st_dev))
    table = [line.split() for line in open("/proc/self/mountinfo")]
    fs_of_mount = {fields[0]: fields[2] for fields in table}
    out = []
    for fields in table:
        if "overlay" not in fields[fields.index("-") + 1:fields.index("-") + 2]:
            continue
        if fs_of_mount.get(fields[1]) != own_fs:
            continue
        probe = os.path.join(fields[4], ".strata-probe-%d" % os.getpid())
        try:
            with open(probe, "x"):
                pass
        except OSError:
            continue
        try:
            st = os.stat(os.path.join(upper, os.path.basename(probe)))
            if st.st_dev == want.st_dev:
                out.append(fields[4])
        except OSError:
            pass
        finally:
            os.unlink(probe)
    return out


def _overlay_in(directory):
    """lower/, upper/, work/ and an overlay of them at merged/, made in directory: (upper, merged)."""
    parts = {name: os.path.join(directory, name) for name in ("lower", "upper", "work", "merged")}
    for path in parts.values():
        os.mkdir(path)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%(lower)s,upperdir=%(upper)s,workdir=%(work)s"
                    % parts, parts["merged"]], check=True)
    return parts["upper"], parts["merged"]


def test_live_overlays_asks_no_overlay_on_another_filesystem(scratch):
    """The probe goes only through overlays on the upper's own filesystem: an overlay elsewhere on the host
    (here on a tmpfs of its own, as another test's or a Docker daemon's layers are) is never written to."""
    elsewhere = tempfile.mkdtemp(prefix="strata-test-elsewhere-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "tmpfs", elsewhere], check=True)
    try:
        their_upper, _their_merged = _overlay_in(elsewhere)
        os.utime(their_upper, (T_OLD, T_OLD))  # any entry made or removed in it moves this
        untouched = os.stat(their_upper).st_mtime_ns, sorted(os.listdir(their_upper))
        own = os.path.join(scratch, "own")
        os.mkdir(own)
        our_upper, our_merged = _overlay_in(own)
        assert live_overlays(our_upper) == [our_merged]
        assert (os.stat(their_upper).st_mtime_ns, sorted(os.listdir(their_upper))) == untouched
    finally:
        subprocess.run(["umount", "-R", "-l", elsewhere], check=False)
        os.rmdir(elsewhere)


@pytest.mark.parametrize("seed", range(24))
def test_aliases_and_acls_never_reach_outside_nor_under_a_live_mount(scratch, canary, layout, seed):
    """Two classes: the home named through a bind-mount alias (of itself or of its parent) while a
    layer is mounted through its own path, and ACL entries giving another user write access."""
    rng = random.Random(seed)
    home = make_home_with_app(scratch, keep_mounted=True)
    upper = os.path.join(home, "app", "upper" if layout == "overlay" else "diff")
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
    # the seed's layout only, without the layout fixture: the spots and the planting run are the seed's
    # (root/, upper/, lower-id); overlay2 under such maps: test_remapped_root
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
