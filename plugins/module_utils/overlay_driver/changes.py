# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What changed between a layer's view and its parent's (the naive diff driver).

Two trees are compared the way moby's archive.ChangesDirs does: a path is
modified when mode, owner, rdev or security.capability differ, and for
non-directories also when size or mtime differ; a directory that holds any
change is itself reported modified, before its children.

Both trees are TreeViews (overlay_view.py): a plain tree is the view of one
directory, an overlay layer's is its upper/ over the lower root/ read without
a mount, so one walk serves both. The walk reads both trees one directory
pair at a time and stats only what it must compare. A layer built by
apply_diff is a hardlink copy of its parent's root/, so most of its files are
the parent's very inodes: a non-directory whose inode number (from readdir,
no stat) is the parent's at the same path, on the same filesystem, is the
same file and cannot have changed; in two overlay views, a file of a lower
layer both share is one path. Added subtrees and deletions need names and
file types only, which readdir gives.
"""

import errno
import os
import re
import stat

from .errors import OverlayError
from .overlay_view import OwnView, TouchedView, TreeView, as_dir, is_opaque_dir
from .view_dirs import ViewEntry, release_path_roots
from .whiteouts import OPAQUE

ADD = "A"
MODIFY = "C"
DELETE = "D"
# in an export only, never reported: the directory's '.wh..wh..opq' (Change.path names it, entry is the
# directory's), which hides every lower entry of the directory
OPAQUE_DIR = "O"
KIND_NAMES = {ADD: "add", MODIFY: "modify", DELETE: "delete"}


class Change:
    """A path and what happened to it; entry is the walk's view_dirs.ViewEntry, so an export reuses its stat
    and reads the file through its directory's fd."""

    __slots__ = ("path", "kind", "entry")

    def __init__(self, path, kind, entry=None):
        self.path = path
        self.kind = kind
        self.entry = entry

    def __repr__(self):
        return "%s %s" % (self.kind, self.path)

    def __eq__(self, other):
        return (self.path, self.kind) == (other.path, other.kind)

    def __hash__(self):
        return hash((self.path, self.kind))

    def as_dict(self):
        """What modules return: the path as text any JSON consumer takes (see escape_path)."""
        return {"path": escape_path(self.path), "kind": KIND_NAMES[self.kind]}


