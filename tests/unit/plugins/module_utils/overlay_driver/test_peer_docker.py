"""Docker 20.10, whose overlay and overlay2 drivers wrote the layouts this collection writes, as a peer, both ways.

Every test runs once per layout, against a private dockerd (tests/dockerd.py)
with that storage driver: `overlay` (the seed's layout) and `overlay2` (what
Docker 20.10's overlay2 driver writes: docs/docker.md). The daemon loads a two-layer image built here as a
`docker save` archive: every kind of entry a layer can hold in the base (dirs,
files with modes and owners, setuid, xattrs, symlinks with xattrs, hardlinks, a
fifo, a char device), and a child that modifies, deletes (whiteout) and
replaces a directory's content (opaque dir).

- Docker writes, strata reads: the store lists Docker's layers with kinds and
  the parents it can know, mounts Docker's container layer (whose merged/
  Docker removed), shows the tree `docker export` shows, and leaves the home
  as Docker left it: Docker starts again and uses it.
- strata writes, Docker reads: the image's layers rebuilt by strata under
  Docker's cache-ids; Docker creates, exports and runs a container on them.
- Same tarball, same tree: Docker's root/ (overlay) or diff/ (overlay2) and
  strata's, entry by entry; in overlay2 every layer dir has the shape Docker
  gives it (l/, link, lower, committed, work/, modes).
"""

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.managers import InfoManager, MountManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import available_layouts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.mounts import mounts_below
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from dockerd import STORAGE_DRIVERS, Dockerd, dockerd, save_archive  # noqa: F401  pylint: disable=unused-import
from layertools import TarBuilder


def _layout_param(layout):
    missing = layout not in available_layouts()
    return pytest.param(layout, id=layout, marks=pytest.mark.skipif(
        missing, reason="no driver for the %s layout is registered in drivers.py" % layout))


# every test here runs against a dockerd of each storage driver, the layout strata reads and writes the same
pytestmark = [pytest.mark.peer,
              pytest.mark.parametrize("dockerd", [_layout_param(name) for name in STORAGE_DRIVERS], indirect=True)]

# Where a layer keeps its files: the seed's image layers a whole root/ (containers' upper/), overlay2 its own diff/
OWN_DIR = {"overlay": "root", "overlay2": "diff"}
UPPER_DIR = {"overlay": "upper", "overlay2": "diff"}

IMAGE = "strata-peer:test"
CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12  # cap_net_raw, as ping has it
T0 = 1600000000
CAP_PAX = {"SCHILY.xattr.security.capability": CAP.decode("utf-8", "surrogateescape"), "hdrcharset": "BINARY"}
# Found by these tests: Docker 20.10 loses the capability of a file whose hardlink comes later in the
# tarball without xattrs in its header (its Lchown of the link clears it); strata keeps it.
CAP_LOST_BY_DOCKER = ("usr/bin/arping", "usr/bin/arping-link")


def cap_lost_by_docker():
    return ["%s: xattrs {} != {'security.capability': %r}" % (rel, CAP) for rel in CAP_LOST_BY_DOCKER]


LINKS = {frozenset({"usr/bin/ping", "usr/bin/ping6"}), frozenset({"usr/bin/arping", "usr/bin/arping-link"})}

