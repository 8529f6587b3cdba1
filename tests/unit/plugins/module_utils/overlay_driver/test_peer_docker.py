"""Docker 20.10, whose legacy overlay driver wrote the layout this collection writes, as a peer, both ways.

A private dockerd (tests/dockerd.py) loads a two-layer image built here as a
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
- Same tarball, same tree: Docker's root/ and strata's root/, entry by entry.
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
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.mounts import mounts_below
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from dockerd import Dockerd, dockerd, save_archive  # noqa: F401  pylint: disable=unused-import
from layertools import TarBuilder

pytestmark = [pytest.mark.peer]

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


def init_made(home, init_id):
    """Paths Docker's -init layer writes (its upper/), computed, with what differs between containers: mtime."""
    upper = os.path.join(home, init_id, "upper")
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
    _base, _child, (base, child), _argv = load_image(dockerd, hello)
    container = dockerd.docker("create", "--network", "none", IMAGE).decode().strip()
    exported = dockerd.export(container)
    mount_id, init_id = dockerd.container_layers(container)
    home = dockerd.overlay_home
    assert not os.path.lexists(os.path.join(home, mount_id, "merged"))  # Docker 20.10 removed it in Put
    dockerd.stop()
    before = home_snapshot(home)

    params = {"home": home, "uid_maps": [], "gid_maps": []}
    info = InfoManager(dict(params, id=mount_id, changes=True)).run()
    layers = {layer["id"]: layer for layer in info["layers"]}
    assert set(layers) == {base["cache_id"], child["cache_id"], init_id, mount_id}
    assert layers[base["cache_id"]]["kind"] == "root" and layers[base["cache_id"]]["parent"] is None
    # the child's parent is only in Docker's layerdb (its root/ is a full copy): unknown
    assert layers[child["cache_id"]]["kind"] == "root" and layers[child["cache_id"]]["parent"] is None
    # the container's layers name the image's top in lower-id; Docker's -init parent is only in its layerdb
    assert layers[init_id]["kind"] == "overlay" and layers[init_id]["parent"] == child["cache_id"]
    assert layers[mount_id]["kind"] == "overlay" and layers[mount_id]["parent"] == child["cache_id"]
    assert not any(layer["mounted"] or layer["holders"] for layer in layers.values())
    # changes against the image's top: what the -init layer wrote, read without Docker
    made = init_made(home, init_id)
    assert {c["path"].lstrip("/") for c in info["changes"]} == set(made) - {"."}

    result = MountManager(dict(params, id=mount_id, state="mounted", holder="peer-test",
                               mount_label="", force=False)).run()
    try:
        merged = os.path.join(home, mount_id, "merged")
        assert result["changed"] and result["mounted"] and result["path"] == merged
        upper = os.path.join(home, mount_id, "upper")
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
        assert result["mounted"] and result["path"] == seen and result["options"]["ro"]
        with open(os.path.join(seen, "etc", "motd")) as f:
            assert f.read() == "Welcome to the child layer.\n"
        assert not os.access(os.path.join(seen, "etc", "motd"), os.W_OK)
    finally:
        result = MountManager(dict(image, state="unmounted")).run()
    assert not result["mounted"]
    assert home_snapshot(home) == before  # merged/ gone again, nothing else touched

    dockerd.start()
    assert dockerd.export(container) == exported  # byte for byte: the same tree, the same order
    ran = dockerd.docker("run", "--rm", "--network", "none", IMAGE).decode()
    assert ran == "Welcome to the child layer.\n"
    assert not os.path.lexists(os.path.join(home, mount_id, "merged"))


def test_strata_writes_docker_reads(dockerd, hello, scratch):  # pylint: disable=redefined-outer-name
    base_tar, child_tar, (base, child), argv = load_image(dockerd, hello)
    own = dockerd.docker("create", "--network", "none", IMAGE).decode().strip()
    own_export = dockerd.export(own)
    _mount_id, own_init = dockerd.container_layers(own)
    dockerd.stop()

    # a copy of Docker's home whose image layers are strata's, built from the same tarballs
    copy_root = os.path.join(scratch, "docker-copy")
    subprocess.run(["cp", "-a", dockerd.data_root, copy_root], check=True)
    store = LayerStore(os.path.join(scratch, "strata-home"))
    with store.locked():
        store.apply_diff(base["cache_id"], "", lambda: io.BytesIO(base_tar), base["diff_id"])
        store.apply_diff(child["cache_id"], base["cache_id"], lambda: io.BytesIO(child_tar), child["diff_id"])
    for layer in (base, child):
        shutil.rmtree(os.path.join(copy_root, "overlay", layer["cache_id"]))
        os.rename(os.path.join(store.home, layer["cache_id"]), os.path.join(copy_root, "overlay", layer["cache_id"]))

    other = Dockerd(os.path.join(scratch, "docker-on-strata"), data_root=copy_root)
    try:
        other.start()
        theirs = other.docker("create", "--network", "none", IMAGE).decode().strip()
        their_export = other.export(theirs)
        _mount_id, their_init = other.container_layers(theirs)
        ignore = dict(init_made(other.overlay_home, their_init), **init_made(dockerd.overlay_home, own_init))
        on_docker, docker_links = tar_tree(own_export)
        on_strata, strata_links = tar_tree(their_export)
        assert differences(on_docker, on_strata, ignore) == cap_lost_by_docker()
        assert docker_links == strata_links == LINKS
        assert on_strata["usr/bin/ping"]["xattrs"] == on_docker["usr/bin/ping"]["xattrs"] == {
            "security.capability": CAP}
        assert other.docker("start", "-a", theirs).decode() == "Welcome to the child layer.\n"
        ran = other.docker("run", "--rm", "--network", "none", IMAGE, "/bin/hello", *argv, "/srv/www/index.html",
                           "/opt/app/data").decode()
        assert ran == "<h1>child</h1>\nsecret\n"
    finally:
        other.stop()