_UNDECODABLE = re.compile("[\udc80-\udcff]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def escape_path(path):
    """A file name as valid Unicode text: each byte that is not UTF-8 becomes the four characters
    \\xHH (lower-case hex) and a backslash becomes two. Names are bytes on Linux and the walk reads
    them undecoded (surrogateescape), which JSON and Ansible cannot carry; doubling the backslash keeps
    the escaping reversible (unescape_path), so a name that really is "\\xff" stays distinct from the
    byte 0xff. Names without a backslash or an undecodable byte, nearly all of them, are unchanged.
    Exported tarballs keep the raw bytes."""
    if "\\" not in path and not _UNDECODABLE.search(path):
        return path
    return _UNDECODABLE.sub(lambda m: "\\x%02x" % (ord(m.group()) - 0xDC00), path.replace("\\", "\\\\"))


def unescape_path(text):
    """escape_path reversed: the name's raw bytes."""
    def one(match):
        token = match.group(1)
        return "\\" if token == "\\" else chr(0xDC00 + int(token[1:], 16))

    return os.fsencode(_ESCAPE.sub(one, text))


def _same_time(a_ns, b_ns):
    a_sec, a_nsec = divmod(a_ns, 1000000000)
    b_sec, b_nsec = divmod(b_ns, 1000000000)
    return a_sec == b_sec and (a_nsec == b_nsec or a_nsec == 0 or b_nsec == 0)


def stat_different(old, new):
    if (old.st_mode != new.st_mode or old.st_uid != new.st_uid or old.st_gid != new.st_gid
            or old.st_rdev != new.st_rdev):
        return True
    if stat.S_ISDIR(old.st_mode):
        return False  # size is no measure of change for directories
    return not _same_time(old.st_mtime_ns, new.st_mtime_ns) or old.st_size != new.st_size


def _capability(entry, st):
    if stat.S_ISLNK(st.st_mode):
        return None
    return entry.getxattr("security.capability")  # through its directory's fd (view_dirs)


def _modified(old, new):
    old_st = old.stat(follow_symlinks=False)
    new_st = new.stat(follow_symlinks=False)
    return stat_different(old_st, new_st) or _capability(old, old_st) != _capability(new, new_st)


class _Frame:
    """A directory of the new tree being compared with its counterpart (old_view None: nothing to compare).

    new_dir, old_dir: the Dir a plain tree's listing came from (its entries are os.DirEntry, wrapped by
    _wrap where one is kept or stat'ed), None for an overlay's (ViewEntries already)."""

    __slots__ = ("rel", "entry", "added", "size_at_entry", "new_dir", "new_children", "old_dir", "old_children",
                 "names", "room")

    def __init__(self, new_view, old_view, rel, added, size_at_entry, entry=None, old_entry=None):
        self.rel = rel
        self.entry = entry
        self.added = added
        self.size_at_entry = size_at_entry
        self.new_dir, self.new_children = new_view.listing(rel, entry)
        if old_view is not None:
            self.old_dir, self.old_children = old_view.listing(rel, old_entry)
        else:
            self.old_dir, self.old_children = None, {}
        self.names = iter(sorted(self.new_children))
        # bytes left for a child's name under PATH_MAX, None while no name could reach it (NAME_MAX 255)
        self.room = PATH_MAX - len(os.fsencode("/" + rel + "/")) if len(rel) > PATH_MAX // 4 - 300 else None


def _wrap(directory, entry):
    """entry as a ViewEntry: a plain tree's os.DirEntry of directory wrapped, an overlay's as it is."""
    return entry if directory is None else ViewEntry.of(directory, entry)


def _walk(new_view, old_view, same_file):
    """moby's FileInfo.addChanges over two TreeViews, with an explicit stack for deep trees.

    same_file(old, new) says when two non-directories are one file, which cannot have changed;
    _same_inode, the common case, is tested inline (a plain tree has thousands of such files).
    Entries are wrapped as ViewEntries (read through their directory's fd) only where one is
    compared or becomes a change: most of a plain tree's are only named and typed.
    """
    by_inode = same_file is _same_inode
    changes = []
    stack = [_Frame(new_view, old_view, "", False, 0)]
    while stack:
        frame = stack[-1]
        prefix = frame.rel + "/" if frame.rel else ""
        descend = None
        new_children = frame.new_children
        old_children = frame.old_children
        new_dir, old_dir = frame.new_dir, frame.old_dir
        for name in frame.names:
            if frame.room is not None and len(os.fsencode(name)) > frame.room:
                raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), "/" + prefix + name)
            new = new_children[name]
            old = old_children.pop(name, None)
            new_is_dir = new.is_dir(follow_symlinks=False)
            if old is None:
                new = _wrap(new_dir, new)
                changes.append(Change("/" + prefix + name, ADD, new))
                if new_is_dir:
                    descend = _Frame(new_view, None, prefix + name, True, len(changes), new)
                    break
                continue
            if not new_is_dir and by_inode and new.inode() == old.inode():
                continue  # _same_inode, inline
            new, old = _wrap(new_dir, new), _wrap(old_dir, old)
            if not new_is_dir and not by_inode and same_file(old, new):
                continue
            added = _modified(old, new)
            if added:
                changes.append(Change("/" + prefix + name, MODIFY, new))
            if new_is_dir:
                old_is_dir = old.is_dir(follow_symlinks=False)
                descend = _Frame(new_view, old_view if old_is_dir else None, prefix + name, added, len(changes),
                                 new, old if old_is_dir else None)
                break
        if descend is not None:
            stack.append(descend)
            continue
        stack.pop()
        for name in sorted(old_children):
            changes.append(Change("/" + prefix + name, DELETE))
        if len(changes) > frame.size_at_entry and not frame.added and frame.rel:
            changes.insert(frame.size_at_entry, Change("/" + frame.rel, MODIFY, frame.entry))
    return changes


def _same_inode(old, new):
    """The parent's own inode (readdir's number, no stat): nothing about it can differ."""
    return new.inode() == old.inode()


def _never_same(_old, _new):
    return False


def _same_file(old, new):
    """The very same file (a shared lower layer's, or a hardlink of the parent's): one inode on one
    filesystem, from readdir, no stat."""
    return new.inode() == old.inode() and new.dir.dev == old.dir.dev


