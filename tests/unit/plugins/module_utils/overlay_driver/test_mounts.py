"""mountinfo parsing and live mount state."""

import collections
import errno
import os
import signal

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError

LINE = ("36 35 98:0 / /mnt/with\\040space\\011tab rw,noatime master:1 - overlay overlay "
        "rw,lowerdir=/l,upperdir=/u\\134x,workdir=/w\n")


def test_parse_escapes_and_options(tmp_path):
    f = tmp_path / "mountinfo"
    f.write_text(LINE)
    (entry,) = mounts.read_mountinfo(str(f))
    assert entry.mount_point == "/mnt/with space\ttab"
    assert entry.fstype == "overlay"
    assert entry.options_dict() == {"rw": True, "lowerdir": "/l", "upperdir": "/u\\x", "workdir": "/w"}


def test_mount_at_sees_live_mounts_only(scratch):
    target = os.path.join(scratch, "m")
    os.mkdir(target)
    assert mounts.mount_at(target) is None
    syscalls.mount("tmpfs", target, "tmpfs", 0, "size=1m")
    try:
        assert mounts.mount_at(target).fstype == "tmpfs"
        assert [m.mount_point for m in mounts.mounts_below(scratch)] == [target]
    finally:
        syscalls.umount(target)
    assert mounts.mount_at(target) is None


def test_mount_label_format():
    assert mounts.format_mount_label("lowerdir=/a", "") == "lowerdir=/a"
    assert mounts.format_mount_label("lowerdir=/a", "system_u:object_r:container_file_t:s0:c1,c2") == \
        'lowerdir=/a,context="system_u:object_r:container_file_t:s0:c1,c2"'
    assert mounts.format_mount_label("", "x") == 'context="x"'


def test_overlay_options_refuse_separators():
    with pytest.raises(OverlayError, match="cannot take a path"):
        mounts.overlay_options("/a,b", "/u", "/w")