def test_same_tarball_same_tree(dockerd, hello, scratch):  # pylint: disable=redefined-outer-name
    """Entry by entry: type, mode, owner, size, content, link target, rdev, mtime, every xattr, hardlinks,
    and which of the child's files are the parent's own inodes."""
    base_tar, child_tar, (base, child), _argv = load_image(dockerd, hello)
    dockerd.stop()
    store = LayerStore(os.path.join(scratch, "strata-home"))
    with store.locked():
        store.apply_diff("base", "", lambda: io.BytesIO(base_tar), base["diff_id"])
        store.apply_diff("child", "base", lambda: io.BytesIO(child_tar), child["diff_id"])
    trees = {}
    for who, home, ids in (("docker", dockerd.overlay_home, (base["cache_id"], child["cache_id"])),
                           ("strata", store.home, ("base", "child"))):
        for name, layer_id in zip(("base", "child"), ids):
            trees[who, name] = dir_tree(os.path.join(home, layer_id, "root"))
    assert len(trees["docker", "base"][0]) == 28 and len(trees["docker", "child"][0]) == 27
    # the layer's own root/ is not in the tarball: its mtime is the time of the apply.
    # Symlinks' xattrs: test_symlink_xattrs_same_as_docker.
    ignore = {".": ("mtime",)}
    ignore.update({rel: ("xattrs",) for rel, item in trees["docker", "base"][0].items() if item["type"] == "symlink"})
    expected = {
        "base": cap_lost_by_docker(),
        # Docker's ApplyDiff copy keeps only security.capability and trusted.overlay.opaque of what it
        # copies rather than links (directories, symlinks, devices, fifos); strata's copy keeps them all
        "child": ["opt/app: xattrs {} != {'user.dir': b'on a directory'}"] + cap_lost_by_docker(),
    }
    for name in ("base", "child"):
        docker_entries, docker_inodes = trees["docker", name]
        strata_entries, strata_inodes = trees["strata", name]
        assert differences(docker_entries, strata_entries, ignore) == expected[name], \
            "%s layer: Docker's root/ and strata's differ" % name
        assert link_groups(docker_entries, docker_inodes) == link_groups(strata_entries, strata_inodes) == LINKS
    shared = {}
    for who in ("docker", "strata"):
        parent_inodes, child_inodes = trees[who, "base"][1], trees[who, "child"][1]
        shared[who] = {rel for rel, key in child_inodes.items() if parent_inodes.get(rel) == key}
    assert shared["docker"] == shared["strata"]
    assert shared["docker"] == {rel for rel, item in trees["docker", "child"][0].items() if item["type"] == "file"
                                } - {"etc/motd", "srv/www/index.html", "usr/bin/tool"}


def test_symlink_xattrs_same_as_docker(dockerd, hello, scratch):  # pylint: disable=redefined-outer-name
    """Docker applies xattrs on symlinks (and its ApplyDiff copy drops them in the child); strata applies
    them too, and its copy keeps them."""
    base_tar, child_tar, (base, child), _argv = load_image(dockerd, hello)
    dockerd.stop()
    store = LayerStore(os.path.join(scratch, "strata-home"))
    with store.locked():
        store.apply_diff("base", "", lambda: io.BytesIO(base_tar), base["diff_id"])
        store.apply_diff("child", "base", lambda: io.BytesIO(child_tar), child["diff_id"])
    link = "usr/bin/pong"

    def xattrs(home, layer_id):
        return _xattrs(os.path.join(home, layer_id, "root", link), None)
    assert xattrs(dockerd.overlay_home, base["cache_id"]) == {"trusted.strata": b"on a symlink"}
    assert xattrs(dockerd.overlay_home, child["cache_id"]) == {}
    assert xattrs(store.home, "child") == xattrs(store.home, "base")
    assert xattrs(store.home, "base") == {"trusted.strata": b"on a symlink"}


def test_docker_save_is_a_source_for_overlay_image(dockerd, hello, scratch):  # pylint: disable=redefined-outer-name
    """`docker save` of Docker 20.10 stages with docker-archive:, each layer under Docker's own ChainID, and
    the top layer's tree is the one strata builds from the same tarballs (test_same_tarball_same_tree
    compares that one with Docker's)."""
    base_tar, child_tar, (base, child), _argv = load_image(dockerd, hello)
    archive = os.path.join(scratch, "saved.tar")
    dockerd.docker("save", "-o", archive, IMAGE)
    dockerd.stop()
    store = LayerStore(os.path.join(scratch, "staged"))
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
    own = LayerStore(os.path.join(scratch, "applied"))
    with own.locked():
        own.apply_diff("base", "", lambda: io.BytesIO(base_tar), base["diff_id"])
        own.apply_diff("child", "base", lambda: io.BytesIO(child_tar), child["diff_id"])
    own.close()
    staged_tree, staged_inodes = dir_tree(os.path.join(store.home, staged.top, "root"))
    own_tree, own_inodes = dir_tree(os.path.join(own.home, "child", "root"))
    assert differences(own_tree, staged_tree, {".": ("mtime",)}) == []
    assert link_groups(own_tree, own_inodes) == link_groups(staged_tree, staged_inodes) == LINKS


def test_no_mounts_left(dockerd, scratch):  # pylint: disable=redefined-outer-name
    """The harness's teardown: the daemon's own mounts (its data-root, bound on itself) go."""
    points = [m.mount_point for m in mounts_below(scratch)]
    assert dockerd.data_root in points
    dockerd.stop()
    assert mounts_below(scratch) == []
