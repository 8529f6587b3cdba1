# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed's overlay graphdriver, in Python.

Layers are either a plain root/ directory (base layers, and layers built by
apply_diff on a parent that has root/: a hardlink copy of the parent with the
diff applied) or an overlay: upper/, work/, merged/ and lower-id naming the
layer whose root/ is the lower dir. A child of an overlay layer inherits its
lower-id and starts from a copy of its upper/.

Unlike the seed, every change becomes visible by one rename: a new layer is
built in <home>/.strata/tmp and renamed into place, and a diff is applied to
a copy and exchanged in, after its digest has been checked. Reference
counting is not here (the seed's commit moved it out); see store.py.
"""

import os
import stat

from . import damage, faults, mounts, syscalls, walk
from .copy import copy_tree_at
from .errors import OverlayError
from .graph_driver import GraphDriver, is_real_dir as _is_dir, lstat_at as _lstat_at
from .ids import validate_layer_id
from .layer_mounts import LayerMount
from .layout import KIND_OVERLAY, KIND_ROOT, ROOT
from .overlay_view import TreeView
from .regular_files import require_regular
from .removal import remove_tree_at


class Driver(GraphDriver):
    """The seed's layout (see the module's docstring); what every layout shares is in GraphDriver."""

    # the name a home records for this driver's layout (drivers.py chooses the driver by it)
    LAYOUT = "overlay"

    # -- home ---------------------------------------------------------------

    def _repair(self, entries):
        """Drop the overlay parts of layers that got their root/ from apply_diff (a run killed between)."""
        removed = []
        for layer_id in self.dirs.layer_ids():
            if not _holds(self.dirs.fd, layer_id, ROOT):
                continue  # the common case, told by one stat from the home's fd (no paths built)
            paths = self.layout.layer(layer_id)
            if (_is_dir(paths.root) and os.path.lexists(paths.lower_id) and not self.is_mounted(layer_id, entries)
                    and not mounts.mounts_below(paths.dir, entries)):
                self._drop_overlay_parts(paths)
                removed.append(paths.dir + "/{upper,work,merged,lower-id}")
        return removed

    # -- queries ------------------------------------------------------------

    def kind(self, layer_id):
        paths = self._require(layer_id)
        return KIND_ROOT if _is_dir(paths.root) else KIND_OVERLAY

    def lower_id(self, layer_id):
        """The layer's lower-id, read by fd from the layer's directory: its owner (the remapped root, or
        what runs in the layer) may have made it a symlink or a FIFO, which must neither be followed
        nor block the run."""
        paths = self.layout.layer(layer_id)
        try:
            layer_fd = os.open(layer_id, walk.DIR_FLAGS, dir_fd=self.dirs.fd)
            try:
                fd = os.open("lower-id", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=layer_fd)
            finally:
                os.close(layer_fd)
            with os.fdopen(fd, "rb") as f:
                require_regular(fd, paths.lower_id)
                value = f.read(4096).decode("utf-8", "replace")
        except OSError as e:
            raise OverlayError("cannot read lower-id: %s" % e.strerror, layer=layer_id, path=paths.lower_id)
        try:
            return validate_layer_id(value.strip(), "lower-id")
        except OverlayError as e:
            raise OverlayError(e.cause, layer=layer_id, path=paths.lower_id)

    def layer_problem(self, layer_id):
        """Why this layer's directories cannot be used, None when they can (see damage.py): each layout says it
        of its own files, as it says what is below a layer."""
        return damage.structural_problem(self, layer_id)

    def lower_layer(self, layer_id):
        """The id of the layer this one's directories name as the one below it (an overlay's lower-id),
        None for a root layer. OverlayError when it cannot be read or names no root layer (a damaged layer,
        which is then no layer's child).

        The parent a layer another tool made can be known by (store.parent_of), and what makes a
        layer a child of another on disk (store.children_of): each layout says it in its own files.
        """
        if self.kind(layer_id) == KIND_ROOT:
            return None
        lower = self.lower_id(layer_id)
        problem = damage.lower_problem(self, layer_id, lower)
        if problem:
            raise OverlayError("lower-id is unusable: %s" % problem, layer=layer_id,
                               path=self.layout.layer(layer_id).lower_id)
        return lower

    def kind_after_apply(self, exists, kind, parent):
        """(kind, fallback) this driver's apply_diff gives a layer of that kind (if it exists) on parent.

        A check run predicts with it what _apply decides: a diff onto a parent
        with root/ makes a root layer by a hardlink copy (no fallback); an
        existing layer keeps its kind and takes the diff by the naive path.
        """
        parent_kind = None
        if parent:
            parent_kind = self.kind(parent) if self.exists(parent) else KIND_ROOT
        if parent_kind == KIND_ROOT and kind != KIND_ROOT:
            return KIND_ROOT, False
        if exists:
            return kind, True
        return (KIND_ROOT, True) if not parent else (KIND_OVERLAY, True)

    def public_metadata(self, layer_id):
        """The metadata a module may hand out: no path into a root/ (its files are hardlinks shared with
        the layers built on it), a root layer seen at its read-only merged/, the layer below by id."""
        paths = self._require(layer_id)
        metadata = self.metadata(layer_id)
        if "RootDir" in metadata:
            return {"MergedDir": paths.merged}
        out = {k: v for k, v in metadata.items() if k != "LowerDir"}
        out["LowerId"] = self.lower_id(layer_id)
        return out

    def metadata(self, layer_id):
        """Seed's GetMetadata: RootDir for root layers, Lower/Upper/Work/MergedDir for overlays."""
        paths = self._require(layer_id)
        if _is_dir(paths.root):
            return {"RootDir": paths.root}
        lower = self.lower_id(layer_id)
        return {
            "LowerDir": self.layout.layer(lower).root,
            "UpperDir": paths.upper,
            "WorkDir": paths.work,
            "MergedDir": paths.merged,
        }

    def _mount(self, layer_id):
        paths = self.layout.layer(layer_id)
        return LayerMount(layer_id, paths, _is_dir(paths.root), lambda: self._own_lower(layer_id),
                          lambda: self.mount_records.source(layer_id))

    def _own_lower(self, layer_id):
        try:
            return self.metadata(layer_id).get("LowerDir")
        except OverlayError:
            return None

    # -- create / remove ----------------------------------------------------

    def _populate(self, tmp_fd, layer_id, parent):
        """The new layer's entries in tmp_fd. The parent's directory belongs to the remapped root (and
        to what runs in its mount), so it is read by fd, never through a name it could swap."""
        if not parent:
            self._mkdir_as(tmp_fd, "root", 0o755)
            return
        parent_paths = self.layout.layer(parent)
        if not self.exists(parent):
            raise OverlayError("parent layer %s does not exist" % parent, layer=layer_id, path=parent_paths.dir)
        parent_fd = self._open_layer_dir(parent)
        try:
            root_st = _lstat_at(parent_fd, "root")
            if root_st is not None and stat.S_ISDIR(root_st.st_mode):
                self._make_overlay_dirs(tmp_fd, stat.S_IMODE(root_st.st_mode))
                self._write_lower_id(tmp_fd, parent)
                return
            lower = self.lower_id(parent)
            self._write_lower_id(tmp_fd, lower)
            try:
                upper_fd = os.open("upper", walk.DIR_FLAGS | os.O_NONBLOCK, dir_fd=parent_fd)
            except OSError as e:
                raise OverlayError("parent has neither root/ nor upper/ (as a directory): %s" % e.strerror,
                                   layer=parent, path=parent_paths.upper)
            try:
                self._make_overlay_dirs(tmp_fd, stat.S_IMODE(os.fstat(upper_fd).st_mode))
                dst_fd = os.open("upper", walk.DIR_FLAGS, dir_fd=tmp_fd)
                try:
                    copy_tree_at(upper_fd, dst_fd, where=parent_paths.upper)
                finally:
                    os.close(dst_fd)
            finally:
                os.close(upper_fd)
        finally:
            os.close(parent_fd)

    def _make_overlay_dirs(self, dir_fd, upper_mode):
        """upper/ (the mode of what it lies on), work/ and merged/ (0700) of a new overlay layer."""
        self._mkdir_as(dir_fd, "upper", upper_mode)
        self._mkdir_as(dir_fd, "work", 0o700)
        self._mkdir_as(dir_fd, "merged", 0o700)

    @staticmethod
    def _write_lower_id(dir_fd, lower):
        fd = os.open("lower-id", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                     dir_fd=dir_fd)
        try:
            os.write(fd, lower.encode())
        finally:
            os.close(fd)

    # -- get / put ----------------------------------------------------------

    def _mount_plan(self, layer_id, paths, readonly_root):
        """root/ for a root layer, unless readonly_root: then it is bind-mounted read-only at merged/, as its
        files are hardlinks shared with the layers built on it. An overlay layer's lower root/ must be there."""
        if _is_dir(paths.root):
            if not readonly_root:
                return paths.root
            return lambda _mount_label, flags: self._bind_root(layer_id, paths, flags)
        lower = self._lower_root(layer_id)
        return lambda mount_label, flags: self._mount_overlay(layer_id, paths, lower, mount_label, flags)

    def _lower_root(self, layer_id):
        """An overlay layer's lowerdir: its lower layer's root/, which must be there."""
        lower = self.metadata(layer_id)["LowerDir"]
        if not _is_dir(lower):
            raise OverlayError("lower layer %s has no root/" % self.lower_id(layer_id), layer=layer_id, path=lower)
        return lower

    # The layer directory belongs to the remapped root, and to what runs in the layer's mount: any
    # name in it may have become a symlink. So every directory a mount names is opened here without
    # following one, checked on its fd, and the mount is given the fds, never the paths.

    def _bind_root(self, layer_id, paths, flags=0):
        layer_fd = self._open_layer_dir(layer_id)
        try:
            root_fd = self._open_part(layer_fd, "root", layer_id, paths.root)
            try:
                mounts.bind_readonly(root_fd, layer_fd, "merged", where=paths.merged, flags=flags)
            finally:
                os.close(root_fd)
        finally:
            os.close(layer_fd)

    def _mount_overlay(self, layer_id, paths, lower, mount_label, flags=0):
        lower_id = self.lower_id(layer_id)
        fds = []
        try:
            fds.append(self._open_layer_dir(lower_id))
            lower_fd = self._open_part(fds[-1], "root", layer_id, lower)
            fds.append(lower_fd)
            fds.append(self._open_layer_dir(layer_id))
            layer_fd = fds[-1]
            upper_fd, work_fd, merged_fd = [self._open_part(layer_fd, name, layer_id, path) for name, path in
                                            (("upper", paths.upper), ("work", paths.work),
                                             ("merged", paths.merged))]
            fds.extend((upper_fd, work_fd, merged_fd))
            shown = {"lowerdir": lower, "upperdir": paths.upper, "workdir": paths.work}
            token = self.mount_records.new(layer_id, shown)
            mounts.mount_overlay(merged_fd, lower_fd, upper_fd, work_fd, token, mount_label, where=paths.merged,
                                 shown=mounts.overlay_options(lower, paths.upper, paths.work), flags=flags)
            made = mounts.made_on(layer_fd, "merged", merged_fd)
            # Overlay in a user namespace needs work/work owned by the remapped root: given by fd,
            # since a name in work/ can be a symlink by now.
            try:
                self._chown_dir_at(work_fd, "work")
            except OSError as e:
                self._undo_mount(layer_fd, "merged", made, paths.merged)
                raise OverlayError("cannot chown work/work: %s" % e.strerror, layer=layer_id, path=paths.work)
        finally:
            for fd in fds:
                os.close(fd)

    def _mount_temp_overlay(self, layer_id, lower_id, lower, upper_at, mount_at):
        """An overlay in root's .strata/tmp on the layer lower_id's root/ (lower, its path): upper/ in the temp
        dir upper_at, work/ and merged/ in the temp dir mount_at, each an (fd, name) pair. Returns the mount's
        id (mounts.made_on), what _unmount_temp unmounts.

        The lower is opened from the home's fd like every layer directory a mount names, the
        rest from the fds of root's temp dirs, never through the home's names (see _open_temp).
        """
        fds = []
        parts = ((upper_at, "upper"), (mount_at, "work"), (mount_at, "merged"))
        upper, work, merged = (self._temp_path(at[1], part) for at, part in parts)
        try:
            fds.append(self._open_layer_dir(lower_id))
            fds.append(self._open_part(fds[0], "root", layer_id, lower))
            fds.extend(os.open(part, syscalls.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=at[0])
                       for at, part in parts)
            mounts.mount_overlay(fds[4], fds[1], fds[2], fds[3], "strata-apply", where=merged,
                                 shown=mounts.overlay_options(lower, upper, work))
            return mounts.made_on(mount_at[0], "merged", fds[4])
        finally:
            for fd in fds:
                os.close(fd)

    # -- apply_diff ---------------------------------------------------------

    def _apply(self, paths, layer_id, parent, tmp, raw, compression, expected_diff_id, progress, recorder=None):
        """The seed's two paths. Parent with root/: a hardlink copy of it gets the diff and is renamed to
        root/; upper/work/merged/lower-id go. Otherwise (the seed's ErrApplyDiffFallback) the naive path:
        the diff goes through a mount of a copy of the layer, which is then exchanged in."""
        parent_root = self.layout.layer(parent).root if parent else None
        if parent_root and _is_dir(parent_root) and not _is_dir(paths.root):
            self._copy_from_layer(parent_root, tmp[0], "root", hardlink=True)
            faults.point("apply.copied")
            result = self._apply_into(tmp, "root", raw, compression, expected_diff_id, layer_id, progress, recorder)
            faults.point("apply.before-rename")
            self._move_into_layer(tmp[0], "root", layer_id, exchange=False)
            faults.point("apply.after-rename")
            self._drop_overlay_parts(paths)
            return self._result(result, False)
        if _is_dir(paths.root):
            self._copy_from_layer(paths.root, tmp[0], "root")
            faults.point("apply.copied")
            result = self._apply_into(tmp, "root", raw, compression, expected_diff_id, layer_id, progress, recorder)
            faults.point("apply.before-rename")
            self._move_into_layer(tmp[0], "root", layer_id, exchange=True)
            return self._result(result, True)
        return self._apply_through_mount(paths, layer_id, tmp, raw, compression, expected_diff_id, progress, recorder)

    def _apply_through_mount(self, paths, layer_id, tmp, raw, compression, expected_diff_id, progress, recorder=None):
        """The naive path: upper/, work/ and merged/ in root's temp dir tmp ((fd, name)), all made by its fd."""
        lower = self.metadata(layer_id)["LowerDir"]
        self._copy_from_layer(paths.upper, tmp[0], "upper")
        faults.point("apply.copied")
        self._mkdir_as(tmp[0], "work", 0o700)
        self._mkdir_as(tmp[0], "merged", 0o700)
        made = self._mount_temp_overlay(layer_id, self.lower_id(layer_id), lower, tmp, tmp)
        try:
            faults.point("apply.mounted")
            result = self._apply_into(tmp, "merged", raw, compression, expected_diff_id, layer_id, progress,
                                      recorder)
        finally:
            self._unmount_temp(tmp, made)
        faults.point("apply.before-rename")
        self._move_into_layer(tmp[0], "upper", layer_id, exchange=True)
        return self._result(result, True)

    def _drop_overlay_parts(self, paths):
        """Remove upper/, work/, merged/ and lower-id of a layer that now has its root/, from the layer's fd.

        Never by path: the layer's owner (the remapped root) can rename the layer and put a
        symlink in its place, to a directory of root's holding names like these.
        """
        layer_fd = self._open_layer_dir(paths.id)
        try:
            for path in (paths.upper, paths.work, paths.merged, paths.lower_id):
                # a lower-id the layer's owner made a directory goes the same way
                remove_tree_at(layer_fd, os.path.basename(path), paths.id)
        finally:
            os.close(layer_fd)

    # -- naive diff driver ----------------------------------------------------
    #
    # The trees are read from the layers' directories (overlay_view.py for an
    # overlay layer), never through a mount: reading changes nothing on the host.

    def _tree(self, layer_id):
        """The layer's tree as TreeView, None for no layer."""
        if not layer_id:
            return None
        paths = self._require(layer_id)
        if _is_dir(paths.root):
            return TreeView(self._checked_dirs(layer_id, [(layer_id, "root", paths.root)]))
        lower = self._lower_root(layer_id)
        return TreeView(self._checked_dirs(layer_id, [(layer_id, "upper", paths.upper),
                                                      (self.lower_id(layer_id), "root", lower)]))

    def _own_dir(self, layer_id):
        paths = self._require(layer_id)
        if _is_dir(paths.root):
            return self._checked_dirs(layer_id, [(layer_id, "root", paths.root)])[0]
        return self._checked_dirs(layer_id, [(layer_id, "upper", paths.upper)])[0]

    def _checked_dirs(self, layer_id, parts):
        """view_dirs.Dir roots of parts [(layer, name, path)], each layer's name opened from the home's fd as a
        mount opens it (a real directory on the home's filesystem); path names it in messages."""
        opened = []
        try:
            for layer, name, path in parts:
                layer_fd = self._open_layer_dir(layer)
                try:
                    opened.append((self._open_part(layer_fd, name, layer_id, path, "read"), path))
                finally:
                    os.close(layer_fd)
        except BaseException:
            for fd, _path in opened:
                os.close(fd)
            raise
        return self._view_roots(opened)

    # -- a new layer with its diff, in one step ----------------------------------

    def _build_applied(self, tmp_fd, temps, layer_id, parent, raw, compression, expected_diff_id, progress,
                       recorder=None):
        """create_applied's layer directory (temps[0], open as tmp_fd) with the diff in; its ApplyDiffResult."""
        tmp = (tmp_fd, temps[0])
        parent_root = self.layout.layer(parent).root if parent else None
        if not parent or _is_dir(parent_root):
            if parent:
                self._copy_from_layer(parent_root, tmp_fd, "root", hardlink=True)
            else:
                self._mkdir_as(tmp_fd, "root", 0o755)
            faults.point("apply.copied")
            applied = self._apply_into(tmp, "root", raw, compression, expected_diff_id, layer_id, progress, recorder)
            return self._result(applied, not parent)
        self._populate(tmp_fd, layer_id, parent)
        temps.append(self._tempdir("apply", layer_id))
        apply_fd = self._open_temp(temps[1])
        try:
            mount_at = (apply_fd, temps[1])
            self._mkdir_as(apply_fd, "work", 0o700)
            self._mkdir_as(apply_fd, "merged", 0o700)
            faults.point("apply.copied")
            made = self._mount_temp_overlay(layer_id, self.lower_id(parent), self._lower_root(parent), tmp, mount_at)
            try:
                faults.point("apply.mounted")
                applied = self._apply_into(mount_at, "merged", raw, compression, expected_diff_id, layer_id, progress,
                                           recorder)
            finally:
                self._unmount_temp(mount_at, made)
        finally:
            os.close(apply_fd)
        return self._result(applied, True)


def _lstat_at(dir_fd, name):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _holds(home_fd, layer_id, name):
    """Whether the layer directory holds name (not followed): a first look, the paths are checked after."""
    try:
        os.stat(layer_id + "/" + name, dir_fd=home_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _is_dir(path):
    """A real directory, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


__all__ = ["Driver"]