def test_129_directories_by_fd_mount_with_the_data_under_a_page(scratch):
    """Docker's depth (128 lowers, and a read-only mount's own diff/ on top of them) named by
    /proc/self/fd/N: the data fits a page, even at the longest descriptor numbers, and the kernel stacks them."""
    assert len(mounts.stacked_overlay_data([mounts.fd_path(10 ** 7)] * 129)) < os.sysconf("SC_PAGE_SIZE")
    fds = []
    merged = os.path.join(scratch, "merged")
    os.mkdir(merged)
    try:
        for i in range(129):
            path = os.path.join(scratch, "lower-%03d" % i)
            os.mkdir(path)
            with open(os.path.join(path, "from-%03d" % i), "w") as f:
                f.write(str(i))
            fds.append(os.open(path, syscalls.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        target = os.open(merged, syscalls.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        fds.append(target)
        mounts.mount_overlay_stack(target, fds[:129], flags=syscalls.MS_RDONLY)
        try:
            assert sorted(os.listdir(merged)) == ["from-%03d" % i for i in range(129)]
        finally:
            syscalls.umount(merged, syscalls.MNT_DETACH)
    finally:
        for fd in fds:
            os.close(fd)


def test_stacked_overlay_data_over_a_page_is_refused(monkeypatch):
    monkeypatch.setattr(mounts, "PAGE_SIZE", 512)
    with pytest.raises(OverlayError, match="over the kernel's page of 512"):
        mounts.stacked_overlay_data([mounts.fd_path(1000)] * 40, mounts.fd_path(1), mounts.fd_path(2))


# -- bind_readonly: read-only from the start; the bind it made, and only that, undone when a later step fails --------

MS_REC, MS_PRIVATE, CLONE_NEWNS, CLONE_NEWUSER = 0x4000, 1 << 18, 0x20000, 0x10000000
REMAPPED = 100000  # the remapped root of test_remapped_root


class _Base:
    """A base layer's directory (src, one file in it) and a layer directory holding merged, both opened as the drivers
    open them; .real_mount is syscalls.mount before any test replaces it."""

    def __init__(self, scratch):
        self.src, self.layer = os.path.join(scratch, "src"), os.path.join(scratch, "layer")
        self.merged, self.moved = os.path.join(self.layer, "merged"), os.path.join(self.layer, "merged-moved")
        os.mkdir(self.src)
        with open(os.path.join(self.src, "base-file"), "w") as f:
            f.write("base\n")
        os.makedirs(self.merged)
        flags = syscalls.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        self.src_fd = os.open(self.src, flags)
        self.layer_fd = os.open(self.layer, flags)
        self.real_mount = syscalls.mount

    def bind(self):
        mounts.bind_readonly(self.src_fd, self.layer_fd, "merged", where=self.merged, flags=syscalls.MS_NOSUID)

    def failed_bind(self, monkeypatch):
        """What bind() raised (any exception: the mounts are checked before its kind and text), syscalls as they were."""
        try:
            self.bind()
        except Exception as e:  # pylint: disable=broad-except
            return e
        finally:
            monkeypatch.undo()
        raise AssertionError("bind_readonly did not fail")

    def around_the_bind(self, monkeypatch, kernel, before=lambda: None, after=lambda: None):
        """before() and after() run right around the call that puts the bind on merged: move_mount, or on a kernel
        before 5.12, mount(MS_BIND)."""
        if kernel == "new":
            real = syscalls.move_mount

            def hooked(from_fd, to_fd):
                before()
                real(from_fd, to_fd)
                after()
            monkeypatch.setattr(syscalls, "move_mount", hooked)
            return

        def hooked_mount(source, target, fstype, flags=0, data=None):
            bind = flags & syscalls.MS_BIND and not flags & syscalls.MS_REMOUNT
            if bind:
                before()
            self.real_mount(source, target, fstype, flags, data)
            if bind:
                after()
        monkeypatch.setattr(syscalls, "mount", hooked_mount)

    def close(self):
        os.close(self.src_fd)
        os.close(self.layer_fd)

    def someone_elses_mount(self, path):
        """A tmpfs of someone else's at path (another home's layer, a container's root), with a file telling it."""
        self.real_mount("tmpfs", path, "tmpfs", 0, "size=1m")
        with open(os.path.join(path, "someone-elses"), "w") as f:
            f.write("mine\n")

    def binds_of_src(self):
        """Every mount showing src (a bind of it), wherever it is."""
        return [m for m in mounts.read_mountinfo() if m.root == "/src" and m.mount_point.startswith(self.layer + "/")]


@pytest.fixture
def base(scratch):
    made = _Base(scratch)
    try:
        yield made
    finally:
        made.close()  # scratch unmounts whatever is still mounted below it


def _missing(name, number=errno.ENOSYS):
    def call(*_args):
        raise OSError(number, "%s: %s" % (name, os.strerror(number)))
    return call


@pytest.fixture(params=["new", "old"], ids=["open_tree", "before 5.12"])
def kernel(request, monkeypatch):
    """The kernel bind_readonly runs on: one with open_tree and mount_setattr, or one without (ENOSYS), where it binds
    then remounts."""
    if request.param == "old":
        monkeypatch.setattr(syscalls, "open_tree_clone", _missing("open_tree"))
    return request.param


def _in_a_namespace_of_its_own(path, then):
    """then() by a process in a mount namespace of its own, where the bind on path is not: in this namespace a mount
    point can be neither renamed nor replaced (EBUSY), in another one where it is no mount point it can (the remapped
    root's, in a user namespace made before the bind; here root's, which drops its copy of the bind first)."""
    import ctypes
    from layertools import in_child

    def step():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        syscalls.mount(None, "/", None, MS_REC | MS_PRIVATE)
        syscalls.umount(path, syscalls.MNT_DETACH)
        then()
    in_child(step)


def _renamed_from_a_namespace_of_its_own(path, to):
    """path renamed to `to`, and a new directory made at path, from a mount namespace of its own."""
    def rename():
        os.rename(path, to)
        os.mkdir(path)
    _in_a_namespace_of_its_own(path, rename)


def _replaced_from_a_namespace_of_its_own(path):
    """A new directory renamed over path from a mount namespace of its own: the kernel detaches every mount on the
    directory replaced, in every namespace."""
    def replace():
        os.mkdir(path + ".new")
        os.rename(path + ".new", path)
    _in_a_namespace_of_its_own(path, replace)


@pytest.mark.parametrize("victim", [True, False], ids=["a mount swapped in", "a directory swapped in"])
@pytest.mark.parametrize("when", ["before the bind", "after the bind"])
def test_a_target_swapped_around_the_bind_leaves_no_bind_and_unmounts_nothing_else(
        base, monkeypatch, kernel, when, victim):
    """merged is opened, then bound. The remapped root owns the layer directory: it can rename merged away before the
    bind lands on it (or, from a namespace of its own, after) and put another directory under the name, with someone
    else's mount on it. The bind, on the renamed directory, is undone through its own fd, never through the name."""
    def swap():
        os.rename(base.merged, base.moved)
        os.mkdir(base.merged)

    def after():
        if when == "after the bind":
            _renamed_from_a_namespace_of_its_own(base.merged, base.moved)
        if victim:
            base.someone_elses_mount(base.merged)

    base.around_the_bind(monkeypatch, kernel, before=swap if when == "before the bind" else lambda: None, after=after)
    error = base.failed_bind(monkeypatch)
    if victim:
        assert os.path.exists(os.path.join(base.merged, "someone-elses")), "someone else's mount was unmounted"
    else:
        assert mounts.mount_at(base.merged) is None
    assert mounts.mount_at(base.moved) is None, "a bind of the base is left on the renamed directory"
    assert base.binds_of_src() == []
    assert isinstance(error, OverlayError), repr(error)
    assert "was moved or replaced" in str(error) and "the bind made on it is undone" in str(error)


def _remount_refused(base):
    """syscalls.mount as the kernel would answer it if the read-only remount were refused (EPERM)."""
    def mount(source, target, fstype, flags=0, data=None):
        if flags & syscalls.MS_REMOUNT:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM), target)
        return base.real_mount(source, target, fstype, flags, data)
    return mount


@pytest.mark.parametrize("kernel", ["old"], indirect=True)
def test_a_failed_read_only_remount_undoes_the_bind(base, monkeypatch, kernel):
    remount_refused = _remount_refused(base)

    monkeypatch.setattr(syscalls, "mount", remount_refused)
    error = base.failed_bind(monkeypatch)
    assert mounts.mount_at(base.merged) is None
    assert base.binds_of_src() == []
    assert isinstance(error, OverlayError), repr(error)
    assert "cannot make the bind mount read-only: Operation not permitted; the bind made on it is undone" in str(error)


@pytest.mark.parametrize("kernel", ["old"], indirect=True)
def test_a_writable_bind_that_cannot_be_undone_is_said_plainly(base, monkeypatch, kernel):
    """The remount fails, then so does the unmount of the bind: the error says a writable bind remains, and where."""
    remount_refused = _remount_refused(base)

    def unmount_refused(target, flags=0):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), target)

    monkeypatch.setattr(syscalls, "mount", remount_refused)
    monkeypatch.setattr(syscalls, "umount", unmount_refused)
    error = base.failed_bind(monkeypatch)
    assert [m.mount_point for m in base.binds_of_src()] == [base.merged]  # the scratch fixture unmounts it
    assert isinstance(error, OverlayError), repr(error)
    assert "a writable bind of it remains mounted at %s" % base.merged in str(error)