HELLO_C = rb"""
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char buf[4096];
    ssize_t n;
    int i, fd;
    if (argc < 2) { return write(1, "hello\n", 6) == 6 ? 0 : 1; }
    for (i = 1; i < argc; i++) {
        if ((fd = open(argv[i], O_RDONLY)) < 0) return 2;
        while ((n = read(fd, buf, sizeof buf)) > 0) if (write(1, buf, n) != n) return 3;
        close(fd);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    """A static binary for the container's command (the image has no libc, no shell)."""
    if os.path.exists("/bin/busybox"):
        with open("/bin/busybox", "rb") as f:
            return f.read(), ["cat"]
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("neither /bin/busybox nor gcc to build a static binary for the container")
    work = tmp_path_factory.mktemp("hello")
    (work / "hello.c").write_bytes(HELLO_C)
    built = subprocess.run([gcc, "-static", "-Os", "-o", str(work / "hello"), str(work / "hello.c")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if built.returncode != 0:
        pytest.skip("gcc -static cannot build the container's binary (libc6-dev static libs?): %s"
                    % built.stdout.decode(errors="replace")[-300:])
    return (work / "hello").read_bytes(), []


def layer_tars(binary):
    base = (TarBuilder()
            .dir("bin", mtime=T0).dir("dev", mtime=T0).dir("run", mtime=T0).dir("tmp", mode=0o1777, mtime=T0)
            .dir("etc", mtime=T0).dir("usr", mtime=T0).dir("usr/bin", mtime=T0 + 1)
            .dir("srv", mtime=T0).dir("srv/www", mtime=T0 + 2)
            .dir("opt", mtime=T0).dir("opt/app", mode=0o750, uid=1000, gid=1000, mtime=T0 + 3,
                                      pax_headers={"SCHILY.xattr.user.dir": "on a directory"})
            .file("bin/hello", binary, mode=0o755, mtime=T0)
            .file("etc/motd", "Welcome to the base layer.\n", mtime=T0 + 10)
            .file("etc/passwd", "root:x:0:0::/root:/bin/hello\n", mtime=T0 + 11)
            .file("etc/shadow", "root:*:1::::::\n", mode=0o640, gid=42, mtime=T0 + 12)
            .file("etc/legacy.conf", "obsolete=true\n", mtime=T0 + 13)
            .file("usr/bin/ping", b"\x7fELF" * 300, mode=0o4755, xattrs={"security.capability": CAP}, mtime=T0 + 14)
            # as tar writers (Docker's, GNU tar --xattrs) write it: the link's header has its file's xattrs
            .hardlink("usr/bin/ping6", "usr/bin/ping", mode=0o4755, mtime=T0 + 14, pax_headers=CAP_PAX)
            # a link header without them: Docker's applier chowns the link, which clears the file's capability
            .file("usr/bin/arping", b"\x7fELF" * 200, mode=0o755, xattrs={"security.capability": CAP}, mtime=T0 + 14)
            .hardlink("usr/bin/arping-link", "usr/bin/arping", mode=0o755, mtime=T0 + 14)
            .symlink("usr/bin/pong", "ping", mtime=T0 + 15,
                     pax_headers={"SCHILY.xattr.trusted.strata": "on a symlink"})
            .symlink("sbin", "bin", mtime=T0 + 16)
            .file("opt/app/data", "secret\n", mode=0o600, uid=1000, gid=1000, mtime=T0 + 17,
                  xattrs={"user.test": b"kept"})
            .file("opt/app/tool", "#!/bin/hello\n", mode=0o2755, uid=0, gid=50, mtime=T0 + 18)
            .file("srv/www/index.html", "<h1>base</h1>\n", mtime=T0 + 19)
            .file("srv/www/old.html", "<h1>old</h1>\n", mtime=T0 + 20)
            .device("dev/null", major=1, minor=3, mode=0o666, mtime=T0 + 21)
            .fifo("run/initctl", mode=0o600, mtime=T0 + 22)
            .bytes())
    child = (TarBuilder()
             .dir("etc", mtime=T0 + 100).dir("srv", mtime=T0).dir("srv/www", mtime=T0 + 101)
             .dir("usr", mtime=T0).dir("usr/bin", mtime=T0 + 102)
             .file("etc/motd", "Welcome to the child layer.\n", mtime=T0 + 103)
             .whiteout("etc/legacy.conf")
             .opaque("srv/www")
             .file("srv/www/index.html", "<h1>child</h1>\n", mtime=T0 + 104)
             .file("usr/bin/tool", "tool\n", mode=0o755, mtime=T0 + 105)
             .bytes())
    return base, child


# -- trees: one representation for a directory, a mount and a tarball ------------------------------------

def _kind(mode):
    for test, name in ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "char"), (stat.S_ISBLK, "block"), (stat.S_ISFIFO, "fifo")):
        if test(mode):
            return name
    return "other"


def _xattrs(path, keep):
    out = {}
    for name in os.listxattr(path, follow_symlinks=False):
        if keep is None or name in keep:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
    return out


