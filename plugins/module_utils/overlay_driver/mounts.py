# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mounts, read live from /proc/self/mountinfo.

Every Ansible task is a new process and mounts outlive processes, so no
answer about what is mounted is kept beyond one step of one run: a function
given `entries` uses what its caller read for that step (under the home's
lock), one given none reads mountinfo again.
"""

import errno
import os

from . import busy, syscalls
from .errors import OverlayError


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


class MountEntry:
    __slots__ = ("mount_id", "parent_id", "device", "root", "mount_point", "mount_options", "fstype", "source",
                 "super_options", "_point_location")

    def __init__(self, line):
        fields = line.split()
        sep = fields.index("-")
        self.mount_id = int(fields[0])
        self.parent_id = int(fields[1])
        self.device = fields[2]  # major:minor of the filesystem, as st_dev
        self.root = _unescape(fields[3])
        self.mount_point = _unescape(fields[4])
        self.mount_options = fields[5]
        self.fstype = fields[sep + 1]
        self.source = _unescape(fields[sep + 2]) if len(fields) > sep + 2 else ""
        self.super_options = fields[sep + 3] if len(fields) > sep + 3 else ""
        self._point_location = None

    def options_dict(self):
        """Super-block options (lowerdir, upperdir, workdir, ...) as a dict."""
        out = {}
        for opt in self.super_options.split(","):
            if not opt:
                continue
            key, _sep, value = opt.partition("=")
            out[key] = _unescape(value) if _sep else True
        return out


def read_mountinfo(path="/proc/self/mountinfo"):
    with open(path) as f:
        return [MountEntry(line) for line in f if line.strip()]


def mount_at(path, entries=None):
    """The topmost mount on the directory path, or None (see mounts_at)."""
    found = mounts_at(path, entries)
    return found[-1] if found else None


def mounts_at(path, entries=None):
    """Every mount on the directory path, in mountinfo order (later ones stack on earlier ones).

    The directory is matched by where it is in its filesystem, not by the text
    of its path: a bind mount of a directory above it (an alias of the layer
    home) names the same directory by another path, and a mount made through
    one name must be found through the other.
    """
    entries = entries if entries is not None else read_mountinfo()
    real = os.path.realpath(path)
    where = _location(path, entries)
    by_id = {e.mount_id: e for e in entries}
    found, ids = [], set()
    for entry in entries:
        parent = by_id.get(entry.parent_id)
        stacked = entry.parent_id in ids and parent is not None and entry.mount_point == parent.mount_point
        if stacked or entry.mount_point == real or (where is not None and _mount_point_location(entry, by_id) == where):
            found.append(entry)
            ids.add(entry.mount_id)
    return found


def mounts_below(path, entries=None, including_path=False):
    """Mounts below path; including_path: a mount on path itself too (opening path enters that one).

    Below by filesystem location as well as by path text (see mounts_at), and
    every mount stacked on or nested in one below.
    """
    entries = entries if entries is not None else read_mountinfo()
    real = os.path.realpath(path)
    below = real.rstrip("/") + "/"
    where = _location(path, entries)
    by_id = {e.mount_id: e for e in entries}
    ids = set()
    for entry in entries:
        point = _mount_point_location(entry, by_id)
        if (entry.mount_point.startswith(below) or (including_path and entry.mount_point == real)
                or (where is not None and point[0] == where[0]
                    and (point[1].startswith(where[1].rstrip("/") + "/") or (including_path and point == where)))):
            ids.add(entry.mount_id)
    grew = True
    while grew:  # what is mounted inside a mount below path is below it too
        grew = False
        for entry in entries:
            if entry.mount_id not in ids and entry.parent_id in ids:
                ids.add(entry.mount_id)
                grew = True
    return [e for e in entries if e.mount_id in ids]


def _fdinfo_mount_id(fd):
    with open("/proc/self/fdinfo/%d" % fd) as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    return None


def _location(path, entries):
    """(device, path inside that filesystem) of the directory entry path names, or None when it
    cannot be opened or its mount is not in entries.

    The parent directory is opened (never path itself: opening a mount point enters what is
    mounted there) and the kernel says which mount that fd is on (fdinfo's mnt_id), so
    symlinks and bind-mount aliases on the way all come to the same answer.
    """
    parent, name = os.path.split(os.path.abspath(path))
    try:
        fd = os.open(parent or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        mount_id = _fdinfo_mount_id(fd)
        seen = os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    entry = next((e for e in entries if e.mount_id == mount_id), None)
    if entry is None or not seen.startswith("/"):
        return None
    inside = os.path.relpath(seen, entry.mount_point)
    if inside.startswith(".."):
        return None
    return entry.device, os.path.normpath(os.path.join(entry.root, inside, name))


def _mount_point_location(entry, by_id):
    """(device, path inside that filesystem) of the directory entry is mounted on (kept on the entry:
    an applier asks for every directory it removes, with one reading of mountinfo)."""
    if entry._point_location is None:
        parent = by_id.get(entry.parent_id)
        if parent is None or parent is entry:
            entry._point_location = (None, entry.mount_point)
        else:
            inside = os.path.relpath(entry.mount_point, parent.mount_point)
            entry._point_location = (parent.device, os.path.normpath(os.path.join(parent.root, inside)))
    return entry._point_location


def selinux_enabled():
    return os.path.exists("/sys/fs/selinux/enforce")


def format_mount_label(options, mount_label):
    """Add the SELinux context option (seed: label.FormatMountLabel)."""
    if not mount_label:
        return options
    context = 'context="%s"' % mount_label.strip('"')
    return "%s,%s" % (options, context) if options else context


def fd_path(fd):
    """The /proc/self/fd path of an fd: what the mount calls are given instead of a directory's path."""
    return "/proc/self/fd/%d" % fd


def overlay_options(lower, upper, work):
    for p in (lower, upper, work):
        if any(c in p for c in ",:\\\n"):
            raise OverlayError("overlay cannot take a path containing ',', ':', '\\' or newline", path=p)
    return "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work)


def mount_overlay(target_fd, lower_fd, upper_fd, work_fd, source="overlay", mount_label="", where=None, shown=None,
                  flags=0):
    """Mount an overlay of directories opened (and checked) by the caller, on the directory target_fd.

    The mount data names /proc/self/fd/N, never a path, so that nobody can swap a
    directory for a symlink between the caller's check and the mount. mountinfo
    then shows those fd paths: source (a token the caller records) says whose
    mount it is. where and shown (the real lowerdir/upperdir/workdir) are for errors.
    flags: MS_NOSUID, MS_NODEV, MS_NOEXEC (mount_options.flags).
    """
    data = overlay_options(fd_path(lower_fd), fd_path(upper_fd), fd_path(work_fd))
    if mount_label and selinux_enabled():
        data = format_mount_label(data, mount_label)
    try:
        syscalls.mount(source, fd_path(target_fd), "overlay", flags, data)
    except OSError as e:
        raise OverlayError("error creating overlay mount (%s): %s" % (shown or data, e.strerror), path=where)


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def stacked_overlay_data(lowers, upper=None, work=None, mount_label=""):
    """The mount data of an overlay of lowers (top first) and, when writable, upper and work: names the
    caller gives (/proc/self/fd paths). None for upper and work: a read-only stack, no upperdir.

    Refused when it would not fit in a page, the kernel's limit for mount data (Docker checks the same):
    /proc/self/fd/N is shorter than Docker's l/<LINK>, so the 128 lowers of its depth limit fit.
    """
    data = "lowerdir=%s" % ":".join(lowers)
    if upper is not None:
        data += ",upperdir=%s,workdir=%s" % (upper, work)
    if mount_label and selinux_enabled():
        data = format_mount_label(data, mount_label)
    if len(data.encode()) >= PAGE_SIZE:
        raise OverlayError("the mount data of %d lower layers is %d bytes, over the kernel's page of %d"
                           % (len(lowers), len(data.encode()), PAGE_SIZE))
    return data


def mount_overlay_stack(target_fd, lower_fds, upper_fd=None, work_fd=None, source="overlay", mount_label="",
                        where=None, shown=None, flags=0):
    """Mount an overlay of many directories opened (and checked) by the caller, on the directory target_fd:
    lower_fds top first, upper_fd and work_fd None for a read-only stack. Like mount_overlay, every
    directory is named by /proc/self/fd/N, so the kernel resolves no name the caller did not check."""
    data = stacked_overlay_data([fd_path(fd) for fd in lower_fds], None if upper_fd is None else fd_path(upper_fd),
                                None if work_fd is None else fd_path(work_fd), mount_label)
    try:
        syscalls.mount(source, fd_path(target_fd), "overlay", flags, data)
    except OSError as e:
        raise OverlayError("error creating overlay mount (%s): %s" % (shown or data, e.strerror), path=where)


def bind_readonly(source_fd, target_dir_fd, target_name, where=None, flags=0):
    """Bind the directory source_fd at target_name in target_dir_fd, read-only from the start.

    A detached copy of source_fd's mount is made read-only, with flags (MS_NOSUID, MS_NODEV, MS_NOEXEC: the
    layer's mount options), then attached on the directory target_name was opened as, wherever it is by then.
    The remapped root owns target_dir_fd and may move that directory away at any moment, also from a mount
    namespace of its own: a bind target_name does not lead to right after is undone through its own fd (the
    caller shows, and put() unmounts, the mount at that name). Every failure is an OverlayError saying what
    became of the bind. Kernels before 5.12 bind, then remount (_bind_then_remount).
    """
    try:
        target_fd = os.open(target_name, syscalls.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            dir_fd=target_dir_fd)
    except OSError as e:
        raise OverlayError("cannot open the directory to mount on: %s" % e.strerror, path=where)
    try:
        bound = _read_only_copy(source_fd, flags, where)
        if bound is None:
            bound = _bind_then_remount(source_fd, target_fd, where, flags)
        else:
            try:
                syscalls.move_mount(bound, target_fd)
            except OSError as e:
                os.close(bound)  # unattached: closing it unmounts the copy
                raise OverlayError("cannot bind-mount it: %s" % e.strerror, path=where)
    finally:
        os.close(target_fd)
    try:
        if mount_id_at(target_dir_fd, target_name) != _fdinfo_mount_id(bound):
            _undo_bind(bound, "cannot bind-mount it read-only: the directory was moved or replaced while it was "
                       "being mounted (its name leads elsewhere now)", where, writable=False)
    finally:
        os.close(bound)


_PER_MOUNT = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC  # MOUNT_ATTR_NOSUID, _NODEV, _NOEXEC too


def _read_only_copy(source_fd, flags, where):
    """An fd of a read-only detached copy of source_fd's mount, rooted there, with the flags asked and no
    others (as a remount gives them); None without open_tree (5.2) or mount_setattr (5.12), or where a seccomp
    filter refuses open_tree (EPERM) and may still allow mount(2). mount_setattr refused once open_tree was not
    (a flag of the base's mount locked by a user namespace) is an error: a remount would be refused alike."""
    try:
        fd = syscalls.open_tree_clone(source_fd)
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EPERM):
            return None
        raise OverlayError("cannot bind-mount it: %s" % e.strerror, path=where)
    try:
        syscalls.mount_setattr(fd, syscalls.MOUNT_ATTR_RDONLY | flags & _PER_MOUNT, _PER_MOUNT & ~flags)
        return fd
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.ENOSYS, errno.EINVAL):
            return None
        raise OverlayError("cannot make the bind mount read-only: %s" % e.strerror, path=where)


