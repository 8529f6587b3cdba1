# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply an image-layer tarball to a directory, creating every entry by hand.

Every name is resolved inside the target with openat2(RESOLVE_IN_ROOT) (or
the equivalent walk), so no symlink, '..' or absolute name in the archive can
make a write land outside it. Whiteouts follow the image-layer convention:
'.wh.<name>' deletes <name>, '.wh..wh..opq' hides everything in its directory
that this layer did not itself put there, whatever the order of entries. That
is the DELETE format, for a target holding the parent's tree; in the OVERLAY
format (a target that is a layer's own diff/) they become overlay's 0/0
devices and opaque xattrs instead, and nothing in the target is deleted.

Applying and check mode's verification read an archive in the same walk
(ArchiveWalk), so they refuse the same archives with the same errors and count
the same size; LayerApplier writes each entry, the check only looks at it.
"""

import errno
import os
import resource
import stat

from . import faults, mounts, syscalls, walk, whiteouts
from .errors import LayerFormatError, OverlayError
from .fd_limit import open_descriptors
from .hashing_reader import HashingReader
from .ids import root_pair, to_host
from .xattr_ids import remap_xattrs
from .removal import remove_tree_at
from .results import ArchiveResult
from .space import no_space_advice
from .tar_headers import BLOCKDEV, CHAR, DIRECTORY, FIFO, HARDLINK, REGULAR, SYMLINK, Limits, iter_entries

# user.* xattrs exist only on regular files and directories (xattr(7))
_USER_XATTR_PREFIX = "user."

_DIR_OPEN = syscalls.O_PATH | os.O_DIRECTORY
_PARENT_CACHE_MAX = 512
_PARENT_CACHE_MIN = 4

# The character devices (major, minor) a process may open without gaining anything: overlay's 0/0
# whiteout, null, zero, full, random, urandom, tty (the opener's own terminal), ptmx (a new pty).
_HARMLESS_DEVICES = frozenset(((0, 0), (1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)))


def clean_name(name, limits, what="entry"):
    """Archive name -> tuple of components relative to the target root.

    Leading '/' is dropped (as tar does); '..' anywhere is refused rather than
    guessed at.
    """
    parts = tuple(p for p in name.split("/") if p and p != ".")
    if ".." in parts:
        raise LayerFormatError("%s %r has a '..' component" % (what, name))
    if len(name) <= limits.max_component // 4:
        return parts  # even at 4 bytes a character, nothing here can be too long
    if len(os.fsencode(name)) > limits.max_name:
        raise LayerFormatError("%s name %r is longer than %d bytes" % (what, name[:80], limits.max_name))
    for p in parts:
        if len(os.fsencode(p)) > limits.max_component:
            raise LayerFormatError("%s %r has a component longer than %d bytes"
                                   % (what, name[:80], limits.max_component))
    return parts


class ArchiveWalk:
    """One pass over a layer tarball: names cleaned, aufs bookkeeping skipped, whiteouts told apart,
    the root entry checked, the bytes of regular files counted; a subclass says what each entry does."""

    def __init__(self, uid_maps=None, gid_maps=None, limits=None):
        self.uid_maps = uid_maps or []
        self.gid_maps = gid_maps or []
        self.limits = limits or Limits()
        self.recorder = None  # a tar_split.Recorder
        # implicit directories get the root's owner: an unmapped root fails apply and check alike
        self.root_uid, self.root_gid = root_pair(self.uid_maps, self.gid_maps)

    def _walk(self, raw, compression):
        """Take every entry of the archive read from raw; its ArchiveResult."""
        reader = HashingReader(raw, compression, self.recorder)
        size = 0
        count = 0
        try:
            for entry in iter_entries(reader, self.limits):
                count += 1
                parts = clean_name(entry.name, self.limits)
                if parts and parts[0].startswith(whiteouts.META_PREFIX) and len(parts) > 1:
                    continue  # inside aufs bookkeeping directories
                size += self._take(reader, entry, parts)
                self._taken(count)
        except ValueError as e:  # embedded NUL and similar in names
            raise LayerFormatError("invalid entry: %s" % e)
        finally:
            reader.close()
        return ArchiveResult(size, reader.digest(), count, reader.compression)

    def _take(self, reader, entry, parts):
        """One entry, by what its name says it is; the bytes it adds to the layer's size."""
        if parts and parts[-1].startswith(whiteouts.PREFIX):
            self._take_whiteout(parts, entry)
        elif not parts:
            self._take_root(entry)
        else:
            if entry.kind in (CHAR, BLOCKDEV) and (self.uid_maps or self.gid_maps):
                self._check_mapped_device(entry)
            self._put(reader, entry, parts)
            return entry.size if entry.kind == REGULAR else 0
        return 0

    def _check_mapped_device(self, entry):
        """Under id maps, only a device nobody gains anything by opening.

        A node's owner is mapped like any file's: the remapped root's uid on the host then owns it, and that
        uid owns the home too, so any process of it on the host (not only the container, whose runtime
        gives it its own /dev) could open the node, or chmod it open: a disk, memory or the console would
        be root's to that uid. Refused before anything is written, by the check run too."""
        if entry.kind == CHAR and (entry.devmajor, entry.devminor) in _HARMLESS_DEVICES:
            return
        raise LayerFormatError("entry %r is a %s device %d:%d; under uid/gid maps its owner, the remapped root's "
                               "uid on the host, could open it there (only null, zero, full, random, urandom, "
                               "tty and ptmx are applied): leave device nodes out of the layer, or stage it "
                               "without maps" % (entry.name, "block" if entry.kind == BLOCKDEV else "character",
                                                 entry.devmajor, entry.devminor))

    def _take_whiteout(self, parts, entry):
        base = parts[-1]
        if base == whiteouts.OPAQUE:
            self._opaque(parts[:-1], entry)
            return
        if base.startswith(whiteouts.META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
        name = base[len(whiteouts.PREFIX):]
        if name in ("", ".", ".."):
            raise LayerFormatError("invalid whiteout %r" % entry.name)
        self._hide(parts[:-1], name)

    def _take_root(self, entry):
        if entry.kind != DIRECTORY:
            raise LayerFormatError("entry %r would replace the layer root" % entry.name)
        self._root(entry)

    def _owner(self, entry):
        try:
            return to_host(entry.uid, self.uid_maps), to_host(entry.gid, self.gid_maps)
        except OverlayError as e:
            raise LayerFormatError("entry %r: %s" % (entry.name, e.cause))

    def _link_target(self, entry):
        """A hardlink's target as components; never the root."""
        target_parts = clean_name(entry.linkname, self.limits, "hardlink target of %r" % entry.name)
        if not target_parts:
            raise LayerFormatError("hardlink %r points at the layer root" % entry.name)
        return target_parts

    # -- what each entry does -------------------------------------------------

    def _opaque(self, dir_parts, entry):
        """'.wh..wh..opq' in dir_parts."""
        raise NotImplementedError

    def _hide(self, dir_parts, name):
        """'.wh.<name>' in dir_parts."""
        raise NotImplementedError

    def _root(self, entry):
        """The entry for the layer root, a directory."""
        raise NotImplementedError

    def _put(self, reader, entry, parts):
        """Any other entry, at parts."""
        raise NotImplementedError

    def _taken(self, count):
        """After each entry but aufs bookkeeping."""


class LayerApplier(ArchiveWalk):
    """One application of one archive to one target directory.

    whiteout_format: whiteouts.DELETE (the target holds the lower layers' files: whiteouts delete
    them) or whiteouts.OVERLAY (the target is a layer's own directory under an overlay mount:
    whiteouts are written in overlay's form, as Docker's overlay2 driver applies a diff).
    """

    def __init__(self, target, uid_maps=None, gid_maps=None, limits=None, whiteout_format=whiteouts.DELETE,
                 where=None, recorder=None):
        """target: the directory, as a path or as a directory fd that the caller keeps open (root's temp dirs are
        reached by fd only: their path runs through the home, whose names the remapped root can swap).
        where names it in errors (default: target). recorder: a tar_split.Recorder."""
        super(LayerApplier, self).__init__(uid_maps, gid_maps, limits)
        self.recorder = recorder
        if whiteout_format not in whiteouts.FORMATS:
            raise ValueError("unknown whiteout format %r" % (whiteout_format,))
        self.whiteout_format = whiteout_format
        self.target = target
        self.where = where if where is not None else target
        self.root_fd = None
        self._progress = None
        self._parents = {}
        self._layer_paths = set()  # what this layer itself put in place
        self._layer_dirs = set()  # ancestors of those
        self._new_dirs = set()  # directories this run created, empty but for what it put there
        self._dir_times = []
        self._mounts = None  # mountinfo, read at the first removal of this run
        self._parents_max = _PARENT_CACHE_MAX

    def apply(self, raw, compression="auto", progress=None):
        """Apply the archive read from raw; its ArchiveResult. progress(entries so far) after each entry."""
        self._progress = progress
        self._mounts = None
        self._parents_max = _parent_cache_size()
        if isinstance(self.target, int):
            self.root_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.target)
        else:
            self.root_fd = os.open(self.target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            result = self._walk(raw, compression)
            self._set_dir_times()
        finally:
            self._forget_parents()
            os.close(self.root_fd)
            self.root_fd = None
        return result

    # -- the walk's steps -----------------------------------------------------

    def _put(self, reader, entry, parts):
        try:
            self._apply_entry(reader, entry, parts)
        except LayerFormatError:
            raise
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE):
                raise  # the host's limit, not the layer's fault: named as such by the caller (errors.host_error)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OverlayError("no space left applying entry %r%s" % (entry.name, no_space_advice(self.limits)),
                                   path=self.where)
            raise LayerFormatError("entry %r: %s" % (entry.name, e.strerror or e))
        self._mark(parts)

    def _root(self, entry):
        self._finish_dir(self.root_fd, ".", (), entry, self._owner(entry))

    def _hide(self, dir_parts, name):
        if self.whiteout_format == whiteouts.OVERLAY:
            self._hide_in_overlay(dir_parts, name)
            return
        rel = "/".join(dir_parts) or "."
        try:
            pfd = walk.open_in_root(self.root_fd, rel, _DIR_OPEN)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing below to hide
        except OSError as e:  # a symlink loop of the layer's own, say
            raise LayerFormatError("whiteout %r: cannot resolve %r: %s"
                                   % ("/".join(dir_parts + (whiteouts.whiteout_name(name),)), rel, e.strerror))
        try:
            if self._lstat(pfd, name) is not None:
                self._remove(pfd, name)
        finally:
            os.close(pfd)
        self._layer_paths.discard(dir_parts + (name,))

    def _hide_in_overlay(self, dir_parts, name):
        """Overlay's whiteout at dir_parts/name, its directories made as for any entry (Docker's unpack
        makes the parent too). Whatever this layer put at the name before goes: the whiteout hides it
        as the DELETE format deletes it; an entry of that name later in the archive replaces the
        device. Owned by the layer's root, whatever the tarball says the whiteout's owner is: it is
        a marker, not a file, and check mode's verification does not map its owner either."""
        parts = dir_parts + (name,)
        entry_name = "/".join(dir_parts + (whiteouts.whiteout_name(name),))
        pfd = self._parent_fd(parts, entry_name)
        if self._lstat(pfd, name) is not None:
            self._remove(pfd, name)
            pfd = self._parent_fd(parts, entry_name)
        try:
            whiteouts.make_overlay_whiteout(pfd, name, self.root_uid, self.root_gid)
        except OSError as e:
            raise LayerFormatError("whiteout %r: %s" % (entry_name, e.strerror))
        self._layer_paths.discard(parts)

    def _opaque(self, dir_parts, entry):
        """Remove everything under dir_parts that this layer did not write (OVERLAY: mark it opaque).

        Depth first through walk.DirStack, one listing per open level: a directory with thousands
        of this layer's own subdirectories, or a chain of them thousands deep, needs no more
        descriptors than a flat one."""
        if self.whiteout_format == whiteouts.OVERLAY:
            # only this layer's own entries are here: overlay hides the lower ones, whatever the order
            pfd = self._parent_fd(dir_parts + (whiteouts.OPAQUE,), entry.name)
            try:
                whiteouts.mark_opaque(pfd)
            except OSError as e:
                raise LayerFormatError("opaque whiteout %r: %s" % (entry.name, e.strerror))
            return
        top = self._open_opaque_dir(dir_parts, entry.name)
        self._forget_parents()
        try:
            with walk.DirStack(top) as dirs:
                pending = [(dir_parts, os.listdir(top))]
                while pending:
                    parts, names = pending[-1]
                    if not names:
                        pending.pop()
                        if dirs.depth:
                            dirs.pop()
                        continue
                    name = names.pop()
                    child = parts + (name,)
                    if child not in self._layer_paths and child not in self._layer_dirs:
                        remove_tree_at(dirs.top, name, entries=self._mount_entries())
                    elif stat.S_ISDIR(os.stat(name, dir_fd=dirs.top, follow_symlinks=False).st_mode):
                        dirs.push(name)
                        pending.append((child, os.listdir(dirs.top)))
        finally:
            os.close(top)

    def _taken(self, count):
        faults.point("apply.entry")
        if self._progress is not None:
            self._progress(count)

    # -- resolution -------------------------------------------------------

    def _forget_parents(self):
        for fd, _room in self._parents.values():
            os.close(fd)
        self._parents.clear()

    def _parent_fd(self, parts, entry_name):
        """An O_PATH fd of the directory holding parts[-1], creating missing directories."""
        key = parts[:-1]
        cached = self._parents.get(key)
        if cached is None:
            cached = self._open_parent(key, entry_name)
        fd, room = cached
        base = parts[-1]
        if len(base) > room // 4 and len(os.fsencode(base)) > room:
            self._too_deep(entry_name, fd)
        return fd

    def _open_parent(self, key, entry_name):
        if len(self._parents) >= self._parents_max:
            self._forget_parents()
        rel = "/".join(key) or "."
        try:
            fd = walk.open_in_root(self.root_fd, rel, _DIR_OPEN)
        except FileNotFoundError:
            fd = self._make_parents(key, entry_name)
        except NotADirectoryError:
            raise LayerFormatError("entry %r: its parent %r is not a directory" % (entry_name, rel))
        except OSError as e:
            raise LayerFormatError("entry %r: cannot resolve %r: %s" % (entry_name, rel, e.strerror))
        try:
            room = self._room(fd)
        except BaseException:
            os.close(fd)
            raise
        if room < 1:
            try:
                self._too_deep(entry_name, fd)
            finally:
                os.close(fd)
        self._parents[key] = (fd, room)
        return fd, room

    def _room(self, fd):
        """Bytes a name in this directory may take so that its full path stays within path_max.

        A symlink in the layer can make a directory's real path longer than any name in the archive
        (a 4000-byte name through a 4000-byte link). Linux holds such trees, but Docker, which
        reads this home, and the path-based copies and walks of later layers cannot reach them,
        so they are refused here. One readlink per directory looked up, none per entry."""
        try:
            length = len(os.readlink(b"/proc/self/fd/%d" % fd))
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                return 0
            raise
        return self.limits.path_max - length - 1

    def _too_deep(self, entry_name, fd):
        raise LayerFormatError("entry %r: its path in the layer is longer than the %d bytes (PATH_MAX less room for "
                               "the layer's later copies) that Docker and the layer's copies can walk; a symlink "
                               "in the layer leads it this deep" % (entry_name[:200], self.limits.path_max),
                               path=self.where)

    def _make_parents(self, key, entry_name):
        """The directory key, opened from the root down, its missing directories created."""
        fd = os.open(".", _DIR_OPEN | os.O_CLOEXEC, dir_fd=self.root_fd)
        created = False
        try:
            for i in range(len(key)):
                # below a directory made just now nothing exists yet: no lookup from the root
                # (which made a deep new tree quadratic)
                nfd = None if created else self._open_existing(key[:i + 1], entry_name)
                if nfd is None:
                    nfd = self._make_implicit_dir(fd, key[:i + 1], entry_name)
                    created = True
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_existing(self, dir_parts, entry_name):
        """The directory at dir_parts, None when there is nothing there."""
        rel = "/".join(dir_parts)
        try:
            return walk.open_in_root(self.root_fd, rel, _DIR_OPEN)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise LayerFormatError("entry %r: %r is not a directory" % (entry_name, rel))

    def _make_implicit_dir(self, pfd, dir_parts, entry_name):
        """dir_parts[-1] made in pfd with the root's owner, as an implicit directory of this layer; opened."""
        name = dir_parts[-1]
        try:
            os.mkdir(name, 0o755, dir_fd=pfd)
        except FileExistsError:
            raise LayerFormatError("entry %r: %r is not a directory (or a symlink to a missing one)"
                                   % (entry_name, "/".join(dir_parts)))
        os.chown(name, self.root_uid, self.root_gid, dir_fd=pfd, follow_symlinks=False)
        self._new_dirs.add(dir_parts)
        return os.open(name, _DIR_OPEN | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)

    def _open_opaque_dir(self, dir_parts, entry_name):
        rel = "/".join(dir_parts) or "."
        try:
            return walk.open_in_root(self.root_fd, rel, walk.DIR_FLAGS)
        except FileNotFoundError:
            raise LayerFormatError("opaque whiteout %r for a directory that does not exist" % entry_name)
        except (NotADirectoryError, OSError) as e:
            if isinstance(e, NotADirectoryError) or e.errno == errno.ELOOP:
                raise LayerFormatError("opaque whiteout %r: %r is not a directory" % (entry_name, rel))
            raise

    def _lstat(self, pfd, base):
        try:
            return os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _remove(self, pfd, base):
        """Remove one name, a directory with everything in it; cached parent fds may now point at
        detached directories."""
        remove_tree_at(pfd, base, entries=self._mount_entries())
        self._forget_parents()
        self._new_dirs.clear()

    def _mount_entries(self):
        """Mountinfo, read once per run: nothing this run does mounts or unmounts in the target."""
        if self._mounts is None:
            self._mounts = mounts.read_mountinfo()
        return self._mounts

    # -- bookkeeping for opaque directories -------------------------------

    def _mark(self, parts):
        self._layer_paths.add(parts)
        ancestor = parts[:-1]
        while ancestor not in self._layer_dirs:
            self._layer_dirs.add(ancestor)
            if not ancestor:
                break
            ancestor = ancestor[:-1]

    # -- attributes ---------------------------------------------------------

    def _set_xattrs(self, target, entry, follow=True, special=False):
        """special: a symlink, device or fifo, where the kernel refuses user.* xattrs (EPERM) on every
        filesystem. Docker's archive code ignores that EPERM; they are dropped here, with overlay's own.
        Under maps, the ids in capabilities and ACLs are mapped as the owners are (xattr_ids)."""
        for name, value in remap_xattrs(entry.xattrs, self.uid_maps, self.gid_maps).items():
            if name.startswith(whiteouts.OVERLAY_XATTR_PREFIXES) or (special and name.startswith(_USER_XATTR_PREFIX)):
                continue
            try:
                os.setxattr(target, name, value, follow_symlinks=follow)
            except OSError as e:
                raise LayerFormatError("entry %r: cannot set xattr %s: %s" % (entry.name, name, e.strerror))

    def _finish_fd(self, fd, entry, owner, set_times=True):
        """Owner, xattrs, mode (chown clears setuid), times."""
        os.fchown(fd, *owner)
        if entry.xattrs:
            self._set_xattrs(fd, entry)
        os.fchmod(fd, stat.S_IMODE(entry.mode))
        if set_times:
            os.utime(fd, ns=(entry.atime_ns, entry.mtime_ns))

    def _finish_dir(self, pfd, name, parts, entry, owner):
        """A directory's owner, xattrs and mode now; its times once nothing more is written inside."""
        fd = os.open(name, walk.DIR_FLAGS, dir_fd=pfd)
        try:
            self._finish_fd(fd, entry, owner, set_times=False)
        finally:
            os.close(fd)
        self._dir_times.append((parts, entry.atime_ns, entry.mtime_ns))

    def _set_dir_times(self):
        for parts, atime, mtime in reversed(self._dir_times):
            try:
                fd = walk.open_in_root(self.root_fd, "/".join(parts) or ".", walk.DIR_FLAGS)
            except OSError:
                continue  # replaced or removed later in the archive
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)

    # -- entries ------------------------------------------------------------

    def _apply_entry(self, reader, entry, parts):
        pfd = self._parent_fd(parts, entry.name)
        owner = self._owner(entry) if entry.kind != HARDLINK else None
        if not self._created_in_new_dir(reader, entry, pfd, parts, owner):
            self._replace(reader, entry, pfd, parts, owner)

    def _created_in_new_dir(self, reader, entry, pfd, parts, owner):
        """Whether the entry was made in a directory this run created, where nothing is expected yet.

        No stat there: a new tree costs one syscall less per entry. An implicit parent made for an
        earlier entry, or a write through a symlinked alias of this directory, may still have put
        something there; creating then fails with EEXIST, before any data is read, and _replace
        follows."""
        if parts[:-1] not in self._new_dirs or parts in self._layer_paths:
            return False
        try:
            self._create(reader, entry, pfd, parts, owner, None)
        except FileExistsError:
            return False
        return True

    def _replace(self, reader, entry, pfd, parts, owner):
        """Make the entry in place of whatever is at its name."""
        base = parts[-1]
        existing = self._lstat(pfd, base)
        if existing is not None and entry.kind == HARDLINK and self._is_link_target(entry, existing):
            return  # a name linked to itself (tar -c f f writes that): already what the entry asks for
        if existing is not None and not (entry.kind == DIRECTORY and stat.S_ISDIR(existing.st_mode)):
            # as Docker's UnpackLayer (and tar --recursive-unlink): anything but a directory kept
            # for a directory entry is removed first, a directory with everything in it
            self._remove(pfd, base)
            pfd = self._parent_fd(parts, entry.name)
            existing = None
        self._create(reader, entry, pfd, parts, owner, existing)

    def _create(self, reader, entry, pfd, parts, owner, existing):
        """Make the entry at parts[-1] in pfd; every maker calls the creating system call first, so a
        FileExistsError means nothing was read or changed."""
        kind = entry.kind
        if kind == REGULAR:
            if self.recorder is not None:
                self.recorder.file(parts, entry.size, entry.mtime_ns)
            self._create_file(reader, entry, pfd, parts[-1], owner)
        elif kind == DIRECTORY:
            self._create_dir(entry, pfd, parts, owner, existing)
        elif kind == SYMLINK:
            self._create_symlink(entry, pfd, parts[-1], owner)
        elif kind == HARDLINK:
            self._link(pfd, parts[-1], entry)
        else:
            self._create_node(entry, pfd, parts[-1], owner)

    def _create_file(self, reader, entry, pfd, base, owner):
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            _write_data(reader, entry, fd)
            self._finish_fd(fd, entry, owner)
        finally:
            os.close(fd)

    def _create_dir(self, entry, pfd, parts, owner, existing):
        if existing is None:
            os.mkdir(parts[-1], 0o700, dir_fd=pfd)
            self._new_dirs.add(parts)
        self._finish_dir(pfd, parts[-1], parts, entry, owner)

    def _create_symlink(self, entry, pfd, base, owner):
        os.symlink(entry.linkname, base, dir_fd=pfd)
        os.chown(base, owner[0], owner[1], dir_fd=pfd, follow_symlinks=False)
        if entry.xattrs:
            # lsetxattr has no dir_fd form, and /proc/self/fd of an O_PATH fd of the symlink itself
            # would be followed to its target. The parent's fd plus one name, with the last component
            # not followed, reaches exactly this symlink: base is a single component that is
            # neither '.' nor '..' (clean_name), and pfd does not move.
            self._set_xattrs("/proc/self/fd/%d/%s" % (pfd, base), entry, follow=False, special=True)
        os.utime(base, ns=(entry.atime_ns, entry.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def _create_node(self, entry, pfd, base, owner):
        """A device or a fifo."""
        fmt = {CHAR: stat.S_IFCHR, BLOCKDEV: stat.S_IFBLK, FIFO: stat.S_IFIFO}[entry.kind]
        dev = os.makedev(entry.devmajor, entry.devminor) if entry.kind != FIFO else 0
        os.mknod(base, fmt | 0o600, dev, dir_fd=pfd)
        fd = os.open(base, syscalls.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            proc = "/proc/self/fd/%d" % fd
            os.chown(base, owner[0], owner[1], dir_fd=pfd, follow_symlinks=False)
            if entry.xattrs:
                self._set_xattrs(proc, entry, special=True)
            os.chmod(proc, stat.S_IMODE(entry.mode))
            os.utime(base, ns=(entry.atime_ns, entry.mtime_ns), dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(fd)

    def _is_link_target(self, entry, existing):
        """Whether what is at the hardlink's name is the very inode its target names, as GNU tar checks
        when link() says EEXIST; removing it first would remove the target too."""
        try:
            tfd = self._open_link_target(entry)
        except (OSError, LayerFormatError):
            return False  # _link gives the error
        try:
            st = os.fstat(tfd)
        finally:
            os.close(tfd)
        return (st.st_dev, st.st_ino) == (existing.st_dev, existing.st_ino)  # a directory too, as tar

    def _open_link_target(self, entry):
        return walk.open_in_root(self.root_fd, "/".join(self._link_target(entry)), syscalls.O_PATH | os.O_NOFOLLOW)

    def _link(self, pfd, base, entry):
        """Hardlink to a path inside the target; the link shares (and never changes) the inode."""
        try:
            tfd = self._open_link_target(entry)
        except OSError as e:
            raise LayerFormatError("hardlink %r -> %r: target not in the layer: %s"
                                   % (entry.name, entry.linkname, e.strerror))
        try:
            if stat.S_ISDIR(os.fstat(tfd).st_mode):
                raise LayerFormatError("hardlink %r -> %r: target is a directory" % (entry.name, entry.linkname))
            os.link("/proc/self/fd/%d" % tfd, base, dst_dir_fd=pfd, follow_symlinks=True)
        finally:
            os.close(tfd)


def _parent_cache_size():
    """How many parent directory fds an apply keeps: up to _PARENT_CACHE_MAX, within half of what the open-file
    limit leaves free, so that a layer of many directories applies under a low RLIMIT_NOFILE (a few dozen) too;
    the cache only saves lookups."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return _PARENT_CACHE_MAX
    free = soft - open_descriptors()
    return max(_PARENT_CACHE_MIN, min(_PARENT_CACHE_MAX, free // 2))


def _write_data(reader, entry, fd):
    """The entry's data, from the reader's chunks to fd without a copy."""
    left = entry.size
    while left:
        view = reader.read_view(left)
        if not view:
            raise LayerFormatError("the layer ends inside the data of %r: truncated" % entry.name)
        left -= len(view)
        while view:
            view = view[os.write(fd, view):]


class _ArchiveCheck(ArchiveWalk):
    """The walk with nothing written: each entry is only checked for what apply would refuse."""

    def check(self, raw, compression):
        return self._walk(raw, compression)

    def _put(self, reader, entry, parts):
        if entry.kind == HARDLINK:
            self._link_target(entry)
        else:
            self._owner(entry)

    def _root(self, entry):
        self._owner(entry)

    def _hide(self, dir_parts, name):
        pass

    def _opaque(self, dir_parts, entry):
        pass


def verify_archive(raw, compression="auto", uid_maps=None, gid_maps=None, limits=None):
    """Read a whole archive and refuse what apply would refuse for the archive's own sake, writing nothing.

    For check mode: framing, checksums, numbers, metadata bounds, names, whiteout names, hardlink
    names and owners outside the id maps give the same error as apply. What depends on the tree the
    archive builds (a parent that is a file, a hardlink target that is missing or a directory, an
    opaque whiteout of a missing directory, a path a symlink leads past PATH_MAX) needs the apply.
    Returns the ArchiveResult apply would.
    """
    return _ArchiveCheck(uid_maps, gid_maps, limits).check(raw, compression)
