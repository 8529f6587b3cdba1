"""containers-storage, a peer layer store nobody here wrote, as the reference.

A diff made by `containers-storage diff` (overlay whiteouts turned into .wh.
entries by its own exporter) is applied by our driver; the result must equal
containers-storage's own mount of that layer. And the other way round: our
exported diff, applied by `containers-storage applydiff`, must give our tree.
Both run for each layout (tests/conftest.py's layout fixture). containers-storage's overlay driver is overlay2-shaped
(l/, diff/, link, lower): in the overlay2 layout the same layer tarballs must
also give the same diff/ of every layer, whiteout devices and opaque xattrs
included.
"""

import io
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, snapshot

pytestmark = [pytest.mark.peer, pytest.mark.skipif(shutil.which("containers-storage") is None,
                                                   reason="containers-storage is installed by make deps")]

CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12


class Peer:
    def __init__(self, base):
        self.graph = os.path.join(base, "cs-graph")
        self.run = os.path.join(base, "cs-run")

    def __call__(self, *args, stdout=subprocess.PIPE, stdin=None):
        cmd = ["containers-storage", "-g", self.graph, "-R", self.run, "-s", "overlay"] + list(args)
        return subprocess.run(cmd, check=True, stdout=stdout, stdin=stdin, stderr=subprocess.PIPE).stdout

    def shutdown(self):
        subprocess.run(["containers-storage", "-g", self.graph, "-R", self.run, "-s", "overlay", "shutdown"],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def peer(scratch):
    p = Peer(scratch)
    try:
        yield p
    finally:
        p.shutdown()  # the scratch fixture unmounts whatever is left below it


def base_layer():
    # Every directory has its own entry, as in real layers: implicit parents would
    # carry the time of extraction, which differs between the two stores.
    return (TarBuilder()
            .dir("usr").dir("usr/share").dir("usr/share/doc").dir("var").dir("var/lib").dir("dev").dir("run")
            .dir("opt")
            .dir("etc", mode=0o755).file("etc/passwd", "root:x:0:0\n", mtime=1600000000)
            .file("etc/shadow", "root:*:1::::::\n", mode=0o640, gid=42)
            .dir("usr/bin").file("usr/bin/ping", b"\x7fELF" * 1000, mode=0o4755, xattrs={"security.capability": CAP})
            .hardlink("usr/bin/ping6", "usr/bin/ping", mode=0o4755)
            .symlink("bin", "usr/bin")
            .dir("usr/share/doc/pkg").file("usr/share/doc/pkg/README", "docs" * 100)
            .dir("var/lib/x").file("var/lib/x/state", "s")
            .device("dev/null", major=1, minor=3).fifo("run/initctl", mode=0o600)
            .dir("opt/app").file("opt/app/old", "old")
            .bytes())


def peer_base_and_child(peer, scratch):
    """base_layer() written to scratch/base.tar and imported into the peer, and an empty child created on it
    there: the tarball's path (for our driver to apply the same bytes) and the peer's id of the child."""
    base_tar = os.path.join(scratch, "base.tar")
    with open(base_tar, "wb") as f:
        f.write(base_layer())
    base_id = peer("import-layer", "-f", base_tar).decode().split()[-1]
    child_id = peer("create-layer", base_id).decode().split()[-1]
    return base_tar, child_id


def view_of(path):
    return snapshot(path, times=True)


def test_peer_diff_applied_by_us_equals_peer_mount(peer, home, scratch, layout):
    base_tar, child_id = peer_base_and_child(peer, scratch)
    merged = peer("mount", child_id).decode().strip()
    # a package install and a documentation purge, as in an image build
    os.makedirs(os.path.join(merged, "usr/lib/newpkg"))
    with open(os.path.join(merged, "usr/lib/newpkg/lib.so"), "wb") as f:
        f.write(os.urandom(4096))
    with open(os.path.join(merged, "etc/passwd"), "a") as f:
        f.write("app:x:1000:1000\n")
    os.chmod(os.path.join(merged, "etc/shadow"), 0o600)
    os.chown(os.path.join(merged, "usr/share/doc/pkg/README"), 7, 7)
    shutil.rmtree(os.path.join(merged, "var/lib"))
    os.unlink(os.path.join(merged, "usr/bin/ping6"))
    shutil.rmtree(os.path.join(merged, "opt/app"))
    os.mkdir(os.path.join(merged, "opt/app"))  # becomes an opaque directory
    with open(os.path.join(merged, "opt/app/new"), "w") as f:
        f.write("new")
    os.symlink("/nonexistent", os.path.join(merged, "dangling"))
    os.mknod(os.path.join(merged, "dev/zero"), 0o666 | 0o020000, os.makedev(1, 5))
    peer("unmount", child_id)

    diff_tar = os.path.join(scratch, "child.tar")
    with open(diff_tar, "wb") as f:
        peer("diff", "-u", child_id, stdout=f)
    with open(diff_tar, "rb") as f:
        names = [n for n in f.read().split(b"\x00") if b".wh." in n]
    assert any(b".wh..wh..opq" in n for n in names), "the peer exported an opaque directory"

    driver = open_driver(home, layout)
    driver.create("base", "")
    with open(base_tar, "rb") as f:
        driver.apply_diff("base", "", f)
    driver.create("child", "base")
    with open(diff_tar, "rb") as f:
        result = driver.apply_diff("child", "base", f)
    assert result.fallback is False

    reference = view_of(peer("mount", child_id).decode().strip())
    ours = view_of(driver.get("child"))
    peer("unmount", child_id)
    assert sorted(ours) == sorted(reference)
    assert ours == reference
    # The applied size counts file data (the seed's tar header sizes); the
    # peer's diffsize is ChangesSize, which also counts the symlink's target.
    assert int(peer("diffsize", child_id).decode().strip()) == result.size + len("/nonexistent")


def test_our_diff_applied_by_the_peer_equals_our_layer(peer, home, scratch, layout):
    driver = open_driver(home, layout)
    driver.create("base", "")
    driver.apply_diff("base", "", io.BytesIO(base_layer()))
    driver.create("child", "base")
    merged = driver.get("child")
    with open(os.path.join(merged, "etc/motd"), "w") as f:
        f.write("hello")
    os.unlink(os.path.join(merged, "etc/shadow"))
    shutil.rmtree(os.path.join(merged, "usr/share/doc"))
    os.chmod(os.path.join(merged, "etc"), 0o700)
    driver.put("child")
    ours_tar = os.path.join(scratch, "ours.tar")
    with open(ours_tar, "wb") as f:
        driver.diff("child", "base", f)

    _base_tar, child_id = peer_base_and_child(peer, scratch)
    peer("applydiff", "-f", ours_tar, child_id)
    reference = view_of(peer("mount", child_id).decode().strip())
    try:
        assert view_of(driver.get("child")) == reference
    finally:
        driver.put("child")
        peer("unmount", child_id)


def whiteout_times_as(ours, reference):
    """A whiteout device is made by the applier, not taken from the tar: its time is whenever each
    side ran (a second apart on a slow machine), so the reference's whiteouts take ours' times."""
    for rel, item in reference.items():
        if stat.S_ISCHR(item["mode"]) and item.get("rdev") == (0, 0) and rel in ours:
            item["mtime"] = ours[rel].get("mtime")
    return reference


def test_a_diff_applied_in_the_overlay_format_equals_the_peers_diff_dir(peer, scratch):
    """containers-storage's overlay driver (overlay2's shape) keeps a layer's own changes in diff/, its
    whiteouts as 0/0 devices and opaque xattrs: the applier's overlay format must write the same tree."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import whiteouts
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_apply import LayerApplier

    child = (TarBuilder()
             .dir("etc", mode=0o755).whiteout("etc/shadow").file("etc/hostname", "child\n", mtime=1650000000)
             .dir("opt", mode=0o755).dir("opt/app", mode=0o755).opaque("opt/app").file("opt/app/new", "new")
             .dir("usr", mode=0o755).dir("usr/share", mode=0o755).whiteout("usr/share/doc")
             .bytes())
    paths = {}
    for name, data in (("base.tar", base_layer()), ("child.tar", child)):
        paths[name] = os.path.join(scratch, name)
        with open(paths[name], "wb") as f:
            f.write(data)
    base_id = peer("import-layer", "-f", paths["base.tar"]).decode().split()[-1]
    child_id = peer("import-layer", "-f", paths["child.tar"], base_id).decode().split()[-1]
    theirs = os.path.join(peer.graph, "overlay", child_id, "diff")
    ours = os.path.join(scratch, "ours-diff")
    os.mkdir(ours)
    with open(paths["child.tar"], "rb") as f:
        LayerApplier(ours, whiteout_format=whiteouts.OVERLAY).apply(f)
    keys = ("security.capability", "user.test", whiteouts.OPAQUE_XATTR)
    ours_view = snapshot(ours, times=True, xattrs=keys)
    assert ours_view == whiteout_times_as(ours_view, snapshot(theirs, times=True, xattrs=keys))
    assert stat.S_ISCHR(os.lstat(os.path.join(theirs, "usr", "share", "doc")).st_mode)  # the peer wrote a device too
    assert os.getxattr(os.path.join(ours, "opt", "app"), whiteouts.OPAQUE_XATTR) == b"y"


@pytest.mark.layout("overlay2")  # diff/ as containers-storage's overlay driver keeps it
def test_same_tarballs_same_diff_dirs_as_the_peer(peer, home, scratch):
    """overlay2: the layer tarballs applied by the store give each layer the diff/ containers-storage's
    overlay driver gives it: the same entries, modes, owners, times, contents, whiteouts as 0/0 devices and
    opaque directories by trusted.overlay.opaque, and the same merged tree."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import whiteouts

    child = (TarBuilder()
             .dir("etc", mode=0o755).whiteout("etc/shadow").file("etc/hostname", "child\n", mtime=1650000000)
             .dir("opt", mode=0o755).dir("opt/app", mode=0o755).opaque("opt/app").file("opt/app/new", "new")
             .dir("usr", mode=0o755).dir("usr/share", mode=0o755).whiteout("usr/share/doc")
             .bytes())
    grandchild = (TarBuilder()
                  .dir("opt", mode=0o755).whiteout("opt/app").dir("var", mode=0o755).dir("var/lib", mode=0o755)
                  .opaque("var/lib").file("var/lib/fresh", "fresh", mode=0o600, uid=7, gid=7)
                  .bytes())
    tars = [("base", base_layer()), ("child", child), ("grandchild", grandchild)]
    theirs, parent = {}, ""
    for name, data in tars:
        path = os.path.join(scratch, name + ".tar")
        with open(path, "wb") as f:
            f.write(data)
        theirs[name] = peer("import-layer", "-f", path, *([parent] if parent else [])).decode().split()[-1]
        parent = theirs[name]
    store = LayerStore(home, layout="overlay2")
    try:
        with store.locked():
            parent = ""
            for name, data in tars:
                store.apply_diff(name, parent, lambda data=data: io.BytesIO(data))
                parent = name
    finally:
        store.close()
    keys = ("security.capability", "user.test", whiteouts.OPAQUE_XATTR)
    for name, _data in tars:
        ours = snapshot(os.path.join(home, name, "diff"), times=True, xattrs=keys)
        reference = snapshot(os.path.join(peer.graph, "overlay", theirs[name], "diff"), times=True, xattrs=keys)
        assert ours == whiteout_times_as(ours, reference), "%s: diff/ differs from the peer's" % name
    assert stat.S_ISCHR(os.lstat(os.path.join(home, "grandchild", "diff", "opt", "app")).st_mode)
    assert os.getxattr(os.path.join(home, "grandchild", "diff", "var", "lib"), whiteouts.OPAQUE_XATTR) == b"y"

    driver = open_driver(home)
    try:
        reference = view_of(peer("mount", theirs["grandchild"]).decode().strip())
        assert view_of(driver.get("grandchild")) == reference
    finally:
        driver.put("grandchild")
        peer("unmount", theirs["grandchild"])


@pytest.mark.layout("overlay2")  # the seed's layout exports the naive diff's per-name whiteouts, as Docker's overlay did
def test_an_opaque_directory_exports_as_the_peers(peer, home, scratch, layout):
    """A directory removed and made again in a mounted layer: containers-storage's diff (the overlay
    whiteout converter of Docker's archive package) writes it as the directory, its `.wh..wh..opq`
    (an empty file with the directory's permissions and owner, time 0) and the layer's entries in
    it. The same diff applied by our driver exports as the same entries."""
    import tarfile

    base_tar, child_id = peer_base_and_child(peer, scratch)
    merged = peer("mount", child_id).decode().strip()
    shutil.rmtree(os.path.join(merged, "usr/share"))
    os.mkdir(os.path.join(merged, "usr/share"))
    os.chmod(os.path.join(merged, "usr/share"), 0o1750)
    os.chown(os.path.join(merged, "usr/share"), 5, 6)
    os.makedirs(os.path.join(merged, "usr/share/doc"))  # under the opaque directory: hides the parent's doc/pkg
    with open(os.path.join(merged, "usr/share/doc/new"), "w") as f:
        f.write("new")
    os.unlink(os.path.join(merged, "etc/shadow"))
    peer("unmount", child_id)
    theirs_tar = os.path.join(scratch, "theirs.tar")
    with open(theirs_tar, "wb") as f:
        peer("diff", "-u", child_id, stdout=f)

    driver = open_driver(home, layout)
    try:
        driver.create("base", "")
        with open(base_tar, "rb") as f:
            driver.apply_diff("base", "", f)
        driver.create("child", "base")
        with open(theirs_tar, "rb") as f:
            driver.apply_diff("child", "base", f)
        ours = io.BytesIO()
        driver.diff("child", "base", ours)
    finally:
        driver.close()

    def entries(data, whiteout_fields):
        out = []
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for m in tf:
                name = m.name.rstrip("/")
                if os.path.basename(name).startswith(".wh.") and not whiteout_fields:
                    out.append((name,))
                else:
                    out.append((name, m.type, stat.S_IMODE(m.mode), m.uid, m.gid, m.size, m.mtime))
        return out

    with open(theirs_tar, "rb") as f:
        theirs = f.read()
    opq = ("usr/share/.wh..wh..opq", tarfile.REGTYPE, 0o750, 5, 6, 0, 0)
    assert opq in entries(theirs, True) and opq in entries(ours.getvalue(), True)
    # the per-name whiteout of etc/shadow: the same name (the peer keeps the 0/0 device's mode and time)
    assert entries(ours.getvalue(), False) == entries(theirs, False)
    assert not [n for n in tarfile.open(fileobj=io.BytesIO(ours.getvalue())).getnames() if n.startswith("usr/share/doc/.wh.")]
