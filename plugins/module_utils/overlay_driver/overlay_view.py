# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An overlay layer's tree read from its directories, without mounting it.

Reading a layer must not change the host: a mount is a change other
processes see, and one a killed run would leave behind. Overlay's own rules
give the merged tree from upper/ and the lower root/: an entry of an upper
directory hides the lower one of the same name, a character device 0/0 is a
whiteout (the name is gone), a directory with trusted.overlay.opaque=y hides
everything below it in the lower layers. A plain tree is the view of one
directory, read as it is. changes.py walks two views the way moby's
ChangesDirs walks two real trees, so both give the same answer; every changed
entry is a real file in upper/ or root/, which the exporter reads. Every directory
is read by fd from its parent's (view_dirs.py), never by path.
"""

import errno

from .view_dirs import Dir, swapped
from .whiteouts import OPAQUE_XATTR, is_overlay_whiteout


def as_dir(layer):
    """A view's directory: a view_dirs.Dir as given, or a path opened with no symlink on it."""
    return layer if isinstance(layer, Dir) else Dir.open_path(layer)


class TreeView:
    """A tree made of directories stacked top first (one directory: a plain tree).

    layers: view_dirs.Dir roots (or paths, opened without a symlink on them). Every directory below
    them is opened from its parent's fd (view_dirs), so what the walk lists, stats and reads is the
    layer's even while its owner swaps a directory for a symlink. close() closes the roots."""

    def __init__(self, layers):
        self.roots = [as_dir(layer) for layer in layers]
        self.overlay = len(self.roots) > 1
        self._stacks = {"": self.roots}

    @property
    def layers(self):
        """The roots' paths, for messages."""
        return [root.path for root in self.roots]

    def close(self):
        for root in self.roots:
            root.close()

    def _stack(self, rel, ino=None):
        """The directories that make up the directory rel, top first, as overlay's lookup finds them
        (ino: a plain tree's directory's inode number from its listing).

        A layer takes part only where rel is a real directory in it (opened from the one above it
        with O_NOFOLLOW|O_DIRECTORY, level by level), and the layers below stop at a whiteout, at a
        name that is not a directory, and after an opaque directory: a lower symlink under an upper
        directory is never followed (overlay ignores it; following it would read the host), and a
        lower tree under an opaque upper directory stays hidden at every depth. The walk asks only
        for directories its listing found: the topmost layer holding the name must hold a
        directory, and one that is a symlink now was swapped meanwhile (an OverlayError).
        """
        stack = self._stacks.get(rel)
        if stack is not None:
            return stack
        parent, _sep, name = rel.rpartition("/")
        if not self.overlay:
            stack = [self._stack(parent)[0].child_dir(name, ino)]  # nothing below it to hide
            self._stacks[rel] = stack
            return stack
        stack = []
        for above in self._stack(parent):
            try:
                below = above.child(name)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    continue
                if e.errno in (errno.ENOTDIR, errno.ELOOP):
                    if not stack:
                        raise swapped(above.path + "/" + name, e)
                    break  # a whiteout, a file or a symlink: nothing below it takes part
                raise
            stack.append(below)
            if _is_opaque(below):
                break
        self._stacks[rel] = stack
        return stack

    def listing(self, rel, entry=None, only=None):
        """(Dir, name -> entry) of the directory rel ("" is the top; entry: its entry in its parent's
        listing; only: the names wanted, None for all). A plain tree's entries are its Dir's os.DirEntry
        (scan_raw), which the walk wraps as ViewEntry.of(Dir, entry) where it keeps or stats one; an
        overlay's are ViewEntries of the topmost real entry, and the Dir None."""
        if not self.overlay:  # a directory gone since its parent was listed is an error, as in any walk
            d = self._stack(rel, entry.inode() if entry is not None else None)[0]
            return d, d.scan_raw(only)
        stack = self._stack(rel)
        out = {}
        hidden = set()
        for layer in stack:
            for name, entry in layer.scan(only).items():
                if name in out or name in hidden:
                    continue
                if _is_whiteout(entry):
                    hidden.add(name)
                    continue
                out[name] = entry
            if rel == "" and _is_opaque(layer):
                break
        return None, out


class OwnView:
    """The top layer's own entries of a stack, whiteouts left out: with TouchedView, what the change walk
    reads to compare a layer with its own parent, which is the rest of the stack. Every entry not in the
    top layer is the very same file in both trees and cannot have changed, so nothing else is read."""

    overlay = True

    def __init__(self, top):
        self.top = as_dir(top)
        self.roots = [self.top]
        self._dirs = {"": self.top}
        self._last_names = None

    @property
    def layers(self):
        return [self.top.path]

    def close(self):
        self.top.close()

    def dir(self, rel):
        """The Dir of the top layer's directory rel, opened from its parent's."""
        found = self._dirs.get(rel)
        if found is None:
            parent, _sep, name = rel.rpartition("/")
            found = self._dirs[rel] = self.dir(parent).child_dir(name)
        return found

    def listing(self, rel, entry=None):
        scanned = self.dir(rel).scan()
        self._last_names = (rel, scanned)
        return None, {name: entry for name, entry in scanned.items() if not _is_whiteout(entry)}

    def names(self, rel):
        """The names in the top layer's directory rel, whiteouts included: those of the listing just made
        when it was rel's (the change walk lists a directory in the new tree, then in the old one, which
        asks for these), else listed now. One listing per directory, and both trees see the same one."""
        last = self._last_names
        if last is not None and last[0] == rel:
            return last[1]
        return set(self.dir(rel).names())


class TouchedView:
    """view (the parent's tree) where the top layer (own, an OwnView) has an entry of the same name, a
    whiteout included, or all of a directory the top layer made opaque, and of every directory below
    one: the only places a change can be. Overlay hides the lower tree under an opaque directory at every
    depth, so a directory the top layer made inside one (as mkdir does after rm -rf, or a tarball's
    entries after its .wh..wh..opq) shows none of the parent's entries of that path either."""

    overlay = True

    def __init__(self, view, own):
        self.view = view
        self.own = own
        self._hidden = {"": _is_opaque(own.top)}

    @property
    def layers(self):
        return self.view.layers

    def hides_parent(self, rel):
        """Whether the top layer's directory rel, or one above it, is opaque (rel "" is the top)."""
        hidden = self._hidden.get(rel)
        if hidden is None:
            above = rel.rpartition("/")[0]
            hidden = self.hides_parent(above) or _is_opaque(self.own.dir(rel))
            self._hidden[rel] = hidden
        return hidden

    def listing(self, rel, entry=None):
        if self.hides_parent(rel):
            return self.view.listing(rel, entry)
        # only the names the top layer has: a large directory of the parent's where the layer changed
        # one file is listed, but only that file's entry is made
        return self.view.listing(rel, entry, self.own.names(rel))


def is_opaque_dir(entry):
    """Whether the directory entry (a ViewEntry) carries overlay's opaque xattr; read from the directory
    opened without following a symlink."""
    return _is_opaque(entry.open_dir())


def _is_whiteout(entry):
    if entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False) or entry.is_symlink():
        return False
    return is_overlay_whiteout(entry.stat(follow_symlinks=False))


def _is_opaque(directory):
    try:
        return directory.getxattr(OPAQUE_XATTR) == b"y"
    except OSError:
        return False
