# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Copy a layer tree with everything overlay and images care about (seed: copyDir).

Modes, owners, times, all xattrs (security.capability, trusted.overlay.*,
also those of symlinks), devices, fifos, sockets, symlinks, and hardlinks
inside the tree stay what they were. With hardlink=True regular files are linked, not copied, which is
how a child layer shares file data with its parent's root/ (the seed's
copyHardlink): linked files are never touched afterwards, since a metadata
change would reach the parent through the shared inode.
"""

import errno
import os
import stat

from .changes import raise_too_deep

_COPY_CHUNK = 1 << 30


def _copy_xattrs(src, dst_fd_path, follow=True):
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for name in names:
        value = os.getxattr(src, name, follow_symlinks=False)
        os.setxattr(dst_fd_path, name, value, follow_symlinks=follow)


def _copy_data(src_fd, dst_fd, size):
    """copy_file_range (reflinks on xfs/btrfs, in-kernel elsewhere), then a plain loop."""
    copied = 0
    use_cfr = hasattr(os, "copy_file_range")
    while copied < size or size == 0:
        if use_cfr:
            try:
                n = os.copy_file_range(src_fd, dst_fd, _COPY_CHUNK)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                use_cfr = False
                continue
        else:
            buf = os.read(src_fd, 1 << 20)
            n = len(buf)
            view = memoryview(buf)
            while view:
                view = view[os.write(dst_fd, view):]
        if n == 0:
            break
        copied += n
    return copied


def _set_attrs(src, dst, st, fd=None, is_symlink=False):
    """Owner, then xattrs, then mode (chown clears setuid), then times."""
    if fd is not None:
        os.fchown(fd, st.st_uid, st.st_gid)
        _copy_xattrs(src, fd)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        return
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if is_symlink:
        _copy_xattrs(src, dst, follow=False)  # lsetxattr: Docker sets xattrs on symlinks too
    else:
        _copy_xattrs(src, dst)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(src, dst, hardlink=False):
    """Copy the contents and attributes of directory src into dst (created if missing)."""
    try:
        _copy_tree(src, dst, hardlink)
    except OSError as e:
        raise_too_deep(e, "copy")
        raise


def _copy_tree(src, dst, hardlink):
    root_st = os.lstat(src)
    try:
        os.mkdir(dst, 0o700)
    except FileExistsError:
        pass
    seen_inodes = {}  # (dev, ino) -> first destination path, for hardlinks inside the tree
    dirs_done = []  # (dst, stat) whose times are set after their children
    stack = [(src, dst, root_st)]
    while stack:
        sdir, ddir, dst_st = stack.pop()
        os.chown(ddir, dst_st.st_uid, dst_st.st_gid)
        _copy_xattrs(sdir, ddir)
        os.chmod(ddir, stat.S_IMODE(dst_st.st_mode))
        dirs_done.append((ddir, dst_st))
        with os.scandir(sdir) as it:
            entries = list(it)
        for entry in entries:
            sp = entry.path
            dp = os.path.join(ddir, entry.name)
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(dp, 0o700)
                stack.append((sp, dp, st))
            elif stat.S_ISREG(mode):
                if hardlink:
                    os.link(sp, dp, follow_symlinks=False)
                    continue
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1:
                    first = seen_inodes.get(key)
                    if first is not None:
                        os.link(first, dp, follow_symlinks=False)
                        continue
                    seen_inodes[key] = dp
                sfd = os.open(sp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    dfd = os.open(dp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                    try:
                        if st.st_size:
                            _copy_data(sfd, dfd, st.st_size)
                        _set_attrs(sp, dp, st, fd=dfd)
                    finally:
                        os.close(dfd)
                finally:
                    os.close(sfd)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(sp), dp)
                _set_attrs(sp, dp, st, is_symlink=True)
            else:
                # fifo, char/block device, socket: mknod makes all four
                os.mknod(dp, mode, st.st_rdev)
                _set_attrs(sp, dp, st)
    for ddir, st in reversed(dirs_done):
        os.utime(ddir, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