def _bind_then_remount(source_fd, target_fd, where, flags):
    """bind_readonly without mount_setattr: an O_PATH fd of the bind's root, once it is remounted read-only.

    The bind is writable until then. The remount, and the unmount undoing the bind when it fails, go through
    that fd (_bind_made), never through a name the remapped root may have moved meanwhile."""
    try:
        syscalls.mount(fd_path(source_fd), fd_path(target_fd), None, syscalls.MS_BIND)
    except OSError as e:
        raise OverlayError("cannot bind-mount it: %s" % e.strerror, path=where)
    bound = _bind_made(source_fd, target_fd, where)
    try:
        syscalls.mount(None, fd_path(bound), None, syscalls.MS_REMOUNT | syscalls.MS_BIND | syscalls.MS_RDONLY | flags)
    except OSError as e:
        try:
            _undo_bind(bound, "cannot make the bind mount read-only: %s" % e.strerror, where, writable=True)
        finally:
            os.close(bound)
    return bound


def _bind_made(source_fd, target_fd, where):
    """An O_PATH fd of the root of the bind of source_fd just made on the directory target_fd, whatever name
    leads there now; an OverlayError saying a writable bind may remain when it cannot be told for sure.

    target_fd's /proc/self/fd path leads to the directory under the bind, not into it. So the bind is reached
    through that directory's own parent (its "..") and its own name (what the kernel shows its path ends
    with), both taken from target_fd: while the directory is a mount point it can be neither renamed nor
    removed in this mount namespace, so they keep leading to it. The mount on top there must be stacked right
    on it (its parent is the mount target_fd is on) and show source's directory: anything else (a mount made
    on top of the bind meanwhile) is no mount of this call's to remount or unmount."""
    path_flags = syscalls.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
    bound = seen = None
    try:
        seen = os.readlink(fd_path(target_fd))
        up = os.open("..", path_flags, dir_fd=target_fd)
        try:
            bound = os.open(os.path.basename(seen), path_flags | os.O_NOFOLLOW, dir_fd=up)
        finally:
            os.close(up)
        on, made = _fdinfo_mount_id(target_fd), _fdinfo_mount_id(bound)
        entry = next((e for e in read_mountinfo() if e.mount_id == made), None)
        want, got = os.fstat(source_fd), os.fstat(bound)
        if made != on and entry is not None and entry.parent_id == on \
                and (want.st_dev, want.st_ino) == (got.st_dev, got.st_ino):
            return bound
        cause = "another mount covers it"
    except OSError as e:
        cause = e.strerror
    if bound is not None:
        os.close(bound)
    raise OverlayError("cannot reach the bind mount just made to make it read-only (%s): a writable bind of it may "
                       "remain mounted at %s; nothing was unmounted, check and unmount it by hand"
                       % (cause, seen or where), path=where)


