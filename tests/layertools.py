"""Test helpers: build layer tarballs entry by entry, and snapshot trees for comparison."""

import contextlib
import hashlib
import io
import os
import stat
import tarfile


class TarBuilder:
    """A tarball assembled in memory with full control over every header."""

    def __init__(self, fmt=tarfile.PAX_FORMAT):
        self.buf = io.BytesIO()
        self.tf = tarfile.open(fileobj=self.buf, mode="w", format=fmt)

    def _info(self, name, kind, mode, uid=0, gid=0, mtime=1700000000, **kw):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid = uid
        info.gid = gid
        info.mtime = mtime
        for k, v in kw.items():
            setattr(info, k, v)
        return info

    def dir(self, name, mode=0o755, **kw):
        self.tf.addfile(self._info(name, tarfile.DIRTYPE, mode, **kw))
        return self

    def file(self, name, data=b"", mode=0o644, xattrs=None, **kw):
        if isinstance(data, str):
            data = data.encode()
        info = self._info(name, tarfile.REGTYPE, mode, size=len(data), **kw)
        if xattrs:
            info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                                for k, v in xattrs.items()}
            if any(_binary(v) for v in xattrs.values()):
                info.pax_headers["hdrcharset"] = "BINARY"
        self.tf.addfile(info, io.BytesIO(data))
        return self

    def symlink(self, name, target, **kw):
        self.tf.addfile(self._info(name, tarfile.SYMTYPE, 0o777, linkname=target, **kw))
        return self

    def hardlink(self, name, target, mode=0o644, **kw):
        """Real tar writers give a link the header of its target: pass the same mode and owner."""
        self.tf.addfile(self._info(name, tarfile.LNKTYPE, mode, linkname=target, **kw))
        return self

    def device(self, name, char=True, major=1, minor=3, mode=0o666, **kw):
        kind = tarfile.CHRTYPE if char else tarfile.BLKTYPE
        self.tf.addfile(self._info(name, kind, mode, devmajor=major, devminor=minor, **kw))
        return self

    def fifo(self, name, mode=0o644, **kw):
        self.tf.addfile(self._info(name, tarfile.FIFOTYPE, mode, **kw))
        return self

    def whiteout(self, path):
        parent, base = os.path.split(path)
        return self.file(os.path.join(parent, ".wh." + base), b"", mode=0o600)

    def opaque(self, directory):
        return self.file(os.path.join(directory, ".wh..wh..opq"), b"", mode=0o600)

    def bytes(self):
        self.tf.close()
        return self.buf.getvalue()


def _binary(value):
    try:
        value.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def opener(data):
    """The opener apply_diff takes, of a tarball held in memory."""
    return lambda: contextlib.closing(io.BytesIO(data))


def snapshot(root, times=False, xattrs=("security.capability", "user.test")):
    """Everything a layer comparison cares about, keyed by path relative to root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            item = {"mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    item["sha256"] = hashlib.sha256(f.read()).hexdigest()
                item["size"] = st.st_size
            elif stat.S_ISLNK(st.st_mode):
                item["link"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                item["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            if times and not stat.S_ISLNK(st.st_mode):
                item["mtime"] = st.st_mtime_ns // 1000000000
            if not stat.S_ISLNK(st.st_mode):
                for x in xattrs:
                    try:
                        item["xattr:" + x] = os.getxattr(path, x, follow_symlinks=False)
                    except OSError:
                        pass
            out[rel] = item
    return out


def fill_descriptor_gaps():
    """Descriptors (on /dev/null) taking every unused number below the highest one open; the caller closes them.

    A new descriptor takes the lowest unused number and RLIMIT_NOFILE bounds numbers, not how many are open:
    a test that sets the limit to "what the process holds, plus n" means n more only when the numbers held have
    no gaps, and a test run's need not (some were opened at high numbers while others, since closed, were open)."""
    top = max(int(name) for name in os.listdir("/proc/self/fd"))
    fillers = []
    while True:
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)  # the lowest unused number: a gap while there is one
        if fd > top:
            os.close(fd)
            return fillers
        fillers.append(fd)


def deep_tree(path, depth, name="d"):
    """path/d/d/.../d, depth levels, made through directory fds (no path grows past PATH_MAX)."""
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _level in range(depth):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    return path


def pax_block(records, kind=b"x", name="pax"):
    """A raw PAX header (kind b"x" local, b"g" global) carrying records {key: bytes value}, exactly as given:
    tarfile writes only one global header, at the start, and drops keys it does not know."""
    body = b""
    for key, value in records.items():
        record = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
        length = len(record) + 1
        while len(str(length).encode()) + len(record) != length:
            length += 1
        body += str(length).encode() + record
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(body)
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    return header + body + b"\x00" * (-len(body) % 512)


def read_all(data, compression="auto"):
    """Read a layer tarball as the applier does, into nothing: (the reader, [(name, kind)])."""
    # imported here: the collection is importable once conftest has run, and most users of this file need no driver
    # pylint: disable=import-outside-toplevel
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.hashing_reader import HashingReader
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_headers import iter_entries

    reader = HashingReader(io.BytesIO(data), compression)
    names = []
    for entry in iter_entries(reader):
        names.append((entry.name, entry.kind))
        if entry.size:
            reader.read_exact(entry.size, "data")
    return reader, names


