# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An overlay layer's tree read from its directories, without mounting it.

Reading a layer must not change the host: a mount is a change other
processes see, and one a killed run would leave behind. Overlay's own rules
give the merged tree from upper/ and the lower root/: an entry of an upper
directory hides the lower one of the same name, a character device 0/0 is a
whiteout (the name is gone), a directory with trusted.overlay.opaque=y hides
everything below it in the lower layers. The changes are then computed the
way changes.py computes them between two real trees (moby's ChangesDirs), so
both give the same answer; every changed entry is a real file in upper/ or
root/, which the exporter reads.
"""

import os
import stat

from .changes import ADD, DELETE, MODIFY, Change, stat_different
from .whiteouts import OPAQUE_XATTR, is_overlay_whiteout


class TreeView:
    """A tree made of directories stacked top first (one directory: a plain tree)."""

    def __init__(self, layers):
        self.layers = list(layers)
        self.overlay = len(self.layers) > 1
        self._stacks = {"": self.layers}

    def _stack(self, rel):
        """The directories that make up the directory rel, top first, as overlay's lookup finds them.

        A layer takes part only where rel is a real directory in it (found by lstat, level by
        level), and the layers below stop at a whiteout, at a name that is not a directory, and
        after an opaque directory: a lower symlink under an upper directory is never followed
        (overlay ignores it; following it would read the host), and a lower tree under an opaque
        upper directory stays hidden at every depth.
        """
        stack = self._stacks.get(rel)
        if stack is not None:
            return stack
        parent, _sep, name = rel.rpartition("/")
        stack = []
        for above in self._stack(parent):
            path = os.path.join(above, name)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISDIR(st.st_mode):
                break  # a whiteout or a file: nothing below it takes part
            stack.append(path)
            if self.overlay and _is_opaque(path):
                break
        self._stacks[rel] = stack
        return stack

    def listing(self, rel):
        """name -> os.DirEntry of the topmost real entry, for the directory rel ("" is the top)."""
        out = {}
        hidden = set()
        stack = self._stack(rel)
        for path in stack:
            try:
                it = os.scandir(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            with it:
                for entry in it:
                    name = entry.name
                    if name in out or name in hidden:
                        continue
                    if self.overlay and _is_whiteout(entry):
                        hidden.add(name)
                        continue
                    out[name] = entry
            if self.overlay and rel == "" and _is_opaque(path):
                break
        return out


def _is_whiteout(entry):
    if entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False) or entry.is_symlink():
        return False
    return is_overlay_whiteout(entry.stat(follow_symlinks=False))


def _is_opaque(path):
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _capability(entry, st):
    if stat.S_ISLNK(st.st_mode):
        return None
    try:
        return os.getxattr(entry.path, "security.capability", follow_symlinks=False)
    except OSError:
        return None


def _modified(old, new):
    old_st = old.stat(follow_symlinks=False)
    new_st = new.stat(follow_symlinks=False)
    return stat_different(old_st, new_st) or _capability(old, old_st) != _capability(new, new_st)


class _Frame:
    __slots__ = ("rel", "path", "entry", "added", "size_at_entry", "new_children", "old_children", "names")

    def __init__(self, new_view, old_view, rel, added, size_at_entry, entry=None):
        self.rel = rel
        self.path = "/" + rel
        self.entry = entry
        self.added = added
        self.size_at_entry = size_at_entry
        self.new_children = new_view.listing(rel)
        self.old_children = old_view.listing(rel) if old_view is not None else {}
        self.names = iter(sorted(self.new_children))


def view_changes(new_view, old_view=None):
    """Changes that turn old_view (None: an empty tree) into new_view, in tree order (as changes_dirs)."""
    changes = []
    stack = [_Frame(new_view, old_view, "", False, 0)]
    while stack:
        frame = stack[-1]
        prefix = frame.rel + "/" if frame.rel else ""
        descend = None
        old_children = frame.old_children
        for name in frame.names:
            new = frame.new_children[name]
            old = old_children.pop(name, None)
            rel = prefix + name
            new_is_dir = new.is_dir(follow_symlinks=False)
            if old is None:
                changes.append(Change("/" + rel, ADD, new))
                if new_is_dir:
                    descend = _Frame(new_view, None, rel, True, len(changes), new)
                    break
                continue
            if not new_is_dir and new.path == old.path:
                continue  # the very same file of a shared lower layer
            added = _modified(old, new)
            if added:
                changes.append(Change("/" + rel, MODIFY, new))
            if new_is_dir:
                descend = _Frame(new_view, old_view if old.is_dir(follow_symlinks=False) else None, rel, added,
                                 len(changes), new)
                break
        if descend is not None:
            stack.append(descend)
            continue
        stack.pop()
        for name in sorted(old_children):
            changes.append(Change("/" + prefix + name, DELETE))
        if len(changes) > frame.size_at_entry and not frame.added and frame.rel:
            changes.insert(frame.size_at_entry, Change(frame.path, MODIFY, frame.entry))
    return changes
