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

import contextlib
import errno
import os
import stat

from . import faults, fscheck, mounts, syscalls
from .changes import changes_dirs, changes_size
from .copy import copy_tree
from .errors import OverlayError
from .ids import parse_maps, root_pair, validate_layer_id
from .layout import HomeLayout, make_temp_dir
from .tar_export import export_changes

KIND_ROOT = "root"
KIND_OVERLAY = "overlay"


class ApplyDiffResult:
    __slots__ = ("size", "diff_id", "fallback", "path", "entries", "compression", "dropped_xattrs")

    def __init__(self, size, diff_id, fallback, path, entries=0, compression="none", dropped_xattrs=0):
        self.size = size
        self.diff_id = diff_id
        self.fallback = fallback
        self.path = path
        self.entries = entries
        self.compression = compression
        self.dropped_xattrs = dropped_xattrs


class Driver:
    """One layer home. Call under the home's lock when other runs may act on it (store.py does)."""

    def __init__(self, home, uid_maps=None, gid_maps=None, check=True, load_module=True):
        self.layout = HomeLayout(home)
        self.home = self.layout.home
        self.uid_maps = parse_maps(uid_maps, "uid_maps")
        self.gid_maps = parse_maps(gid_maps, "gid_maps")
        self.root_uid, self.root_gid = root_pair(self.uid_maps, self.gid_maps)
        self.backing_fs = "<unknown>"
        self.supports_dtype = None
        if check:
            fscheck.require_overlay(load_module)
            self.backing_fs = fscheck.backing_fs(fscheck.existing_ancestor(self.home))[0]
            fscheck.require_compatible(fscheck.existing_ancestor(self.home))
        try:
            self._make_home()
        except OSError as e:
            raise OverlayError("cannot create the layer home: %s" % e.strerror, path=e.filename or self.home)
        if check:
            self.supports_dtype = fscheck.supports_dtype(self.home)
            if not self.supports_dtype:
                fscheck.require_compatible(self.home)

    def __repr__(self):
        return "Driver(%r)" % self.home

    # -- home ---------------------------------------------------------------

    def _mkdir_as(self, path, mode):
        os.mkdir(path, 0o700)
        os.chown(path, self.root_uid, self.root_gid)
        os.chmod(path, mode)

    def _make_home(self):
        home = self.home
        missing = []
        while not os.path.isdir(home):
            missing.append(home)
            home = os.path.dirname(home)
        for path in reversed(missing):
            try:
                self._mkdir_as(path, 0o700)
            except FileExistsError:
                pass
        for path in (self.layout.state, self.layout.records, self.layout.tmp):
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass

    def _tempdir(self, purpose, layer_id):
        return make_temp_dir(self.layout.tmp, "%s-%s-" % (purpose, layer_id))

    def status(self):
        """Seed: [["Backing Filesystem", name]]; plus d_type and the kernel."""
        return [
            ["Backing Filesystem", self.backing_fs],
            ["Supports d_type", str(self.supports_dtype).lower()],
            ["Kernel", os.uname().release],
        ]

    def cleanup(self):
        """Remove what killed runs left behind; no layer changes.

        Temp dirs (unmounting anything mounted inside them first), and the
        upper/work/merged/lower-id of a layer that already got its root/ from
        apply_diff (a run killed between the two steps).
        """
        removed = []
        for mount in sorted(mounts.mounts_below(self.layout.tmp), key=lambda m: -len(m.mount_point)):
            mounts.unmount(mount.mount_point, detach=True)
        try:
            names = os.listdir(self.layout.tmp)
        except FileNotFoundError:
            names = []
        for name in names:
            path = os.path.join(self.layout.tmp, name)
            syscalls.remove_tree(path)
            removed.append(path)
        for layer_id in self.layout.layer_ids():
            paths = self.layout.layer(layer_id)
            if os.path.isdir(paths.root) and os.path.lexists(paths.lower_id) and not self.is_mounted(layer_id):
                self._drop_overlay_parts(paths)
                removed.append(paths.dir + "/{upper,work,merged,lower-id}")
        return removed

    # -- queries ------------------------------------------------------------

    def exists(self, layer_id):
        return os.path.isdir(self.layout.layer(layer_id).dir)

    def _require(self, layer_id):
        paths = self.layout.layer(layer_id)
        if not os.path.isdir(paths.dir):
            raise OverlayError("layer does not exist", layer=layer_id, path=paths.dir)
        return paths

    def kind(self, layer_id):
        paths = self._require(layer_id)
        return KIND_ROOT if os.path.isdir(paths.root) else KIND_OVERLAY

    def lower_id(self, layer_id):
        paths = self.layout.layer(layer_id)
        try:
            with open(paths.lower_id) as f:
                value = f.read()
        except OSError as e:
            raise OverlayError("cannot read lower-id: %s" % e.strerror, layer=layer_id, path=paths.lower_id)
        try:
            return validate_layer_id(value.strip(), "lower-id")
        except OverlayError as e:
            raise OverlayError(e.cause, layer=layer_id, path=paths.lower_id)

    def metadata(self, layer_id):
        """Seed's GetMetadata: RootDir for root layers, Lower/Upper/Work/MergedDir for overlays."""
        paths = self._require(layer_id)
        if os.path.isdir(paths.root):
            return {"RootDir": paths.root}
        lower = self.lower_id(layer_id)
        return {
            "LowerDir": self.layout.layer(lower).root,
            "UpperDir": paths.upper,
            "WorkDir": paths.work,
            "MergedDir": paths.merged,
        }

    def mount_entry(self, layer_id, entries=None):
        """The live mount at merged/, if any (from mountinfo, never cached)."""
        return mounts.mount_at(self.layout.layer(layer_id).merged, entries)

    def is_mounted(self, layer_id, entries=None):
        entry = self.mount_entry(layer_id, entries)
        return entry is not None and self.owns_mount(layer_id, entry)

    def owns_mount(self, layer_id, entry):
        """Whether a mount at merged/ is this layer's own overlay (not something mounted over it)."""
        if entry.fstype != "overlay":
            return False
        upper = entry.options_dict().get("upperdir")
        return upper is None or os.path.realpath(upper) == os.path.realpath(self.layout.layer(layer_id).upper)

    # -- create / remove ----------------------------------------------------

    def create(self, layer_id, parent="", mount_label=""):
        """Seed's Create, built in a temp dir and renamed into place."""
        paths = self.layout.layer(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
        if os.path.lexists(paths.dir):
            raise OverlayError("layer already exists", layer=layer_id, path=paths.dir)
        tmp = self._tempdir("create", layer_id)
        try:
            os.chown(tmp, self.root_uid, self.root_gid)
            self._populate(tmp, layer_id, parent)
            faults.point("create.before-rename")
            try:
                syscalls.rename_noreplace(tmp, paths.dir)
            except FileExistsError:
                raise OverlayError("layer already exists", layer=layer_id, path=paths.dir)
            tmp = None
        finally:
            if tmp is not None:
                syscalls.remove_tree(tmp)

    def _populate(self, tmp, layer_id, parent):
        join = os.path.join
        if not parent:
            self._mkdir_as(join(tmp, "root"), 0o755)
            return
        parent_paths = self.layout.layer(parent)
        if not os.path.isdir(parent_paths.dir):
            raise OverlayError("parent layer %s does not exist" % parent, layer=layer_id, path=parent_paths.dir)
        try:
            root_st = os.lstat(parent_paths.root)
        except FileNotFoundError:
            root_st = None
        if root_st is not None:
            self._mkdir_as(join(tmp, "upper"), stat.S_IMODE(root_st.st_mode))
            self._mkdir_as(join(tmp, "work"), 0o700)
            self._mkdir_as(join(tmp, "merged"), 0o700)
            self._write_lower_id(join(tmp, "lower-id"), parent)
            return
        lower = self.lower_id(parent)
        self._write_lower_id(join(tmp, "lower-id"), lower)
        try:
            upper_st = os.lstat(parent_paths.upper)
        except OSError as e:
            raise OverlayError("parent has neither root/ nor upper/: %s" % e.strerror, layer=parent,
                               path=parent_paths.upper)
        self._mkdir_as(join(tmp, "upper"), stat.S_IMODE(upper_st.st_mode))
        self._mkdir_as(join(tmp, "work"), 0o700)
        self._mkdir_as(join(tmp, "merged"), 0o700)
        copy_tree(parent_paths.upper, join(tmp, "upper"))

    @staticmethod
    def _write_lower_id(path, lower):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, lower.encode())
        finally:
            os.close(fd)

    def remove(self, layer_id):
        """Seed's Remove; refuses a mounted layer instead of failing half-way with EBUSY."""
        paths = self.layout.layer(layer_id)
        if not os.path.lexists(paths.dir):
            return False
        if self.mount_entry(layer_id) is not None:
            raise OverlayError("layer is mounted; unmount it before removing", layer=layer_id, path=paths.merged)
        trash = self._tempdir("remove", layer_id)
        os.rename(paths.dir, os.path.join(trash, "layer"))
        faults.point("remove.renamed")
        syscalls.remove_tree(trash)
        return True

    # -- get / put ----------------------------------------------------------

    def get(self, layer_id, mount_label=""):
        """Seed's Get: root/ for root layers, otherwise mount merged/ (if not already) and return it."""
        paths = self._require(layer_id)
        if os.path.isdir(paths.root):
            return paths.root
        lower = self.metadata(layer_id)["LowerDir"]
        if not os.path.isdir(lower):
            raise OverlayError("lower layer %s has no root/" % self.lower_id(layer_id), layer=layer_id, path=lower)
        entry = self.mount_entry(layer_id)
        if entry is not None:
            if self.owns_mount(layer_id, entry):
                return paths.merged
            raise OverlayError("a different mount (%s from %s) is at merged/" % (entry.fstype, entry.source),
                               layer=layer_id, path=paths.merged)
        mounts.mount_overlay(paths.merged, lower, paths.upper, paths.work, mount_label)
        # Overlay in a user namespace needs work/work owned by the remapped root.
        try:
            os.chown(os.path.join(paths.work, "work"), self.root_uid, self.root_gid)
        except OSError as e:
            mounts.unmount(paths.merged)
            raise OverlayError("cannot chown work/work: %s" % e.strerror, layer=layer_id, path=paths.work)
        return paths.merged

    def put(self, layer_id, lazy=False):
        """Seed's Put: unmount merged/ if it is mounted; root layers have nothing to unmount.

        lazy detaches the mount (MNT_DETACH) while processes still use it.
        """
        paths = self.layout.layer(layer_id)
        entry = self.mount_entry(layer_id)
        if entry is None:
            return False
        if not self.owns_mount(layer_id, entry):
            raise OverlayError("a different mount (%s from %s) is at merged/" % (entry.fstype, entry.source),
                               layer=layer_id, path=paths.merged)
        mounts.unmount(paths.merged, detach=lazy)
        return True

    @contextlib.contextmanager
    def view(self, layer_id):
        """The layer's filesystem for reading; mounts it for the duration if it was not mounted."""
        if not layer_id:
            yield None
            return
        was_mounted = self.is_mounted(layer_id)
        path = self.get(layer_id)
        try:
            yield path
        finally:
            if not was_mounted and path == self.layout.layer(layer_id).merged:
                self.put(layer_id)

    # -- apply_diff ---------------------------------------------------------

    def apply_diff(self, layer_id, parent, raw, compression="auto", expected_diff_id=None, progress=None):
        """Seed's ApplyDiff, with the diff verified before it becomes visible.

        Parent with root/: a hardlink copy of it gets the diff and is renamed
        to root/; upper/work/merged/lower-id go. Otherwise (the seed's
        ErrApplyDiffFallback) the naive path: the diff goes through a mount of
        a copy of the layer, which is then exchanged in.
        """
        paths = self._require(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
        if self.mount_entry(layer_id) is not None:
            raise OverlayError("layer is mounted; a diff can only be applied to an unmounted layer",
                               layer=layer_id, path=paths.merged)
        parent_root = self.layout.layer(parent).root if parent else None
        tmp = self._tempdir("apply", layer_id)
        try:
            return self._apply(paths, layer_id, parent_root, tmp, raw, compression, expected_diff_id, progress)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OverlayError("no space left on the layer home's filesystem while applying the diff",
                                   layer=layer_id, path=self.home)
            raise
        finally:
            for mount in mounts.mounts_below(tmp):
                mounts.unmount(mount.mount_point, detach=True)
            syscalls.remove_tree(tmp)

    def _apply(self, paths, layer_id, parent_root, tmp, raw, compression, expected_diff_id, progress):
        """The seed's two paths; see apply_diff."""
        if parent_root and os.path.isdir(parent_root) and not os.path.isdir(paths.root):
            target = os.path.join(tmp, "root")
            copy_tree(parent_root, target, hardlink=True)
            faults.point("apply.copied")
            result = self._apply_into(target, raw, compression, expected_diff_id, layer_id, progress)
            faults.point("apply.before-rename")
            syscalls.rename_noreplace(target, paths.root)
            faults.point("apply.after-rename")
            self._drop_overlay_parts(paths)
            return self._result(result, False, paths.root)
        if os.path.isdir(paths.root):
            target = os.path.join(tmp, "root")
            copy_tree(paths.root, target)
            faults.point("apply.copied")
            result = self._apply_into(target, raw, compression, expected_diff_id, layer_id, progress)
            faults.point("apply.before-rename")
            syscalls.exchange(target, paths.root)
            return self._result(result, True, paths.root)
        return self._apply_through_mount(paths, layer_id, tmp, raw, compression, expected_diff_id, progress)

    def _apply_through_mount(self, paths, layer_id, tmp, raw, compression, expected_diff_id, progress):
        lower = self.metadata(layer_id)["LowerDir"]
        upper = os.path.join(tmp, "upper")
        work = os.path.join(tmp, "work")
        merged = os.path.join(tmp, "merged")
        copy_tree(paths.upper, upper)
        self._mkdir_as(work, 0o700)
        self._mkdir_as(merged, 0o700)
        mounts.mount_overlay(merged, lower, upper, work)
        try:
            faults.point("apply.mounted")
            result = self._apply_into(merged, raw, compression, expected_diff_id, layer_id, progress)
        finally:
            mounts.unmount(merged)
        faults.point("apply.before-rename")
        syscalls.exchange(upper, paths.upper)
        return self._result(result, True, paths.merged)

    def _apply_into(self, target, raw, compression, expected_diff_id, layer_id, progress):
        # imported here: the applier and its decompressors are only loaded by runs that apply
        from .tar_apply import LayerApplier  # pylint: disable=import-outside-toplevel

        applier = LayerApplier(target, self.uid_maps, self.gid_maps)
        try:
            result = applier.apply(raw, compression, progress)
        except OverlayError as e:
            raise OverlayError(e.cause, layer=layer_id, path=e.path)
        if expected_diff_id and result.diff_id != expected_diff_id:
            raise OverlayError("diff_id mismatch: expected %s, the layer is %s" % (expected_diff_id, result.diff_id),
                               layer=layer_id)
        return result

    @staticmethod
    def _result(applied, fallback, path):
        return ApplyDiffResult(applied.size, applied.diff_id, fallback, path, applied.entries,
                               applied.compression, applied.dropped_xattrs)

    @staticmethod
    def _drop_overlay_parts(paths):
        for path in (paths.upper, paths.work, paths.merged):
            syscalls.remove_tree(path)
        try:
            os.unlink(paths.lower_id)
        except FileNotFoundError:
            pass

    # -- naive diff driver ----------------------------------------------------

    def changes(self, layer_id, parent=""):
        with self.view(layer_id) as layer_fs, self.view(parent) as parent_fs:
            return changes_dirs(layer_fs, parent_fs)

    def diff_size(self, layer_id, parent=""):
        return self.changes_and_size(layer_id, parent)[1]

    def changes_and_size(self, layer_id, parent=""):
        """changes() and diff_size() from one walk, for callers that report both."""
        with self.view(layer_id) as layer_fs, self.view(parent) as parent_fs:
            changes = changes_dirs(layer_fs, parent_fs)
            return changes, changes_size(layer_fs, changes)

    def diff(self, layer_id, parent, out):
        """Write the layer's changes against parent as a tarball to out.

        Returns (diff_id, tar bytes, changes, diff_size).
        """
        with self.view(layer_id) as layer_fs, self.view(parent) as parent_fs:
            changes = changes_dirs(layer_fs, parent_fs)
            exported = export_changes(layer_fs, changes, out, self.uid_maps, self.gid_maps)
        return exported.diff_id, exported.tar_size, changes, exported.diff_size


__all__ = ["Driver", "ApplyDiffResult", "KIND_ROOT", "KIND_OVERLAY"]