def run_as(uid, gid, step):
    """step() in a forked child that is uid:gid only (no supplementary groups, no capabilities): what an
    unprivileged user can do, for real. Returns step's result (anything picklable), or raises
    the child's exception as AssertionError with its text."""
    import pickle  # pylint: disable=import-outside-toplevel
    import traceback  # pylint: disable=import-outside-toplevel

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            payload = ("ok", step())
        except BaseException:  # pylint: disable=broad-except
            payload = ("error", traceback.format_exc())
        try:
            os.write(write, pickle.dumps(payload))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "error":
        raise AssertionError("the step as uid %d failed:\n%s" % (uid, value))
    return value


def in_child(step):
    """step() in a forked child that is root as the test is, for what changes the process (its limits):
    step's result (anything picklable), or the child's exception as AssertionError with its text."""
    import pickle  # pylint: disable=import-outside-toplevel
    import traceback  # pylint: disable=import-outside-toplevel

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            payload = ("ok", step())
        except BaseException:  # pylint: disable=broad-except
            payload = ("error", traceback.format_exc())
        try:
            os.write(write, pickle.dumps(payload))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    kind, value = pickle.loads(data)
    if kind == "error":
        raise AssertionError("the step in the child failed:\n%s" % value)
    return value


def run_isolated(code, timeout=120):
    """Python code in a child process with this one's import path, killed after timeout seconds.

    For steps that used to block for ever (an open() of a FIFO): a hang fails the test with
    TimeoutExpired instead of blocking the suite. Returns the CompletedProcess (text output).
    """
    import subprocess  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


# -- a layer's files, whatever the home's layout ---------------------------------------------------------
# The suites run on every layout (tests/conftest.py's layout fixture); these say where a layer keeps what,
# so a test reaches into the disk through them instead of naming one layout's directories.

# the directory holding a layer's own files: overlay2's diff/; the seed's root/ (a base or applied layer)
# or upper/ (an overlay layer over its lower-id's root/)
CONTENT_DIRS = ("diff", "root", "upper")


def content_dir(home, layer_id):
    """The directory that holds the layer's own files (see CONTENT_DIRS): where a test plants or damages them.

    For the seed's root layers that is the whole tree; for overlay layers and every overlay2 layer it is
    only what the layer changes, in overlayfs's form (a deletion is a 0/0 character device)."""
    layer = os.path.join(home, layer_id)
    for name in CONTENT_DIRS:
        path = os.path.join(layer, name)
        if os.path.isdir(path) and not os.path.islink(path):
            return path
    raise AssertionError("layer %s has none of %s" % (layer, ", ".join(CONTENT_DIRS)))


def write_into_layer(home, layer_id, relpath, data=b""):
    """A file written straight into the layer's own files (as a process writing the layer's directory
    behind strata's back would), its directories made as needed. Returns its path."""
    path = os.path.join(content_dir(home, layer_id), relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


@contextlib.contextmanager
def mounted(where, layer_id):
    """The layer's tree as its mount shows it, whatever the layout: the path of driver.get, put back after
    (also on failure) unless the layer was mounted already. where: a driver, or a home's path (its driver is
    opened for the while).

        with mounted(home, "app") as path: ...
    """
    # pylint: disable=import-outside-toplevel  # the collection is importable once conftest has run
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver

    driver = open_driver(where) if isinstance(where, str) else where
    try:
        already = driver.is_mounted(layer_id)
        path = driver.get(layer_id)
        try:
            yield path
        finally:
            if not already:
                driver.put(layer_id)
    finally:
        if driver is not where:
            driver.close()


def layer_tree(where, layer_id, **kw):
    """snapshot() of the layer's tree as its mount shows it (where: a driver or a home's path)."""
    with mounted(where, layer_id) as path:
        return snapshot(path, **kw)


def read_in_layer(where, layer_id, relpath, mode="r"):
    """A file's content as the layer's mount shows it (where: a driver or a home's path); None when the
    path is not there."""
    with mounted(where, layer_id) as path:
        try:
            with open(os.path.join(path, relpath), mode) as f:
                return f.read()
        except FileNotFoundError:
            return None


def layer_names(home):
    """The names of the home's layer directories, sorted; [] when there is no home. Neither .strata nor
    overlay2's l/ of short links (an id no layer may take) is a layer."""
    if not os.path.isdir(home):
        return []
    return sorted(name for name in os.listdir(home) if not name.startswith(".") and name != "l")


def applies_naively(layout, parent_kind):
    """Whether apply_diff takes the seed's naive path (the diff through a mount: fallback is True) for a
    layer on a parent of parent_kind ("none", "root" or "overlay"). Only the seed's layout does, for a base
    and onto an overlay layer; overlay2 always writes the diff into the layer's own diff/."""
    return layout == "overlay" and parent_kind in ("none", "overlay")


def kind_after_apply(layout, parent_kind):
    """The kind of a layer whose diff was applied on a parent of parent_kind ("none", "root" or "overlay"):
    the seed's layout makes a child of a root layer a root layer too (a hardlink copy of its root/);
    overlay2 keeps every layer with a parent an overlay of its own diff/."""
    if parent_kind == "none":
        return "root"
    return "root" if layout == "overlay" and parent_kind == "root" else "overlay"


def layer_dir_owner(layout, root_uid, root_gid):
    """Who owns a layer's directory in a home whose root is remapped to root_uid:root_gid: the remapped
    root in the seed's layout; root, in the remapped root's group, in overlay2 (as Docker 20.10 makes it)."""
    return (root_uid, root_gid) if layout == "overlay" else (0, root_gid)


def home_names(home):
    """The names in a layer home but the overlay2 layout's l/ (its short links, one per layer, which
    Docker's home has too): .strata and the layer directories, sorted."""
    return sorted(name for name in os.listdir(home) if name != "l")