def dir_tree(root, xattrs=None):
    """{relative path: entry} of everything below root, plus {path: hardlink group} and inode numbers."""
    entries, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            item = {"type": _kind(st.st_mode), "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                    "gid": st.st_gid, "mtime": int(st.st_mtime), "xattrs": _xattrs(path, xattrs)}
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    item["sha256"] = hashlib.sha256(f.read()).hexdigest()
                item["size"] = st.st_size
            elif stat.S_ISLNK(st.st_mode):
                item["link"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                item["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            entries[rel] = item
            inodes[rel] = (st.st_dev, st.st_ino)
    return entries, inodes


def link_groups(entries, inodes):
    """Sets of paths that are one file (hardlinks), for regular files only."""
    groups = {}
    for rel, key in inodes.items():
        if entries[rel]["type"] == "file":
            groups.setdefault(key, set()).add(rel)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def tar_tree(data, xattrs=None):
    """The same representation read from a tarball (as `docker export` writes it)."""
    entries, groups = {}, {}
    kinds = {tarfile.DIRTYPE: "dir", tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.SYMTYPE: "symlink",
             tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for info in tf:
            rel = os.path.normpath(info.name)
            if rel == ".":
                continue
            if info.type == tarfile.LNKTYPE:
                target = os.path.normpath(info.linkname)
                entries[rel] = dict(entries[target])
                groups.setdefault(target, {target}).add(rel)
                continue
            item = {"type": kinds.get(info.type, "other"), "mode": info.mode & 0o7777, "uid": info.uid,
                    "gid": info.gid, "mtime": int(info.mtime),
                    "xattrs": {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
                               for k, v in info.pax_headers.items() if k.startswith("SCHILY.xattr.")
                               and (xattrs is None or k[len("SCHILY.xattr."):] in xattrs)}}
            if info.isreg():
                item["sha256"] = hashlib.sha256(tf.extractfile(info).read()).hexdigest()
                item["size"] = info.size
            elif info.issym():
                item["link"] = info.linkname
            elif info.ischr() or info.isblk():
                item["rdev"] = (info.devmajor, info.devminor)
            entries[rel] = item
    return entries, {frozenset(g) for g in groups.values()}


def differences(left, right, ignore=()):
    """Human-readable differences between two {path: entry} trees; paths in ignore skip the listed fields."""
    out = []
    for rel in sorted(set(left) | set(right)):
        if rel not in right:
            out.append("%s: only on the left %s" % (rel, left[rel]))
        elif rel not in left:
            out.append("%s: only on the right %s" % (rel, right[rel]))
        else:
            skip = ignore.get(rel, ()) if isinstance(ignore, dict) else ()
            for key in sorted(set(left[rel]) | set(right[rel])):
                if key not in skip and left[rel].get(key) != right[rel].get(key):
                    out.append("%s: %s %r != %r" % (rel, key, left[rel].get(key), right[rel].get(key)))
    return out


def applier_times(tree):
    """Fields two applies of the same tarball may differ in: the layer directory's own time, and the time of
    every whiteout device, which the applier makes (in the overlay2 layout) rather than takes from the tar,
    so it is the second each apply ran in."""
    ignore = {".": ("mtime",)}
    for rel, item in tree.items():
        if item["type"] == "char" and item.get("rdev") == (0, 0):
            ignore[rel] = ("mtime",)
    return ignore


def init_made(daemon, init_id):
    """Paths Docker's -init layer writes (its upper/ or diff/), computed, with what differs between containers:
    mtime."""
    upper = os.path.join(daemon.overlay_home, init_id, UPPER_DIR[daemon.storage_driver])
    made = {".": ("mtime",)}
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            made[os.path.relpath(os.path.join(dirpath, name), upper)] = ("mtime",)
    return made


CAPABILITY = ("security.capability",)  # the only xattr `docker export` writes


# -- the scenarios ------------------------------------------------------------------------------------------

def load_image(daemon, hello):
    binary, argv = hello
    base, child = layer_tars(binary)
    archive, diff_ids = save_archive([base, child], IMAGE, {"Cmd": ["/bin/hello"] + argv + ["/etc/motd"]})
    daemon.load(archive)
    by_diff = {}
    for chain_id, layer in daemon.layerdb().items():
        by_diff[layer["diff_id"]] = dict(layer, chain_id=chain_id)
    return base, child, [by_diff[d] for d in diff_ids], argv


def home_snapshot(home):
    """Docker's home as Docker sees it, all but what any mount changes, Docker's own Get and Put included:
    our bookkeeping (.strata/), the layer dirs' own mtimes (merged/ made and removed in them) and the
    mtimes in work/ (the kernel's: it empties work/work on every overlay mount)."""
    entries, _inodes = dir_tree(home)
    out = {}
    for rel, item in entries.items():
        parts = rel.split("/")
        if parts[0] == ".strata":
            continue
        if len(parts) == 1 or parts[1] == "work":
            item = dict(item, mtime=None)
        out[rel] = item
    return out


def test_docker_writes_strata_reads(dockerd, hello):  # pylint: disable=redefined-outer-name
    layout = dockerd.storage_driver
    _base, _child, (base, child), _argv = load_image(dockerd, hello)
    container = dockerd.docker("create", "--network", "none", IMAGE).decode().strip()
    exported = dockerd.export(container)
    mount_id, init_id = dockerd.container_layers(container)
    home = dockerd.overlay_home
    assert not os.path.lexists(os.path.join(home, mount_id, "merged"))  # Docker 20.10 removed it in Put
    made = init_made(dockerd, init_id)
    dockerd.stop()
    before = home_snapshot(home)

    params = {"home": home, "uid_maps": [], "gid_maps": []}
    # the layer whose changes are what the -init layer wrote: in overlay the container's (its upper/ starts
    # as a copy of the -init layer's), in overlay2 the -init layer's own diff/
    changed = {"overlay": mount_id, "overlay2": init_id}[layout]
    info = InfoManager(dict(params, id=changed, changes=True)).run()
    layers = {layer["id"]: layer for layer in info["layers"]}
    # strata's layer ids are Docker's cache-ids
    assert set(layers) == {base["cache_id"], child["cache_id"], init_id, mount_id}
    if layout == "overlay":
        assert layers[base["cache_id"]]["kind"] == "root" and layers[base["cache_id"]]["parent"] is None
        # the child's parent is only in Docker's layerdb (its root/ is a full copy): unknown
        assert layers[child["cache_id"]]["kind"] == "root" and layers[child["cache_id"]]["parent"] is None
        # the container's layers name the image's top in lower-id; Docker's -init parent is only in its layerdb
        assert layers[init_id]["kind"] == "overlay" and layers[init_id]["parent"] == child["cache_id"]
        assert layers[mount_id]["kind"] == "overlay" and layers[mount_id]["parent"] == child["cache_id"]
    else:
        # overlay2's lower file names every layer below, nearest first: every parent is known
        assert [layers[i]["parent"] for i in (base["cache_id"], child["cache_id"], init_id, mount_id)] == [
            None, base["cache_id"], child["cache_id"], init_id]
    assert not any(layer["mounted"] or layer["holders"] for layer in layers.values())
    # changes against the parent: what the -init layer wrote, read without Docker
    assert {c["path"].lstrip("/") for c in info["changes"]} == set(made) - {"."}

    result = MountManager(dict(params, id=mount_id, state="mounted", holder="peer-test",
                               mount_label="", force=False)).run()
    try:
        merged = os.path.join(home, mount_id, "merged")
        assert result["changed"] and result["mounted"] and result["path"] == merged
        upper = os.path.join(home, mount_id, UPPER_DIR[layout])
        assert stat.S_IMODE(os.lstat(merged).st_mode) == stat.S_IMODE(os.lstat(upper).st_mode)
        mounted, inodes = dir_tree(merged, CAPABILITY)
        from_docker, docker_links = tar_tree(exported, CAPABILITY)
        assert differences(mounted, from_docker) == []
        assert link_groups(mounted, inodes) == docker_links == LINKS
        again = InfoManager(dict(params, id=mount_id, changes=False)).run()["layer"]
        assert again["mounted"] and again["holders"] == ["peer-test"]
    finally:
        result = MountManager(dict(params, id=mount_id, state="unmounted", holder="peer-test",
                                   mount_label="", force=False)).run()
    assert result["changed"] and not result["mounted"]

    # an image layer of Docker's: read-only at merged/, which it never had
    image = dict(params, id=child["cache_id"], holder="peer-test", mount_label="", force=False)
    result = MountManager(dict(image, state="mounted")).run()
    try:
        seen = os.path.join(home, child["cache_id"], "merged")
        assert result["mounted"] and result["path"] == seen
        # image layers stay immutable: Docker's top image layer has children (the container's layers)
        assert result["options"].get("ro") and result.get("readonly", True), \
            "a layer with children must mount read-only: %s" % result
        with open(os.path.join(seen, "etc", "motd")) as f:
            assert f.read() == "Welcome to the child layer.\n"
        assert not os.path.lexists(os.path.join(seen, "etc", "legacy.conf"))  # the child's whiteout
        assert sorted(os.listdir(os.path.join(seen, "srv", "www"))) == ["index.html"]  # its opaque dir
        assert not os.access(os.path.join(seen, "etc", "motd"), os.W_OK)
    finally:
        result = MountManager(dict(image, state="unmounted")).run()
    assert not result["mounted"]
    assert differences(before, home_snapshot(home)) == []  # merged/ gone again, nothing else touched

    dockerd.start()
    assert dockerd.export(container) == exported  # byte for byte: the same tree, the same order
    ran = dockerd.docker("run", "--rm", "--network", "none", IMAGE).decode()
    assert ran == "Welcome to the child layer.\n"
    assert not os.path.lexists(os.path.join(home, mount_id, "merged"))


def graft(daemon, data_root, store, pairs):
    """Docker's image layers in a copy of its data-root replaced by strata's: pairs of (Docker's layerdb entry,
    strata's layer id). Each strata layer dir moves in (in overlay2 with its short link l/<LINK>), Docker's goes
    (with its link), and where strata's id is not Docker's cache-id, the layerdb's cache-id names strata's."""
    layout = daemon.storage_driver
    home = os.path.join(data_root, layout)
    for docker_layer, strata_id in pairs:
        cache_id = docker_layer["cache_id"]
        if layout == "overlay2":
            with open(os.path.join(home, cache_id, "link")) as f:
                os.unlink(os.path.join(home, "l", f.read().strip()))
        shutil.rmtree(os.path.join(home, cache_id))
        os.rename(os.path.join(store.home, strata_id), os.path.join(home, strata_id))
        if layout == "overlay2":
            with open(os.path.join(home, strata_id, "link")) as f:
                link = f.read().strip()
            os.rename(os.path.join(store.home, "l", link), os.path.join(home, "l", link))
        if strata_id != cache_id:
            entry = os.path.join(data_root, "image", layout, "layerdb", "sha256",
                                 docker_layer["chain_id"].split(":", 1)[1])
            with open(os.path.join(entry, "cache-id"), "w") as f:
                f.write(strata_id)


@pytest.mark.parametrize("source", ["apply_diff", "overlay_image"])
def test_strata_writes_docker_reads(dockerd, hello, scratch, source):  # pylint: disable=redefined-outer-name
    """strata's layers, from the layer tarballs by apply_diff under Docker's cache-ids or from `docker save`
    by overlay_image under their ChainIDs, in place of Docker's: Docker creates, exports and runs containers."""
    layout = dockerd.storage_driver
    base_tar, child_tar, (base, child), argv = load_image(dockerd, hello)
    archive = os.path.join(scratch, "saved.tar")
    dockerd.docker("save", "-o", archive, IMAGE)
    own = dockerd.docker("create", "--network", "none", IMAGE).decode().strip()
    own_export = dockerd.export(own)
    _mount_id, own_init = dockerd.container_layers(own)
    ignore = init_made(dockerd, own_init)
    dockerd.docker("rm", own)  # its layers' lowers are Docker's own image layers, replaced below
    dockerd.stop()

    copy_root = os.path.join(scratch, "docker-copy")
    subprocess.run(["cp", "-a", dockerd.data_root, copy_root], check=True)
    store = LayerStore(os.path.join(scratch, "strata-home"), layout=layout)
    try:
        if source == "apply_diff":
            with store.locked():
                store.apply_diff(base["cache_id"], "", lambda: io.BytesIO(base_tar), base["diff_id"])
                store.apply_diff(child["cache_id"], base["cache_id"], lambda: io.BytesIO(child_tar),
                                 child["diff_id"])
            ids = [base["cache_id"], child["cache_id"]]
        else:
            ids = [layer.id for layer in stage_image(store, "docker-archive:%s:%s" % (archive, IMAGE)).layers]
            assert ids == [base["chain_id"].split(":")[-1], child["chain_id"].split(":")[-1]]
    finally:
        store.close()
    graft(dockerd, copy_root, store, zip((base, child), ids))

    other = Dockerd(os.path.join(scratch, "docker-on-strata"), data_root=copy_root, storage_driver=layout)
    try:
        other.start()
        theirs = other.docker("create", "--network", "none", IMAGE).decode().strip()
        their_export = other.export(theirs)
        _mount_id, their_init = other.container_layers(theirs)
        ignore.update(init_made(other, their_init))
        on_docker, docker_links = tar_tree(own_export)
        on_strata, strata_links = tar_tree(their_export)
        assert differences(on_docker, on_strata, ignore) == cap_lost_by_docker()
        assert docker_links == strata_links == LINKS
        assert on_strata["usr/bin/ping"]["xattrs"] == on_docker["usr/bin/ping"]["xattrs"] == {
            "security.capability": CAP}
        assert "etc/legacy.conf" not in on_strata and "srv/www/old.html" not in on_strata
        assert other.docker("start", "-a", theirs).decode() == "Welcome to the child layer.\n"
        ran = other.docker("run", "--rm", "--network", "none", IMAGE, "/bin/hello", *argv, "/srv/www/index.html",
                           "/opt/app/data").decode()
        assert ran == "<h1>child</h1>\nsecret\n"
    finally:
        other.stop()


def apply_both(store, base_tar, child_tar, base, child):
    with store.locked():
        store.apply_diff("base", "", lambda: io.BytesIO(base_tar), base["diff_id"])
        store.apply_diff("child", "base", lambda: io.BytesIO(child_tar), child["diff_id"])
    store.close()


def test_same_tarball_same_tree(dockerd, hello, scratch):  # pylint: disable=redefined-outer-name
    """Entry by entry: type, mode, owner, size, content, link target, rdev, mtime, every xattr, hardlinks;
    in overlay which of the child's files are the parent's own inodes, in overlay2 the child's diff/ alone
    with its whiteout device and opaque directory."""
    layout = dockerd.storage_driver
    base_tar, child_tar, (base, child), _argv = load_image(dockerd, hello)
    dockerd.stop()
    store = LayerStore(os.path.join(scratch, "strata-home"), layout=layout)
    apply_both(store, base_tar, child_tar, base, child)
    trees = {}
    for who, home, ids in (("docker", dockerd.overlay_home, (base["cache_id"], child["cache_id"])),
                           ("strata", store.home, ("base", "child"))):
        for name, layer_id in zip(("base", "child"), ids):
            trees[who, name] = dir_tree(os.path.join(home, layer_id, OWN_DIR[layout]))
    # the layer's own root/ or diff/ is not in the tarball: its mtime is the time of the apply.
    # Symlinks' xattrs: test_symlink_xattrs_same_as_docker.
    ignore = {".": ("mtime",)}
    ignore.update({rel: ("xattrs",) for rel, item in trees["docker", "base"][0].items() if item["type"] == "symlink"})
    if layout == "overlay":
        assert len(trees["docker", "base"][0]) == 28 and len(trees["docker", "child"][0]) == 27
        expected = {
            "base": cap_lost_by_docker(),
            # Docker's ApplyDiff copy keeps only security.capability and trusted.overlay.opaque of what it
            # copies rather than links (directories, symlinks, devices, fifos); strata's copy keeps them all
            "child": ["opt/app: xattrs {} != {'user.dir': b'on a directory'}"] + cap_lost_by_docker(),
        }
    else:
        assert len(trees["docker", "base"][0]) == 28
        # the child's own changes only: whiteouts as overlayfs's 0/0 devices, the opaque dir by its xattr
        assert sorted(trees["docker", "child"][0]) == [
            "etc", "etc/legacy.conf", "etc/motd", "srv", "srv/www", "srv/www/index.html", "usr", "usr/bin", "usr/bin/tool"]
        for who in ("docker", "strata"):
            entries = trees[who, "child"][0]
            assert entries["etc/legacy.conf"]["type"] == "char" and entries["etc/legacy.conf"]["rdev"] == (0, 0)
            assert entries["srv/www"]["xattrs"] == {"trusted.overlay.opaque": b"y"}
        expected = {"base": cap_lost_by_docker(), "child": []}
        ignore["etc/legacy.conf"] = ("mtime",)  # a whiteout device is made, not applied: its time is the apply's
    for name in ("base", "child"):
        docker_entries, docker_inodes = trees["docker", name]
        strata_entries, strata_inodes = trees["strata", name]
        assert differences(docker_entries, strata_entries, ignore) == expected[name], \
            "%s layer: Docker's %s/ and strata's differ" % (name, OWN_DIR[layout])
        assert link_groups(docker_entries, docker_inodes) == link_groups(strata_entries, strata_inodes) == (
            LINKS if name == "base" or layout == "overlay" else set())
    if layout == "overlay":
        shared = {}
        for who in ("docker", "strata"):
            parent_inodes, child_inodes = trees[who, "base"][1], trees[who, "child"][1]
            shared[who] = {rel for rel, key in child_inodes.items() if parent_inodes.get(rel) == key}
        assert shared["docker"] == shared["strata"]
        assert shared["docker"] == {rel for rel, item in trees["docker", "child"][0].items()
                                    if item["type"] == "file"} - {"etc/motd", "srv/www/index.html", "usr/bin/tool"}


def layer_shape(home, layer_id):
    """A layer directory as Docker's overlay2 writes it, all but the ids: its mode, and each entry beside diff/
    with type and mode; link and lower files by their form, work/ by its mode (the kernel fills it)."""
    path = os.path.join(home, layer_id)
    shape = {".": stat.filemode(os.lstat(path).st_mode)}
    for name in sorted(os.listdir(path)):
        st = os.lstat(os.path.join(path, name))
        shape[name] = stat.filemode(st.st_mode)
        if name in ("link", "lower", "committed"):
            with open(os.path.join(path, name)) as f:
                text = f.read()
            shape[name] += " " + ("".join("L" if c.isalnum() else c for c in text))
    return shape


def test_overlay2_layer_dirs_have_dockers_shape(dockerd, hello, scratch):  # pylint: disable=redefined-outer-name
    """The layout of docs/docker.md, as Docker 20.10's overlay2 writes it for a loaded image: l/ 0700
    with LINK -> ../<id>/diff, layer dirs 0710, link 0644 (26 chars), lower 0644 (l/<LINK>:...), committed 0600
    in a layer that has a child, work/ 0700 in a layer with a lower; and strata writes the same."""
    if dockerd.storage_driver == "overlay":
        pytest.skip("the seed's layout keeps the seed's modes (0700 layer dirs, 0644 lower-id)")
    base_tar, child_tar, (base, child), _argv = load_image(dockerd, hello)
    dockerd.stop()
    store = LayerStore(os.path.join(scratch, "strata-home"), layout="overlay2")
    apply_both(store, base_tar, child_tar, base, child)
    link = "-rw-r--r-- " + "L" * 26
    expected = {
        "base": {".": "drwx--x---", "committed": "-rw------- ", "diff": "drwxr-xr-x", "link": link},
        "child": {".": "drwx--x---", "diff": "drwxr-xr-x", "link": link, "lower": "-rw-r--r-- L/" + "L" * 26,
                  "work": "drwx------"},
    }
    for who, home, ids in (("docker", dockerd.overlay_home, (base["cache_id"], child["cache_id"])),
                           ("strata", store.home, ("base", "child"))):
        assert stat.filemode(os.lstat(os.path.join(home, "l")).st_mode) == "drwx------", who
        assert {name: layer_shape(home, layer_id) for name, layer_id in zip(("base", "child"), ids)} == expected, who
        for layer_id in ids:
            with open(os.path.join(home, layer_id, "link")) as f:
                assert os.readlink(os.path.join(home, "l", f.read())) == "../%s/diff" % layer_id, who
        with open(os.path.join(home, ids[1], "lower")) as f, open(os.path.join(home, ids[0], "link")) as g:
            assert f.read() == "l/" + g.read(), who
        assert sorted(os.listdir(os.path.join(home, "l"))) == sorted(
            open(os.path.join(home, layer_id, "link")).read() for layer_id in ids), who


def test_symlink_xattrs_same_as_docker(dockerd, hello, scratch):  # pylint: disable=redefined-outer-name
    """Docker applies xattrs on symlinks (and its overlay ApplyDiff copy drops them in the child); strata
    applies them too, and its copy keeps them. In overlay2 nothing is copied: the child has no such link."""
    layout = dockerd.storage_driver
    base_tar, child_tar, (base, child), _argv = load_image(dockerd, hello)
    dockerd.stop()
    store = LayerStore(os.path.join(scratch, "strata-home"), layout=layout)
    apply_both(store, base_tar, child_tar, base, child)
    link = "usr/bin/pong"

    def xattrs(home, layer_id):
        path = os.path.join(home, layer_id, OWN_DIR[layout], link)
        return _xattrs(path, None) if os.path.lexists(path) else None
    assert xattrs(dockerd.overlay_home, base["cache_id"]) == {"trusted.strata": b"on a symlink"}
    assert xattrs(store.home, "base") == {"trusted.strata": b"on a symlink"}
    if layout == "overlay":
        assert xattrs(dockerd.overlay_home, child["cache_id"]) == {}
        assert xattrs(store.home, "child") == xattrs(store.home, "base")
    else:
        assert xattrs(dockerd.overlay_home, child["cache_id"]) is None and xattrs(store.home, "child") is None


def test_docker_save_is_a_source_for_overlay_image(dockerd, hello, scratch):  # pylint: disable=redefined-outer-name
    """`docker save` of Docker 20.10 stages with docker-archive:, each layer under Docker's own ChainID, and
    each layer's tree is the one strata builds from the same tarballs (test_same_tarball_same_tree
    compares that one with Docker's)."""
    layout = dockerd.storage_driver
    base_tar, child_tar, (base, child), _argv = load_image(dockerd, hello)
    archive = os.path.join(scratch, "saved.tar")
    dockerd.docker("save", "-o", archive, IMAGE)
    dockerd.stop()
    store = LayerStore(os.path.join(scratch, "staged"), layout=layout)
    try:
        staged = stage_image(store, "docker-archive:%s:%s" % (archive, IMAGE))
        assert staged.changed is True
        assert [layer.id for layer in staged.layers] == [base["chain_id"].split(":")[-1],
                                                         child["chain_id"].split(":")[-1]]
        assert [layer.diff_id for layer in staged.layers] == [base["diff_id"], child["diff_id"]]
        assert staged.top == child["chain_id"].split(":")[-1]
        assert stage_image(store, "docker-archive:%s:%s" % (archive, IMAGE)).changed is False
    finally:
        store.close()
    own = LayerStore(os.path.join(scratch, "applied"), layout=layout)
    apply_both(own, base_tar, child_tar, base, child)
    for own_id, staged_layer in zip(("base", "child"), staged.layers):
        staged_tree, staged_inodes = dir_tree(os.path.join(store.home, staged_layer.id, OWN_DIR[layout]))
        own_tree, own_inodes = dir_tree(os.path.join(own.home, own_id, OWN_DIR[layout]))
        assert differences(own_tree, staged_tree, applier_times(own_tree)) == []
        assert link_groups(own_tree, own_inodes) == link_groups(staged_tree, staged_inodes)
    assert link_groups(own_tree, own_inodes) == (LINKS if layout == "overlay" else set())


def test_no_mounts_left(dockerd, scratch):  # pylint: disable=redefined-outer-name
    """The harness's teardown: the daemon's own mounts (its data-root, bound on itself) go."""
    points = [m.mount_point for m in mounts_below(scratch)]
    assert dockerd.data_root in points
    dockerd.stop()
    assert mounts_below(scratch) == []
