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
entry is a real file in upper/ or root/, which the exporter reads.
"""

import os
import stat

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
        if not self.overlay:
            return [os.path.join(self.layers[0], rel)]  # nothing below it to hide
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
            if _is_opaque(path):
                break
        self._stacks[rel] = stack
        return stack

    def listing(self, rel):
        """name -> os.DirEntry of the topmost real entry, for the directory rel ("" is the top)."""
        if not self.overlay:  # a directory gone since its parent was listed is an error, as in any walk
            with os.scandir(self._stack(rel)[0]) as it:
                return {entry.name: entry for entry in it}
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
                    if _is_whiteout(entry):
                        hidden.add(name)
                        continue
                    out[name] = entry
            if rel == "" and _is_opaque(path):
                break
        return out


class OwnView:
    """The top layer's own entries of a stack, whiteouts left out: with TouchedView, what the change walk
    reads to compare a layer with its own parent, which is the rest of the stack. Every entry not in the
    top layer is the very same file in both trees and cannot have changed, so nothing else is read."""

    overlay = True

    def __init__(self, top):
        self.top = top
        self.layers = [top]

    def listing(self, rel):
        with os.scandir(os.path.join(self.top, rel)) as it:
            return {entry.name: entry for entry in it if not _is_whiteout(entry)}


class TouchedView:
    """view (the parent's tree) where the top layer has an entry of the same name, a whiteout included,
    or all of a directory the top layer made opaque, and of every directory below one: the only places a
    change can be. Overlay hides the lower tree under an opaque directory at every depth, so a directory
    the top layer made inside one (as mkdir does after rm -rf, or a tarball's entries after its
    .wh..wh..opq) shows none of the parent's entries of that path either."""

    overlay = True

    def __init__(self, view, top):
        self.view = view
        self.top = top
        self.layers = view.layers
        self._hidden = {"": _is_opaque(top)}

    def hides_parent(self, rel):
        """Whether the top layer's directory rel, or one above it, is opaque (rel "" is the top)."""
        hidden = self._hidden.get(rel)
        if hidden is None:
            above = rel.rpartition("/")[0]
            hidden = self.hides_parent(above) or _is_opaque(os.path.join(self.top, rel))
            self._hidden[rel] = hidden
        return hidden

    def listing(self, rel):
        full = self.view.listing(rel)
        path = os.path.join(self.top, rel)
        if self.hides_parent(rel):
            return full
        return {name: full[name] for name in os.listdir(path) if name in full}


def is_opaque_dir(path):
    """Whether the directory at path (not followed) carries overlay's opaque xattr."""
    return _is_opaque(path)


def _is_whiteout(entry):
    if entry.is_dir(follow_symlinks=False) or entry.is_file(follow_symlinks=False) or entry.is_symlink():
        return False
    return is_overlay_whiteout(entry.stat(follow_symlinks=False))


def _is_opaque(path):
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False
