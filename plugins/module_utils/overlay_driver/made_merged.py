# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The merged/ directories the driver made for a mount, so that unmounting removes them again.

Docker 20.10's driver makes merged/ in Get and removes it in Put, so a home it
wrote has none while nothing is mounted. get() makes a missing merged/ and
leaves a marker in <home>/.strata/made-merged/; put() removes that merged/
(and only that one), so a home Docker wrote is left as Docker left it.
Everything is done relative to directory fds, never through a symlink.
"""

import errno
import os
import stat

from .errors import OverlayError
from .layout import MADE_MERGED_DIR, MERGED
from .state_files import remove_entry
from .walk import DIR_FLAGS


def _is_roots_mark(st):
    """A mark root made: a regular file of root's. In a .strata an earlier version gave the remapped root, that
    user could put others there; those mark nothing."""
    return stat.S_ISREG(st.st_mode) and st.st_uid == 0


class MadeMerged:
    """The markers of one home: dirs is its HomeDirs, state its .strata path (for messages)."""

    def __init__(self, dirs, state, root_uid, root_gid):
        self.dirs = dirs
        self.state = state
        self.root_uid = root_uid
        self.root_gid = root_gid

    def _marks(self, create):
        """<home>/.strata/made-merged: one empty file per layer whose merged/ get() made (or None)."""
        return self.dirs.open_private(self.dirs.state_fd, MADE_MERGED_DIR, create, self.state)

    def _open_layer(self, layer_id, paths):
        try:
            return os.open(layer_id, DIR_FLAGS, dir_fd=self.dirs.fd)
        except OSError as e:
            raise OverlayError("cannot open the layer directory: %s" % e.strerror, layer=layer_id, path=paths.dir)

    def make(self, layer_id, paths):
        """Make merged/ (0700, remapped root) when missing, relative to the layer dir, with its marker.

        True when it was made; False when it was there.
        """
        dir_fd = self._open_layer(layer_id, paths)
        try:
            try:
                st = os.stat(MERGED, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                if not stat.S_ISDIR(st.st_mode):
                    raise OverlayError("merged/ is not a directory", layer=layer_id, path=paths.merged)
                return False
            self._mark(layer_id)
            try:
                os.mkdir(MERGED, 0o700, dir_fd=dir_fd)
                os.chown(MERGED, self.root_uid, self.root_gid, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as e:
                raise OverlayError("cannot create merged/: %s" % e.strerror, layer=layer_id, path=paths.merged)
            return True
        finally:
            os.close(dir_fd)

    def _mark(self, layer_id):
        """A new empty file of root's; anything else under the name (a FIFO that would block the open while the
        home is locked, a directory, another user's file) is removed first, as it marks nothing."""
        marks = self._marks(True)
        try:
            for _attempt in range(3):
                try:
                    os.close(os.open(layer_id, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                     0o600, dir_fd=marks))
                    return
                except FileExistsError:
                    pass
                try:
                    if _is_roots_mark(os.stat(layer_id, dir_fd=marks, follow_symlinks=False)):
                        return
                    remove_entry(marks, layer_id)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    raise OverlayError("cannot replace %s/%s/%s, which is not root's mark: %s"
                                       % (self.state, MADE_MERGED_DIR, layer_id, e.strerror), layer=layer_id)
            raise OverlayError("cannot mark %s/%s/%s: something else keeps appearing under its name"
                               % (self.state, MADE_MERGED_DIR, layer_id), layer=layer_id)
        finally:
            os.close(marks)

    def _marked(self, layer_id):
        marks = self._marks(False)
        if marks is None:
            return False
        try:
            st = os.stat(layer_id, dir_fd=marks, follow_symlinks=False)
        except FileNotFoundError:
            return False
        finally:
            os.close(marks)
        return _is_roots_mark(st)

    def forget(self, layer_id):
        """Drop the marker; True when there was one."""
        marks = self._marks(False)
        if marks is None:
            return False
        try:
            return remove_entry(marks, layer_id)
        except OSError as e:
            raise OverlayError("cannot remove %s/%s/%s: %s" % (self.state, MADE_MERGED_DIR, layer_id, e.strerror),
                               layer=layer_id)
        finally:
            os.close(marks)

    def drop(self, layer_id, paths):
        """After an unmount: remove the merged/ that get() made (Docker 20.10's Put removes it too)."""
        if not self._marked(layer_id):
            return
        dir_fd = self._open_layer(layer_id, paths)
        try:
            os.rmdir(MERGED, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise OverlayError("cannot remove the merged/ made for the mount: %s" % e.strerror, layer=layer_id,
                                   path=paths.merged)
            # Written into while the mount was gone (after a reboot, or an umount behind our back):
            # someone's files, kept. The unmount itself is done; that merged/ is no longer ours to remove.
        finally:
            os.close(dir_fd)
        self.forget(layer_id)

    def prune(self):
        """Markers of layers that are gone (Docker removed a layer strata had mounted); their paths.

        A layer made later under that id would otherwise lose, at its first
        unmount, the merged/ its creation made.
        """
        marks = self._marks(False)
        if marks is None:
            return []
        pruned = []
        try:
            for name in os.listdir(marks):
                if self.dirs.is_layer_dir(name):
                    continue
                try:
                    st = os.stat(name, dir_fd=marks, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue  # no mark of root's (a directory there failed every writer's cleanup): left as it is
                os.unlink(name, dir_fd=marks)
                pruned.append(os.path.join(self.state, MADE_MERGED_DIR, name))
        finally:
            os.close(marks)
        return pruned