def _undo_bind(bound, cause, where, writable):
    """Unmount the bind whose root bound is (an O_PATH fd), then raise cause as an OverlayError.

    umount2 is given the fd's /proc path and follows it on purpose (no UMOUNT_NOFOLLOW): it leads to that very
    mount, wherever it is; detached, as the fd itself holds it. A mount put on it meanwhile would go with it:
    then nothing is unmounted. The fd keeps the mount's id from reuse: one not in mountinfo is gone (the kernel
    detaches a mount whose directory is removed or replaced, from any namespace)."""
    made = _fdinfo_mount_id(bound)
    kind = "writable" if writable else "read-only"
    if any(e.parent_id == made for e in read_mountinfo()):
        raise OverlayError("%s; another mount was put on the bind made on it, so nothing was unmounted: a %s bind "
                           "of it remains under that mount" % (cause, kind), path=where)
    try:
        syscalls.umount(fd_path(bound), syscalls.MNT_DETACH)
    except OSError as e:
        if e.errno == errno.EINVAL and all(m.mount_id != made for m in read_mountinfo()):
            raise OverlayError("%s; the bind made on it is gone already (detached, its directory removed or replaced)"
                               % cause, path=where)
        try:
            at = os.readlink(fd_path(bound))
        except OSError:
            at = "/"
        raise OverlayError("%s; the bind made on it could not be undone (%s): a %s bind of it remains mounted at %s, "
                           "unmount it by hand" % (cause, e.strerror, kind, where if at == "/" else at), path=where)
    raise OverlayError("%s; the bind made on it is undone" % cause, path=where)


