# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opening a path by directory fd, never trusting a symlink by its path.

Root writes under the layer home and writes diffs to a dest; a symlink or a
directory another user could change on the way would send those writes
anywhere. So the path is walked one component at a time by directory fd with
O_NOFOLLOW (a name swapped for a symlink since its stat fails to open), and a
symlink is followed only when the caller's policy trusts it. The walk itself
is one: what a missing name, a symlink and each opened directory mean, and
how a refusal is worded, differ between the home (home.py), the controller's
blob cache (images/blob_cache.py) and a diff's dest (dest.py), which each say
so in a PathWalk subclass; the home and the cache share one policy for the
directories above them (GuardedWalk), with their own words.

Inside a layer every symlink is the layer's own and is followed, but clamped
to the layer's root as if it were / (open_in_root): openat2(RESOLVE_IN_ROOT)
where the kernel has it, elsewhere the same resolution walked by hand, so both
give the same answer.
"""

import errno
import os
import stat

from . import syscalls

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40


ACL_XATTR = "system.posix_acl_access"
_ACL_USER, _ACL_GROUP_OBJ, _ACL_GROUP, _ACL_MASK = 0x02, 0x04, 0x08, 0x10
_ACL_WRITE = 0x02


def untrusted_reason(st, owners, groups, fd=None):
    """Why another user could change what is in this directory, or None.

    fd: the directory, open; its POSIX ACL is read too, because an ACL entry can give a user or a
    group write access that the mode bits do not show (with an ACL, the group bits are its mask).
    """
    if st.st_uid not in owners:
        return "it is owned by uid %d, not by root" % st.st_uid
    if st.st_mode & stat.S_ISVTX:
        return None
    if st.st_mode & 0o002:
        return "it is writable by every user"
    acl = read_acl(fd) if fd is not None else None
    if not acl:
        if st.st_mode & 0o020 and st.st_gid not in groups:
            return "it is writable by group %d" % st.st_gid
        return None
    mask = next((perm for tag, perm, _id in acl if tag == _ACL_MASK), 0o7)
    for tag, perm, qualifier in acl:
        if not perm & mask & _ACL_WRITE:
            continue
        if tag == _ACL_USER and qualifier not in owners:
            return "it is writable by uid %d through an ACL entry" % qualifier
        if tag == _ACL_GROUP and qualifier not in groups:
            return "it is writable by group %d through an ACL entry" % qualifier
        if tag == _ACL_GROUP_OBJ and st.st_gid not in groups:
            return "it is writable by group %d" % st.st_gid
    return None


def read_acl(fd):
    """The entries (tag, permission bits, uid or gid) of an open file's access ACL; [] when it has
    none beyond its mode bits or the filesystem keeps none."""
    try:
        try:
            raw = os.getxattr(fd, ACL_XATTR)
        except OSError as e:
            if e.errno != errno.EBADF:  # an O_PATH fd takes no fgetxattr; its /proc link does
                raise
            raw = os.getxattr("/proc/self/fd/%d" % fd, ACL_XATTR)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTSUP):
            return []
        raise
    entries = []
    for offset in range(4, len(raw) - 7, 8):  # after the version: u16 tag, u16 perm, u32 id
        tag = int.from_bytes(raw[offset:offset + 2], "little")
        perm = int.from_bytes(raw[offset + 2:offset + 4], "little")
        qualifier = int.from_bytes(raw[offset + 4:offset + 8], "little")
        entries.append((tag, perm, qualifier))
    return entries


class PathWalk:
    """open() walks self.path; the hooks below are the caller's policy and wording.

    Each refusal hook raises; missing() returns whether it made the name (the
    walk goes on) or not (the walk ends: the path is missing).
    """

    def __init__(self, path):
        self.path = path

    def entered(self, fd, where, last):
        """Called with / and with every directory opened on the way (last: the walk's target)."""

    def missing(self, dir_fd, name, last):
        return False

    def check_link(self, dir_fd, st, where):
        """Raise unless the symlink where (lstat st, in the directory dir_fd) may be followed."""
        raise NotImplementedError

    def too_many_links(self):
        raise NotImplementedError

    def not_a_directory(self, where):
        raise NotImplementedError

    def cannot_open(self, where, error):
        raise NotImplementedError

    def open(self):
        """(fd of the directory or None when it is missing, its resolved path)."""
        pending = [c for c in self.path.split("/") if c]
        pending.reverse()
        fd = os.open("/", DIR_FLAGS)
        real = []
        links = 0
        try:
            self.entered(fd, "/", not pending)
            while pending:
                name = pending.pop()
                if name == ".":
                    continue
                if name == "..":
                    if real:
                        real.pop()
                        fd = _replace(fd, os.open("..", DIR_FLAGS, dir_fd=fd))
                    continue
                where = "/" + "/".join(real + [name])
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if not self.missing(fd, name, not pending):
                        os.close(fd)
                        fd = None
                        return None, "/" + "/".join(real + [name] + pending[::-1])
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_LINKS:
                        self.too_many_links()
                    self.check_link(fd, st, where)
                    target = os.readlink(name, dir_fd=fd)
                    if target.startswith("/"):
                        os.close(fd)
                        fd = None
                        fd = os.open("/", DIR_FLAGS)
                        real = []
                    pending.extend(reversed([c for c in target.split("/") if c]))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    self.not_a_directory(where)
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    self.cannot_open(where, e)  # swapped for a symlink since the stat: refused like one
                fd = _replace(fd, child)
                real.append(name)
                self.entered(fd, where, not pending)
            return fd, "/" + "/".join(real)
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise


class GuardedWalk(PathWalk):
    """The walk of a directory that must stay where its path says (the layer home, the controller's blob cache).

    Every directory above the target must be owned by one of `owners` and writable by nobody outside them and
    `groups` (unless sticky, as /tmp); a symlink on the way is followed only when its owner is one of
    link_owners(); what is wrong is said through refuse(where, cause), which raises with the caller's wording.
    make(dir_fd, name, last) creates a missing component (None: the walk ends, the path is missing). The
    target itself is the caller's to check: target(fd, where).
    """

    def __init__(self, path, refuse, make=None, owners=frozenset([0]), groups=frozenset([0])):
        PathWalk.__init__(self, path)
        self.refuse = refuse
        self.make = make
        self.owners = owners
        self.groups = groups

    def target(self, fd, where):
        """Check the directory the walk ends in (nothing by default)."""

    def link_owners(self, dir_fd):
        """Who may own a symlink that is followed: root and the owner of its directory."""
        return {0, os.fstat(dir_fd).st_uid}

    def entered(self, fd, where, last):
        if last:
            self.target(fd, where)
            return
        reason = untrusted_reason(os.fstat(fd), self.owners, self.groups, fd)
        if reason:
            self.refuse(where, "a directory above it can be changed by another user: %s" % reason)

    def missing(self, dir_fd, name, last):
        if self.make is None:
            return False
        self.make(dir_fd, name, last)
        return True

    def check_link(self, dir_fd, st, where):
        if st.st_uid not in self.link_owners(dir_fd):
            self.refuse(where, "it is a symlink owned by uid %d" % st.st_uid)

    def too_many_links(self):
        self.refuse(self.path, "too many symlinks")

    def not_a_directory(self, where):
        self.refuse(where, "it is not a directory")

    def cannot_open(self, where, error):
        self.refuse(where, "cannot open it: %s" % error.strerror)


def _replace(old_fd, new_fd):
    os.close(old_fd)
    return new_fd


# --- a bounded stack of directory fds ------------------------------------------

DIR_STACK_KEEP = 32


class DirStack:
    """A chain of directories opened one below the other, holding at most `keep` fds open.

    A walk that keeps one fd per level runs out of descriptors (1024 for an SSH
    login, so for a module) long before it runs out of depth: the applier
    accepts trees nearly 2,000 levels deep, and what it accepts must be
    walkable and removable. So only the deepest `keep` levels stay open. Each
    level records its (st_dev, st_ino); a level whose fd was closed is opened
    again, when the walk comes back up to it, as ".." of the level below and
    must be the same directory: one that another user moved meanwhile is an
    error, never a walk somewhere else. The base fd is the caller's and is
    never closed here.
    """

    def __init__(self, base_fd, keep=DIR_STACK_KEEP):
        st = os.fstat(base_fd)
        self._keep = max(keep, 1)
        self._levels = [[base_fd, None, st.st_dev, st.st_ino, DIR_FLAGS]]  # fd (None: closed), name, dev, ino, flags
        self._closed = 1  # levels 1.._closed-1 have their fd closed

    @property
    def depth(self):
        """Levels below the base (0: at the base)."""
        return len(self._levels) - 1

    @property
    def top(self):
        """The fd of the deepest directory."""
        return self._levels[-1][0]

    def names(self):
        """The names walked below the base, outermost first."""
        return [level[1] for level in self._levels[1:]]

    def push(self, name, flags=DIR_FLAGS):
        """Open the directory name in the top one (never following a symlink) and make it the top;
        returns its fstat."""
        fd = os.open(name, flags | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.top)
        try:
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        self._levels.append([fd, name, st.st_dev, st.st_ino, flags])
        if len(self._levels) - self._closed > self._keep:
            level = self._levels[self._closed]
            os.close(level[0])
            level[0] = None
            self._closed += 1
        return st

    def pop(self):
        """Close the top directory and return its name; its parent becomes the top, opened again
        (and checked to be the directory recorded) if its fd had been closed."""
        if len(self._levels) < 2:
            raise IndexError("pop from the base of a DirStack")
        fd, name = self._levels[-1][:2]
        try:
            parent = self._levels[-2]
            if parent[0] is None:
                parent[0] = self._reopen_parent(fd, parent)
                self._closed -= 1
        finally:
            os.close(fd)
            self._levels.pop()
        return name

    def _reopen_parent(self, child_fd, parent):
        fd = os.open("..", parent[4] | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=child_fd)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (parent[2], parent[3]):
            os.close(fd)
            raise OSError(errno.ESTALE, "directory %r was moved during the walk" % "/".join(self.names()))
        return fd

    def clear(self):
        """Back to the base, closing everything opened below it."""
        while len(self._levels) > 1:
            fd = self._levels.pop()[0]
            if fd is not None:
                os.close(fd)
        self._closed = 1

    def close(self):
        self.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- inside a root -----------------------------------------------------------

def _openat2(dirfd, path, flags, resolve, mode=0):
    """openat2, again when a concurrent rename raced the lookup (EAGAIN)."""
    while True:
        try:
            return syscalls.openat2(dirfd, path, flags, resolve | syscalls.RESOLVE_NO_MAGICLINKS, mode)
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise


def open_in_root(root_fd, relpath, flags, mode=0):
    """Open relpath as if root_fd were "/": symlinks and ".." never leave it."""
    relpath = os.fsencode(relpath or ".")
    if syscalls.openat2_available():
        return _openat2(root_fd, relpath, flags, syscalls.RESOLVE_IN_ROOT, mode)
    return _walk_in_root(root_fd, relpath, flags, mode)


def open_no_symlinks(path, flags):
    """Open an absolute path that holds no symlink at all (a path under a resolved layer home).

    A directory of a layer that a process inside the mounted layer swapped for a symlink after
    the tree was listed makes this fail (ELOOP) instead of sending root's read elsewhere.
    Without openat2, only the last component is guarded (O_NOFOLLOW).
    """
    if syscalls.openat2_available():
        return _openat2(-100, os.fsencode(path), flags, syscalls.RESOLVE_NO_SYMLINKS)
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)