def changes_dirs(new_dir, old_dir=None):
    """Changes that turn old_dir (None: an empty tree) into new_dir, in tree order. Each is a path or
    a view_dirs.Dir (the caller's to close)."""
    try:
        new_view = TreeView([new_dir])
        old_view = TreeView([old_dir]) if old_dir is not None else None
        same_fs = old_view is not None and new_view.roots[0].dev == old_view.roots[0].dev
        return _walk(new_view, old_view, _same_inode if same_fs else _never_same)
    except OSError as e:
        raise_too_deep(e, "compare")
        raise
    finally:
        release_path_roots()


def view_changes(new_view, old_view=None):
    """Changes that turn old_view (None: an empty tree) into new_view, in tree order (as changes_dirs)."""
    try:
        return _walk(new_view, old_view, _same_file)
    except OSError as e:
        raise_too_deep(e, "compare")
        raise
    finally:
        release_path_roots()


def own_changes(top, parent_view=None):
    """view_changes of a layer over its own parent (parent_view: the parent's tree, None for none), read
    from the layer's own directory top and, in the parent's tree, only where top has entries: the same
    changes, at the cost of the layer's own diff rather than of the whole image."""
    try:
        own = OwnView(top)
        return _walk(own, TouchedView(parent_view, own) if parent_view is not None else None, _same_file)
    except OSError as e:
        raise_too_deep(e, "compare")
        raise
    finally:
        release_path_roots()


def with_opaque_dirs(changes):
    """own_changes' changes as Docker 20.10's overlay2 exports a layer's own diff/ (archive's overlay
    whiteout format): each directory of the layer marked opaque is followed by its '.wh..wh..opq'
    (an OPAQUE_DIR change) and every entry the layer holds below it, unchanged ones too, in place of
    what the change walk found there, its deletions included. The opaque entry hides every lower
    entry of the directory, so what the layer holds in it must all be in the archive.

    Only for the layer's own directory: every entry of a change must be a file of the layer itself."""
    out = []
    skip = None
    for change in changes:
        if skip is not None and change.path.startswith(skip):
            continue
        skip = None
        out.append(change)
        entry = change.entry
        if change.kind == DELETE or entry is None or not entry.is_dir(follow_symlinks=False) \
                or not is_opaque_dir(entry):
            continue
        out.append(Change(change.path + "/" + OPAQUE, OPAQUE_DIR, entry))
        below = [Change(change.path + c.path, c.kind, c.entry)
                 for c in _walk(OwnView(entry.open_dir()), None, _same_file)]
        out.extend(with_opaque_dirs(below))
        skip = change.path + "/"
    return out


PATH_MAX = 4096


def raise_too_deep(error, doing):
    """A tree that processes in a container made deeper than PATH_MAX is a clear error, not a traceback:
    the applier refuses such paths in archives, so no export or change may name one (the walks go by
    directory fd and would reach it)."""
    if error.errno == errno.ENAMETOOLONG:
        where = escape_path(os.fsdecode(error.filename or ""))
        raise OverlayError("cannot %s the layer: a path in it is longer than PATH_MAX (%d bytes), which "
                           "apply_diff refuses in a tarball"
                           % (doing, PATH_MAX), path=where if len(where) < 160 else "%s... (%d bytes)" % (where[:160], len(where)))


def counted_size(st, seen):
    """What one added or modified path adds to moby's ChangesSize: a non-directory's size, a
    hardlinked inode once (seen holds the inodes already counted)."""
    if stat.S_ISDIR(st.st_mode):
        return 0
    if st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            return 0
        seen.add(key)
    return st.st_size


def changes_size(new_dir, changes):
    """Bytes the added and modified non-directories take (moby's ChangesSize), hardlinks once.

    The walk's stat of each change is used where it has one (made through its directory's fd); a
    change without one is found from new_dir (a path or a view_dirs.Dir) name by name, never by path."""
    size = 0
    seen = set()
    root = None
    try:
        for change in changes:
            if change.kind == DELETE:
                continue
            entry = change.entry
            if entry is None:
                root = root or as_dir(new_dir)
                entry = entry_at(root, change.path)
            size += counted_size(entry.stat(follow_symlinks=False), seen)
    finally:
        release_path_roots()
    return size


def entry_at(root, path):
    """The ViewEntry of the change path ("/a/b") below the Dir root, each directory opened from its
    parent's fd."""
    if len(path) > PATH_MAX // 4 and len(os.fsencode(path)) > PATH_MAX:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), path)
    parent, _sep, name = path.strip("/").rpartition("/")
    return ViewEntry.at(root.lookup(parent), name)