def is_bind_of(entry, directory, entries=None, covered=False):
    """Whether a mount entry is a bind mount of exactly directory.

    The entry's root field must be directory's path inside its filesystem,
    on the same source and filesystem type as the mount that holds directory,
    and the mount point must show directory's own inode (unless covered: a
    mount stacked on it shows its own).
    """
    real = os.path.realpath(directory)
    holding = None
    for other in entries if entries is not None else read_mountinfo():
        if other.mount_id == entry.mount_id:
            continue
        point = other.mount_point
        if real == point or real.startswith(point.rstrip("/") + "/"):
            if holding is None or len(point) >= len(holding.mount_point):
                holding = other  # the deepest, and of those the topmost
    if holding is None:
        return False
    expected = os.path.normpath(os.path.join(holding.root, os.path.relpath(real, holding.mount_point)))
    if (entry.root, entry.source, entry.fstype) != (expected, holding.source, holding.fstype):
        return False
    if covered:
        return True
    try:
        seen, want = os.stat(entry.mount_point), os.stat(real)
    except OSError:
        return False
    return (seen.st_dev, seen.st_ino) == (want.st_dev, want.st_ino)


def mount_flags(entry):
    """The per-mount options (ro, nosuid, relatime, ...) as a dict, like options_dict()."""
    return {opt: True for opt in entry.mount_options.split(",") if opt}


