# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What changed between a layer's view and its parent's (the naive diff driver).

Two full trees are walked and compared the way moby's archive.ChangesDirs
does: a path is modified when mode, owner, rdev or security.capability
differ, and for non-directories also when size or mtime differ; a directory
that holds any change is itself reported modified, before its children.
"""

import os
import stat

ADD = "A"
MODIFY = "C"
DELETE = "D"
KIND_NAMES = {ADD: "add", MODIFY: "modify", DELETE: "delete"}


class Change:
    __slots__ = ("path", "kind")

    def __init__(self, path, kind):
        self.path = path
        self.kind = kind

    def __repr__(self):
        return "%s %s" % (self.kind, self.path)

    def __eq__(self, other):
        return (self.path, self.kind) == (other.path, other.kind)

    def __hash__(self):
        return hash((self.path, self.kind))

    def as_dict(self):
        return {"path": self.path, "kind": KIND_NAMES[self.kind]}


def _capability(path):
    try:
        return os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return None


class _Node:
    """One path of a tree; its capability xattr is read only when a comparison needs it."""

    __slots__ = ("stat", "children", "path", "_capability")

    def __init__(self, st, path):
        self.stat = st
        self.children = None
        self.path = path
        self._capability = False

    @property
    def capability(self):
        if self._capability is False:
            self._capability = None if (self.path is None or stat.S_ISLNK(self.stat.st_mode)) \
                else _capability(self.path)
        return self._capability


def _same_capability(old, new):
    """Equal by definition for the same inode (a hardlink copy of the parent), else compared."""
    if old.stat.st_ino == new.stat.st_ino and old.stat.st_dev == new.stat.st_dev:
        return True
    return old.capability == new.capability


def collect(root):
    """The tree under root as nested _Nodes keyed by name."""
    top = _Node(os.lstat(root), None)
    stack = [(root, top)]
    while stack:
        path, node = stack.pop()
        node.children = {}
        with os.scandir(path) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                child = _Node(st, entry.path)
                node.children[entry.name] = child
                if stat.S_ISDIR(st.st_mode):
                    stack.append((entry.path, child))
    return top


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


def _add_changes(new, old, path, changes):
    """moby's FileInfo.addChanges, with an explicit stack so deep trees cannot overflow."""
    stack = [_Frame(new, old, path, False, changes)]
    while stack:
        frame = stack[-1]
        child = frame.next_child(changes)
        if child is not None:
            stack.append(child)
            continue
        stack.pop()
        frame.finish(changes)


class _Frame:
    __slots__ = ("new", "path", "added", "size_at_entry", "names", "old_children")

    def __init__(self, new, old, path, added, changes):
        self.new = new
        self.path = path
        self.size_at_entry = len(changes)
        if old is None:
            changes.append(Change(path, ADD))
            added = True
        self.added = added
        keep_old = old is not None and old.children is not None and stat.S_ISDIR(new.stat.st_mode)
        self.old_children = dict(old.children) if keep_old else {}
        self.names = iter(sorted(new.children or ()))

    def next_child(self, changes):
        for name in self.names:
            child = self.new.children[name]
            child_path = self.path.rstrip("/") + "/" + name
            old_child = self.old_children.pop(name, None)
            child_added = False
            if old_child is not None and (stat_different(old_child.stat, child.stat)
                                          or not _same_capability(old_child, child)):
                changes.append(Change(child_path, MODIFY))
                child_added = True
            return _Frame(child, old_child, child_path, child_added, changes)
        return None

    def finish(self, changes):
        for name in sorted(self.old_children):
            changes.append(Change(self.path.rstrip("/") + "/" + name, DELETE))
        if (len(changes) > self.size_at_entry and stat.S_ISDIR(self.new.stat.st_mode) and not self.added
                and self.path != "/"):
            changes.insert(self.size_at_entry, Change(self.path, MODIFY))


def changes_dirs(new_dir, old_dir=None):
    """Changes that turn old_dir (None: an empty tree) into new_dir, in tree order."""
    new = collect(new_dir)
    if old_dir is None:
        old = _Node(new.stat, None)
        old.children = {}
    else:
        old = collect(old_dir)
    changes = []
    _add_changes(new, old, "/", changes)
    return changes


def changes_size(new_dir, changes):
    """Bytes the added and modified non-directories take (moby's ChangesSize), hardlinks once."""
    size = 0
    seen = set()
    for change in changes:
        if change.kind == DELETE:
            continue
        st = os.lstat(os.path.join(new_dir, change.path.lstrip("/")))
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        size += st.st_size
    return size