def test_a_mount_covering_the_bind_is_never_unmounted(base, monkeypatch, kernel):
    """Something mounted on merged right after the bind covers it. The mount on top is not the bind's to unmount,
    nor to detach with it; the error says what bind remains under it (before 5.12 a writable one may)."""
    base.around_the_bind(monkeypatch, kernel, after=lambda: base.someone_elses_mount(base.merged))
    error = base.failed_bind(monkeypatch)
    assert os.path.exists(os.path.join(base.merged, "someone-elses")), "someone else's mount was unmounted"
    assert isinstance(error, OverlayError), repr(error)
    if kernel == "old":
        assert "a writable bind of it may remain mounted at %s" % base.merged in str(error)
    else:
        assert [m.mount_options.split(",")[0] for m in base.binds_of_src()] == ["ro"]
        assert "nothing was unmounted: a read-only bind of it remains under that mount" in str(error)


@pytest.mark.parametrize("how", ["gone", "a symlink"])
def test_a_target_not_there_at_the_first_open_is_an_error_naming_it(base, how):
    os.rmdir(base.merged)
    if how == "a symlink":
        os.symlink(base.src, base.merged)
    with pytest.raises(OverlayError, match="cannot open the directory to mount on") as raised:
        base.bind()
    assert raised.value.path == base.merged
    assert base.binds_of_src() == []


