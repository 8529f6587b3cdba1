"""mountinfo parsing and live mount state."""

import errno
import os

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


# -- bind_readonly: the bind it made, and only that, undone when a later step fails ---------------------------------

MS_REC, MS_PRIVATE, CLONE_NEWNS = 0x4000, 1 << 18, 0x20000


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
def test_a_target_swapped_around_the_bind_leaves_no_bind_and_unmounts_nothing_else(base, monkeypatch, when, victim):
    """merged is opened, bound, then made read-only through its name opened again. The remapped root owns the layer
    directory: it can rename merged away before the bind lands on it (or, from a namespace of its own, after) and put
    another directory under the name, with someone else's mount on it. The writable bind was left on the renamed
    directory, and the undo unmounted whatever the name led to: that other mount, or nothing (a raw EINVAL)."""
    def bind_then_swap(source, target, fstype, flags=0, data=None):
        if not flags & syscalls.MS_BIND or flags & syscalls.MS_REMOUNT:
            return base.real_mount(source, target, fstype, flags, data)
        if when == "before the bind":
            os.rename(base.merged, base.moved)
            os.mkdir(base.merged)
            base.real_mount(source, target, fstype, flags, data)
        else:
            base.real_mount(source, target, fstype, flags, data)
            _renamed_from_a_namespace_of_its_own(base.merged, base.moved)
        if victim:
            base.someone_elses_mount(base.merged)
        return None

    monkeypatch.setattr(syscalls, "mount", bind_then_swap)
    error = base.failed_bind(monkeypatch)
    if victim:
        assert os.path.exists(os.path.join(base.merged, "someone-elses")), "someone else's mount was unmounted"
    else:
        assert mounts.mount_at(base.merged) is None
    assert mounts.mount_at(base.moved) is None, "a writable bind of the base is left on the renamed directory"
    assert base.binds_of_src() == []
    assert isinstance(error, OverlayError), repr(error)
    assert "was moved or replaced" in str(error) and "the bind made on it is undone" in str(error)


def test_a_failed_read_only_remount_undoes_the_bind(base, monkeypatch):
    def remount_refused(source, target, fstype, flags=0, data=None):
        if flags & syscalls.MS_REMOUNT:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM), target)
        return base.real_mount(source, target, fstype, flags, data)

    monkeypatch.setattr(syscalls, "mount", remount_refused)
    error = base.failed_bind(monkeypatch)
    assert mounts.mount_at(base.merged) is None
    assert base.binds_of_src() == []
    assert isinstance(error, OverlayError), repr(error)
    assert "cannot make the bind mount read-only: Operation not permitted; the bind made on it is undone" in str(error)


def test_a_writable_bind_that_cannot_be_undone_is_said_plainly(base, monkeypatch):
    """The remount fails, then so does the unmount of the bind: the error says a writable bind remains, and where."""
    def remount_refused(source, target, fstype, flags=0, data=None):
        if flags & syscalls.MS_REMOUNT:
            raise OSError(errno.EPERM, os.strerror(errno.EPERM), target)
        return base.real_mount(source, target, fstype, flags, data)

    def unmount_refused(target, flags=0):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), target)

    monkeypatch.setattr(syscalls, "mount", remount_refused)
    monkeypatch.setattr(syscalls, "umount", unmount_refused)
    error = base.failed_bind(monkeypatch)
    assert [m.mount_point for m in base.binds_of_src()] == [base.merged]  # the scratch fixture unmounts it
    assert isinstance(error, OverlayError), repr(error)
    assert "a writable bind of it remains mounted at %s" % base.merged in str(error)


def test_a_mount_covering_the_bind_is_never_unmounted(base, monkeypatch):
    """Something mounted on merged right after the bind covers it: the bind can no longer be reached to be made
    read-only or undone. The mount on top is not the bind's to unmount; the error says a writable bind remains."""
    def bind_then_cover(source, target, fstype, flags=0, data=None):
        base.real_mount(source, target, fstype, flags, data)
        if flags & syscalls.MS_BIND and not flags & syscalls.MS_REMOUNT:
            base.someone_elses_mount(base.merged)

    monkeypatch.setattr(syscalls, "mount", bind_then_cover)
    error = base.failed_bind(monkeypatch)
    assert os.path.exists(os.path.join(base.merged, "someone-elses")), "someone else's mount was unmounted"
    assert isinstance(error, OverlayError), repr(error)
    assert "a writable bind of it may remain mounted at %s" % base.merged in str(error)


@pytest.mark.parametrize("how", ["gone", "a symlink"])
def test_a_target_not_there_at_the_first_open_is_an_error_naming_it(base, how):
    os.rmdir(base.merged)
    if how == "a symlink":
        os.symlink(base.src, base.merged)
    with pytest.raises(OverlayError, match="cannot open the directory to mount on") as raised:
        base.bind()
    assert raised.value.path == base.merged
    assert base.binds_of_src() == []


def test_a_bind_detached_by_its_directory_replaced_is_said_to_be_gone(base, monkeypatch):
    """The bind's directory replaced (renamed over) from another mount namespace before the remount: the kernel
    detaches the bind, so the remount and the undo's unmount fail (EINVAL). It is gone, not left: the error said a
    writable bind remained mounted at / (where a detached mount's fd leads)."""
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