def unmount_mount(mount_point, mount_id, detach=False):
    """umount2 of the very mount mount_id (mountinfo's first field), which mountinfo shows at mount_point.

    mount_point is a path through the home, whose names the remapped root may swap: a layer's directory
    exchanged for a symlink at the wrong moment would lead umount2 to another mount named merged (another
    home's layer, a container's root). UMOUNT_NOFOLLOW guards only the last name. So the directory above it
    is opened and kept, and unmount_at unmounts the name in it only while it leads to that mount."""
    parent, name = os.path.split(mount_point)
    try:
        parent_fd = os.open(parent or "/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise OverlayError("cannot unmount: %s" % e.strerror, path=mount_point)
    try:
        unmount_at(parent_fd, name, mount_id, detach, shown=mount_point)
    finally:
        os.close(parent_fd)


def mount_id_at(parent_fd, name):
    """The id of the mount the directory name in parent_fd leads to (fdinfo's mnt_id), never through a symlink;
    None when it is not a directory there. Opened O_PATH and closed again: a kept fd would keep the mount busy.
    Read right after a mount through the fd of the directory above it (kept), it names that very mount: a
    mount point can be neither renamed nor replaced."""
    try:
        fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    except OSError:
        return None
    try:
        return _fdinfo_mount_id(fd)
    finally:
        os.close(fd)


def made_on(parent_fd, name, target_fd):
    """The id of the mount just made on target_fd, the directory name in the kept parent_fd was opened as; None
    when name no longer leads to it (the directory was moved or replaced before the mount): nothing to unmount.
    Right after the mount, name leads into the new mount, whose id is not that of the mount target_fd is on."""
    found = mount_id_at(parent_fd, name)
    return None if found is None or found == _fdinfo_mount_id(target_fd) else found


def unmount_at(parent_fd, name, mount_id, detach=False, shown=None):
    """umount2 of name in the kept directory parent_fd, only while it leads to the mount mount_id: asked of the
    kernel (mount_id_at), then unmounted through the fd's /proc path and that one name, which still leads to the
    mount checked, or to no mount at all (EINVAL). Otherwise nothing is unmounted, and the error says so."""
    shown = shown or name
    if mount_id is None or mount_id_at(parent_fd, name) != mount_id:
        raise OverlayError("cannot unmount: the path no longer leads to the layer's mount (a directory on the "
                           "way was moved or replaced meanwhile, or another mount covers it); nothing was unmounted", path=shown)
    unmount(os.path.join(fd_path(parent_fd), name), detach, shown=shown)


def unmount(target, detach=False, shown=None):
    """umount2, never through a symlink; MNT_DETACH when detach. A busy mount's error names the processes
    holding it. shown: the path errors name (target may be a /proc/self/fd path)."""
    shown = shown or target
    try:
        syscalls.umount(target, (syscalls.MNT_DETACH if detach else 0) | syscalls.UMOUNT_NOFOLLOW)
    except OSError as e:
        if e.errno == errno.EBUSY:
            # the role's per-item failure line shows this message as it is: it names the role's variable too
            raise OverlayError("cannot unmount: %s, %s (lazy: true detaches it now, overlay_lazy: true with the "
                               "overlay_layers role, and the kernel unmounts it once they let go)"
                               % (e.strerror, busy.describe(busy.processes_using(os.path.realpath(target)))),
                               path=shown)
        raise OverlayError("cannot unmount: %s" % e.strerror, path=shown)