def test_a_bind_detached_by_its_directory_replaced_is_said_to_be_gone(base, monkeypatch, kernel):
    """The bind's directory replaced (renamed over) from another mount namespace after the bind (before 5.12: before
    the remount): the kernel detaches the bind, so the undo's unmount fails (EINVAL). It is gone, not left: the
    error said a writable bind remained mounted at / (where a detached mount's fd leads)."""
    if kernel == "new":
        base.around_the_bind(monkeypatch, kernel, after=lambda: _replaced_from_a_namespace_of_its_own(base.merged))
    else:
        def replace_then_remount(source, target, fstype, flags=0, data=None):
            if flags & syscalls.MS_REMOUNT:
                _replaced_from_a_namespace_of_its_own(base.merged)
            return base.real_mount(source, target, fstype, flags, data)
        monkeypatch.setattr(syscalls, "mount", replace_then_remount)
    error = base.failed_bind(monkeypatch)
    assert base.binds_of_src() == []
    assert isinstance(error, OverlayError), repr(error)
    assert "remains" not in str(error) and " at /," not in str(error)
    assert "the bind made on it is gone already" in str(error)


def test_the_bind_is_read_only_from_the_start(scratch, monkeypatch):
    """A bind made writable, then remounted read-only, is a writable bind of the base for a moment, and stays one
    when the remount cannot reach it (the remapped root moved its directory). The bind is made read-only before
    it is attached: right after move_mount it shows ro and the flags asked, and none that the base's filesystem is
    mounted with but were not asked (as the remount gave them: a layer's options are read back from its mount).
    No mount(2) is made at all."""
    fs, merged = os.path.join(scratch, "fs"), os.path.join(scratch, "merged")
    os.mkdir(fs)
    os.mkdir(merged)
    syscalls.mount("tmpfs", fs, "tmpfs", syscalls.MS_NOSUID | syscalls.MS_NOEXEC, "size=1m")
    os.mkdir(os.path.join(fs, "root"))
    src = os.open(os.path.join(fs, "root"), syscalls.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    up = os.open(scratch, syscalls.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    seen, calls = [], []
    move_mount = syscalls.move_mount

    def move_then_look(from_fd, to_fd):
        move_mount(from_fd, to_fd)
        seen.append(mounts.mount_at(merged))
    monkeypatch.setattr(syscalls, "move_mount", move_then_look)
    monkeypatch.setattr(syscalls, "mount", lambda *args: calls.append(args))
    try:
        mounts.bind_readonly(src, up, "merged", where=merged, flags=syscalls.MS_NODEV)
    finally:
        monkeypatch.undo()
        os.close(src)
        os.close(up)
    assert calls == []
    assert [(m.root, sorted({"ro", "rw", "nosuid", "nodev", "noexec"} & set(m.mount_options.split(","))))
            for m in seen] == [("/root", ["nodev", "ro"])]
    assert mounts.mount_at(merged).mount_id == seen[0].mount_id
    with pytest.raises(OSError) as raised:
        open(os.path.join(merged, "written"), "w").close()
    assert raised.value.errno == errno.EROFS


@pytest.mark.parametrize("missing", ["open_tree", "mount_setattr", "mount_setattr EINVAL", "open_tree EPERM"])
def test_a_kernel_without_mount_setattr_binds_then_remounts_read_only(base, monkeypatch, missing):
    """Before 5.12 (open_tree, from 5.2, without mount_setattr) the bind is made writable and remounted read-only;
    so it is where a seccomp filter refuses open_tree (EPERM) and may still allow mount(2)."""
    name, _sep, number = missing.partition(" ")
    monkeypatch.setattr(syscalls, name + ("_clone" if name == "open_tree" else ""),
                        _missing(name, getattr(errno, number or "ENOSYS")))
    calls = []
    monkeypatch.setattr(syscalls, "mount", lambda *args: calls.append(args[3]) or base.real_mount(*args))
    base.bind()
    monkeypatch.undo()
    assert calls == [syscalls.MS_BIND, syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY | syscalls.MS_NOSUID]
    (made,) = base.binds_of_src()
    assert made.mount_point == base.merged and {"ro", "nosuid"} <= set(made.mount_options.split(","))


def test_a_read_only_copy_refused_is_never_attached(base, monkeypatch):
    monkeypatch.setattr(syscalls, "mount_setattr", _missing("mount_setattr", errno.EPERM))
    error = base.failed_bind(monkeypatch)
    assert base.binds_of_src() == [] and mounts.mount_at(base.merged) is None
    assert isinstance(error, OverlayError), repr(error)
    assert "cannot make the bind mount read-only: mount_setattr: Operation not permitted" in str(error)


def _remapped_root_moving_merged(layer, ready, go):  # pragma: no cover - the forked child
    """As the remapped root, from a user and mount namespace of its own: merged exchanged with another directory of
    the layer's, and renamed away and back, without end (the test kills it)."""
    import ctypes
    os.setgroups([])
    os.setresgid(REMAPPED, REMAPPED, REMAPPED)
    os.setresuid(REMAPPED, REMAPPED, REMAPPED)
    libc = ctypes.CDLL(None, use_errno=True)
    os.write(ready, b"y" if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0 else b"n")
    os.read(go, 1)
    names = [os.path.join(layer, name).encode() for name in ("merged", "stray", "victim", "away")]
    while True:
        for other in names[1:3]:
            libc.renameat2(-100, names[0], -100, other, syscalls.RENAME_EXCHANGE)
        libc.rename(names[0], names[3])
        libc.rename(names[3], names[0])


def _unmount_the_binds_of(base):
    """Every bind of src unmounted through an fd of that very mount (its path is opened, then its id checked), as the
    remapped root moves the names meanwhile."""
    for _try in range(1000):
        left = base.binds_of_src()
        if not left:
            return
        for entry in left:
            try:
                fd = os.open(entry.mount_point, syscalls.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if mounts._fdinfo_mount_id(fd) == entry.mount_id:  # pylint: disable=protected-access
                    syscalls.umount(mounts.fd_path(fd), syscalls.MNT_DETACH)
            finally:
                os.close(fd)
    raise AssertionError("the binds of src could not be unmounted: %r" % [m.mount_point for m in left])


def test_the_remapped_root_moving_merged_all_along_never_gets_a_writable_bind(base):
    """A real race: the remapped root exchanges and renames merged all the time from its own namespaces (where it is
    no mount point) while root binds the base 200 times. Whatever each bind_readonly says, no writable bind of the
    base is ever left, every failure is an OverlayError, and a mount of someone else's that it swaps in is never
    unmounted. (With a bind remounted read-only through its name, about two binds in three stayed writable.)"""
    os.chown(base.layer, REMAPPED, REMAPPED)
    for name in ("stray", "victim"):
        os.mkdir(os.path.join(base.layer, name))
    ready_read, ready = os.pipe()
    go_read, go = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        try:
            _remapped_root_moving_merged(base.layer, ready, go_read)
        finally:
            os._exit(0)
    os.close(ready)
    os.close(go_read)
    errors, writable = collections.Counter(), []
    try:
        assert os.read(ready_read, 1) == b"y", "the remapped root could not make namespaces of its own"
        base.someone_elses_mount(os.path.join(base.layer, "victim"))  # after: no mount point in its namespace
        victim = mounts.mount_at(os.path.join(base.layer, "victim")).mount_id
        os.write(go, b"g")
        for _round in range(200):
            try:
                base.bind()
                errors["mounted"] += 1
            except OverlayError as e:
                errors[str(e).split(": ", 1)[1].split(";")[0]] += 1
            except Exception as e:  # pylint: disable=broad-except
                errors["not an OverlayError: %r" % e] += 1
            writable += [m.mount_point for m in base.binds_of_src() if "rw" in m.mount_options.split(",")]
            _unmount_the_binds_of(base)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_read)
        os.close(go)
    assert writable == [], errors
    assert [k for k in errors if k.startswith("not an OverlayError")] == [], errors
    assert victim in [m.mount_id for m in mounts.read_mountinfo()], "someone else's mount was unmounted"