def _walk_in_root(root_fd, relpath, flags, mode):
    """open_in_root without openat2: each component by dir fd, symlinks resolved by hand and clamped.

    The directories walked are a DirStack: a path nearly PATH_MAX long of one-letter names holds
    a bounded number of fds, and ".." goes back to the directory the walk came through."""
    pending = [c for c in relpath.split(b"/") if c and c != b"."]
    pending.reverse()
    followed = 0
    with DirStack(root_fd) as dirs:
        while pending:
            name = pending.pop()
            if name == b"..":
                if dirs.depth:
                    dirs.pop()
                continue
            last = not pending
            try:
                st = os.stat(name, dir_fd=dirs.top, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dirs.top)
                raise
            if stat.S_ISLNK(st.st_mode) and not (last and flags & os.O_NOFOLLOW):
                followed += 1
                if followed > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fsdecode(relpath))
                target = os.fsencode(os.readlink(name, dir_fd=dirs.top))
                if target.startswith(b"/"):
                    dirs.clear()
                pending.extend(reversed([c for c in target.split(b"/") if c and c != b"."]))
                continue
            if last:
                return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dirs.top)
            dirs.push(name, syscalls.O_PATH)
        return os.open(b".", flags | os.O_CLOEXEC, mode, dir_fd=dirs.top)
