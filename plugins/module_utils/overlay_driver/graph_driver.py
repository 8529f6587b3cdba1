# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every layout's graphdriver shares: GraphDriver, the base of driver.py and overlay2_driver.py.

As moby keeps its overlay/ and overlay2/ drivers side by side behind one
graphdriver interface, the store calls one set of methods and each layout
answers them from its own files. Shared here: the home and its id maps, temp
dirs in <home>/.strata/tmp and their cleanup, the mount-ownership checks and
mount records, remove, the get/put skeleton, apply_diff around a per-layout
_apply, the naive diff over a per-layout tree view (_tree), and create_applied
around a per-layout _build_applied. Every change becomes visible by one
rename: a new layer is built in .strata/tmp and renamed into place.

What a layer is made of (root/ or upper/ in the seed's layout, diff/ and the
short links in overlay2) is said only by the subclasses: kind, metadata,
lower_layer, layer_problem, kind_after_apply, public_metadata, _populate,
_mount_plan, _apply, _build_applied, _tree and _repair.
"""

import contextlib
import errno
import importlib
import os
import stat

from . import faults, fscheck, mounts, syscalls, walk, whiteouts
from .changes import changes_dirs, changes_size, view_changes
from .copy import copy_tree_into
from .errors import OverlayError
from .home import HomeDirs
from .ids import maps_as_dicts, parse_maps, root_pair, validate_layer_id
from .mount_records import MountRecords
from .layout import HomeLayout, make_temp_dir
from .made_merged import MadeMerged
from .removal import fd_path, refuse_mounts_below, remove_tree_at
from .results import ApplyDiffResult, DiffResult
from .view_dirs import Dir
from .space import no_space_advice


# A directory that is still being filled while it is removed: what a lazy unmount leaves behind
# (the mount lives on, detached, while processes use it, and they write into the layer's upper/).
_STILL_WRITTEN = ("the layer is gone from the home, but not all of its files could be deleted: a process still "
                  "writes into them (ENOTEMPTY), most likely through a mount that a lazy unmount detached and that "
                  "lives on while processes use it. Stop that process; a later run deletes what is left here")


def exporter():
    """tar_export.py, loaded by name: Ansible ships a module the module_utils its imports name, and only
    overlay_diff exports (it imports tar_export), so the fleet modules' payloads leave the exporter out
    (test_module_payloads.py)."""
    return importlib.import_module(".tar_export", __package__)


class GraphDriver:
    """One layer home. Call under the home's lock when other runs may act on it (store.py does)."""

    # tar_headers.Limits for the diffs applied (max_layer_size and the like); None: the defaults, no size bound
    layer_limits = None

    # the name a home records for this driver's layout (drivers.py chooses the driver by it)
    LAYOUT = None

    # how the applier writes a tarball's whiteouts (whiteouts.py): into a whole tree, or in overlay's form
    WHITEOUT_FORMAT = whiteouts.DELETE

    # the layout's paths (layout.HomeLayout: the seed's names; a layout with other names subclasses it)
    LAYOUT_PATHS = HomeLayout

    def __init__(self, home, uid_maps=None, gid_maps=None, check=True, load_module=True, writable=True, dirs=None):
        """writable=False opens the home for reading: nothing is created, probed or cleaned.

        uid_maps/gid_maps None means "not given": the maps recorded with the
        home are used (identity for a new home). Maps that differ from the
        recorded ones are refused: they decide who owns everything in the home.
        dirs: the home's HomeDirs when the caller opened it already (drivers.py,
        which read its layout there); the driver closes it.
        """
        self.writable = writable
        self.dirs = dirs if dirs is not None else HomeDirs(home)
        try:
            self._setup(uid_maps, gid_maps, check, load_module)
        except BaseException:
            self.dirs.close()
            raise

    def _setup(self, uid_maps, gid_maps, check, load_module):
        self.uid_maps, self.gid_maps, recorded = self._resolve_maps(uid_maps, gid_maps)
        self.root_uid, self.root_gid = root_pair(self.uid_maps, self.gid_maps)
        self._read_layout()
        # a reader checks nothing: what it reads needs no overlay module and no d_type
        check = check and self.writable
        if check:
            fscheck.require_overlay(load_module)
            fscheck.require_compatible(fscheck.existing_ancestor(self.home), dtype=True)  # d_type: below
        if self.writable:
            self._settle_writable(recorded)
        else:
            self.dirs.settle(self.root_uid, self.root_gid, create=False)
        if check:
            self._require_dtype()
        self.made_merged = MadeMerged(self.dirs, self.layout.state, self.root_uid, self.root_gid)
        self.mount_records = MountRecords(self.dirs, self.layout.state,
                                          lambda layer_id: self.layout.layer(layer_id).upper)

    def _read_layout(self):
        self.layout = self.LAYOUT_PATHS(self.dirs.path)
        self.home = self.layout.home

    def _settle_writable(self, recorded):
        """Create the home (or take it as it is), and record its maps the first time."""
        self.require_writable()
        try:
            self.dirs.settle(self.root_uid, self.root_gid, create=True)
        except OSError as e:
            if e.errno == errno.EROFS:
                raise OverlayError("home is read-only", path=self.home)
            raise OverlayError("cannot create the layer home: %s" % e.strerror, path=e.filename or self.home)
        self._read_layout()
        if not recorded:
            self.dirs.record_maps(maps_as_dicts(self.uid_maps), maps_as_dicts(self.gid_maps))
        if self.dirs.recorded_layout() is None:
            self.dirs.record_layout(self.LAYOUT)

    def _require_dtype(self):
        """d_type, read once from the entries the home holds (.strata at least, once written):
        a probe written into tmp/ would race another run's cleanup, which holds the lock."""
        if fscheck.dtype_without_writing(self.home) is False:
            fscheck.require_compatible(self.home, dtype=False)

    def _resolve_maps(self, uid_maps, gid_maps):
        """(uid maps, gid maps, whether the home has them recorded)."""
        given = (None if uid_maps is None else parse_maps(uid_maps, "uid_maps"),
                 None if gid_maps is None else parse_maps(gid_maps, "gid_maps"))
        recorded = self.dirs.recorded_maps()
        if recorded is None:
            return given[0] or [], given[1] or [], False
        kept = (parse_maps(recorded["uid_maps"], "recorded uid_maps"),
                parse_maps(recorded["gid_maps"], "recorded gid_maps"))
        for what, mine, theirs in (("uid_maps", given[0], kept[0]), ("gid_maps", given[1], kept[1])):
            if mine is not None and maps_as_dicts(mine) != maps_as_dicts(theirs):
                raise OverlayError("the home was set up with %s %s; this call passes %s. The maps decide who owns "
                                   "every file in the home: leave %s out to use the recorded ones"
                                   % (what, maps_as_dicts(theirs) or "[] (identity)", maps_as_dicts(mine) or "[]",
                                      what), path=self.dirs.path)
        return kept[0], kept[1], True

    def require_writable(self):
        """A writer on a read-only home fails with that, not with the first EROFS.

        A check run of a writer calls it too: the real run would fail here.
        """
        probe = self.dirs.path if self.dirs.exists else fscheck.existing_ancestor(self.dirs.path)
        if os.statvfs(probe).f_flag & os.ST_RDONLY:
            raise OverlayError("home is read-only", path=self.dirs.path)

    def close(self):
        self.dirs.close()

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.home)

    # -- home ---------------------------------------------------------------

    def _mkdir_as(self, dir_fd, name, mode):
        """dir_fd/name made, then given to the remapped root with mode, on its own fd (never by path)."""
        os.mkdir(name, 0o700, dir_fd=dir_fd)
        fd = os.open(name, walk.DIR_FLAGS, dir_fd=dir_fd)
        try:
            os.fchown(fd, self.root_uid, self.root_gid)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def _tempdir(self, purpose, layer_id):
        """A new directory in .strata/tmp, made relative to its fd: its name there."""
        self._require_writer()
        return make_temp_dir(self.dirs.tmp_fd, "%s-%s-" % (purpose, layer_id))

    def _open_temp(self, name):
        """A temp dir opened by name from the fd of root's .strata/tmp, without following a symlink.

        Never by path: the path runs through the home, which is the remapped root's. That
        user cannot open .strata, but it can rename it and put a tree of its own at that
        path, with a temp dir's name made a symlink to a root-only directory.
        """
        return os.open(name, walk.DIR_FLAGS, dir_fd=self.dirs.tmp_fd)

    def _temp_path(self, name, *parts):
        """Where a temp dir (or a name in it) is, for messages and a mount's shown options only."""
        return os.path.join(self.layout.tmp, name, *parts)

    def _discard_temp(self, name, layer_id=None):
        """Remove a temp dir, after unmounting what a failed run left mounted in it (found from its fd)."""
        try:
            fd = self._open_temp(name)
        except FileNotFoundError:
            return
        try:
            for mount in mounts.mounts_below(fd_path(fd)):
                mounts.unmount_mount(mount.mount_point, mount.mount_id, detach=True)
        finally:
            os.close(fd)
        remove_tree_at(self.dirs.tmp_fd, name, layer_id)

    def _unmount_temp(self, mount_at, mount_id):
        """Unmount the temp overlay mount_id (mounts.made_on) at merged/ of the temp dir mount_at ((fd, name)),
        only while merged/ leads to that very mount."""
        mounts.unmount_at(mount_at[0], "merged", mount_id, shown=self._temp_path(mount_at[1], "merged"))

    @staticmethod
    def _undo_mount(layer_fd, name, mount_id, shown):
        """Unmount what a mount just made (mount_id from mounts.made_on, through the layer's kept fd) when what
        follows it fails; nothing when no mount was verified there: a name in the layer's directory, which the
        remapped root owns, may have been swapped for a symlink to another mount by then."""
        if mount_id is not None:
            mounts.unmount_at(layer_fd, name, mount_id, shown=shown)

    def _require_writer(self):
        if not self.writable or self.dirs.tmp_fd is None:
            raise OverlayError("the layer home was opened for reading only", path=self.home)

    def status(self):
        """Seed's Status, [["Backing Filesystem", name], ...], plus d_type and the kernel.

        Read by fscheck.host_status, the one reading of these facts, which
        overlay_info reports whole; this is its seed-shaped view.
        """
        facts = fscheck.host_status(self.home)
        return [
            ["Backing Filesystem", facts["backing_fs"]],
            ["Supports d_type", str(facts["d_type"]).lower()],
            ["Kernel", facts["kernel"]],
        ]

    def cleanup(self):
        """Remove what killed runs left behind; no layer changes.

        Temp dirs (unmounting anything mounted inside them first), what the
        layout's own repair finds (_repair), and the marks of merged/
        directories of layers that are gone.
        """
        self._require_writer()
        entries = mounts.read_mountinfo()  # what is under tmp/ is not under any layer: read once for both
        return self._clear_tmp(entries) + self._repair(entries) + self.made_merged.prune()

    def _repair(self, entries):
        """What a run killed half-way left in the layout's own files, put right; the paths removed."""
        return []

    def repairs_due(self):
        """The paths make_repairs would make, read without changing anything (a check run, overlay_info)."""
        return []

    def make_repairs(self):
        """What the layout keeps beside its layers and lost (overlay2's short links), made again from what the
        layers themselves say; the paths made. Every layout has nothing to make unless it says otherwise."""
        return []

    def _clear_tmp(self, entries):
        """Every temp dir, unmounting what is mounted inside first (deepest first).

        One that a process still fills (a removed layer it writes into through a mount
        detached by a lazy unmount) stays for a later run: it must not fail every writer.
        """
        removed = []
        tmp = fd_path(self.dirs.tmp_fd)
        for mount in sorted(mounts.mounts_below(tmp, entries), key=lambda m: -len(m.mount_point)):
            mounts.unmount_mount(mount.mount_point, mount.mount_id, detach=True)
        for name in os.listdir(self.dirs.tmp_fd):
            try:
                remove_tree_at(self.dirs.tmp_fd, name)
            except OSError as e:
                if e.errno != errno.ENOTEMPTY:
                    raise
                continue
            removed.append(os.path.join(self.layout.tmp, name))
        return removed

    # -- queries ------------------------------------------------------------

    def exists(self, layer_id):
        """A real directory (never a symlink) named layer_id in the home."""
        validate_layer_id(layer_id)
        return self.dirs.is_layer_dir(layer_id)

    def layer_ids(self):
        return self.dirs.layer_ids()

    def _require(self, layer_id):
        paths = self.layout.layer(layer_id)
        if not self.exists(layer_id):
            raise OverlayError("layer does not exist", layer=layer_id, path=paths.dir)
        return paths

    # -- what each layout says of its own files -------------------------------

    def kind(self, layer_id):
        """layout.KIND_ROOT (a layer with no layer below it in its directories) or layout.KIND_OVERLAY."""
        raise NotImplementedError

    def metadata(self, layer_id):
        """moby's GetMetadata: the layer's directories by name."""
        raise NotImplementedError

    def public_metadata(self, layer_id):
        """The metadata a module may hand out."""
        raise NotImplementedError

    def lower_layer(self, layer_id):
        """The id of the layer the layer's directories name as the one below it, None for none."""
        raise NotImplementedError

    def layer_problem(self, layer_id):
        """Why the layer's directories cannot be used, None when they can."""
        raise NotImplementedError

    def kind_after_apply(self, exists, kind, parent):
        """(kind, fallback) apply_diff gives a layer of that kind (if it exists) on parent, for check mode."""
        raise NotImplementedError

    def require_child_possible(self, parent, layer_id):
        """OverlayError when the layout cannot build layer_id on parent (an existing, sound layer), said
        before anything is written, so that a check run predicts the failure too. Every layout takes a
        child of a sound layer unless it says otherwise."""

    def require_create_possible(self, layer_id):
        """OverlayError when the layout could not create layer_id in this home as it is (its parent checked
        apart, require_child_possible), said before anything is written, so that a check run predicts the
        failure with the real run's message. Every layout creates a layer unless it says otherwise."""

    def require_mount_possible(self, layer_id):
        """OverlayError when the layout could not mount the layer (an existing, sound one) on this host, said
        without changing anything, so that a check run predicts what get() would refuse. Every layout mounts a
        sound layer unless it says otherwise."""

    def _mount(self, layer_id):
        """The layer's LayerMount: whether a mount at its merged/ is its own."""
        raise NotImplementedError

    def _populate(self, tmp_fd, layer_id, parent):
        """A new layer's entries, made in tmp_fd (root's, in .strata/tmp) before it is renamed into place."""
        raise NotImplementedError

    def _apply(self, paths, layer_id, parent, tmp, raw, compression, expected_diff_id, progress, recorder=None):
        """apply_diff on an existing, unmounted layer; tmp: the run's temp dir in root's .strata/tmp, (fd, name), to be
        reached by its fd only (see _open_temp). Returns an ApplyDiffResult."""
        raise NotImplementedError

    def _build_applied(self, tmp_fd, temps, layer_id, parent, raw, compression, expected_diff_id, progress,
                       recorder=None):
        """create_applied's layer directory (temps[0], open as tmp_fd) with the diff in; its ApplyDiffResult."""
        raise NotImplementedError

    def _tree(self, layer_id):
        """The layer's tree as an overlay_view.TreeView, None for no layer."""
        raise NotImplementedError

    def mount_entry(self, layer_id, entries=None):
        """The live mount at merged/, if any (from mountinfo, never cached)."""
        return mounts.mount_at(self.layout.layer(layer_id).merged, entries)

    def is_mounted(self, layer_id, entries=None):
        entry = self.mount_entry(layer_id, entries)
        return entry is not None and self.owns_mount(layer_id, entry, entries)

    def owns_mount(self, layer_id, entry, entries=None):
        """Whether a mount at merged/ is this layer's own (see layer_mounts.py)."""
        return self._mount(layer_id).owns(entry, entries)

    def foreign_mount_error(self, layer_id, entry, entries=None):
        """The error for a mount at merged/ that is not the layer's own, saying what it is."""
        return self._mount(layer_id).foreign_error(entry, entries)

    def mount_options(self, layer_id, entry):
        """The options of the layer's own overlay as the operator knows them: the recorded directories,
        not the /proc/self/fd paths the mount was made with."""
        options = entry.options_dict()
        record = self.mount_records.read(layer_id)
        if record is not None and record.get("source") == entry.source:
            for key in ("lowerdir", "upperdir", "workdir"):
                if isinstance(record.get(key), str):
                    options[key] = record[key]
        return options

    # -- create / remove ----------------------------------------------------

    def create(self, layer_id, parent=""):
        """Seed's Create, built in a temp dir and renamed into place."""
        paths = self.layout.layer(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
        self._require_writer()
        if os.path.lexists(paths.dir):
            raise self._name_taken(layer_id)
        tmp = self._tempdir("create", layer_id)
        try:
            # built in root's .strata/tmp, out of the remapped root's reach; the finished
            # directory is given to it (by fd) only just before the rename makes it a layer
            tmp_fd = os.open(tmp, walk.DIR_FLAGS, dir_fd=self.dirs.tmp_fd)
            try:
                self._populate(tmp_fd, layer_id, parent)
                undo = self._finish_layer_dir(tmp_fd, layer_id)
            finally:
                os.close(tmp_fd)
            self._rename_in(tmp, layer_id, undo)
            tmp = None
        finally:
            if tmp is not None:
                remove_tree_at(self.dirs.tmp_fd, tmp)

    def _finish_layer_dir(self, tmp_fd, layer_id):
        """The new layer's directory (tmp_fd) made ready for the rename that makes it a layer: given to the
        remapped root. Returns what undoes anything made outside it, for a rename that fails (or None)."""
        os.fchown(tmp_fd, self.root_uid, self.root_gid)
        return None

    def _rename_in(self, tmp_name, layer_id, undo):
        """.strata/tmp/tmp_name renamed to the layer's name, never over anything; undo() when it fails."""
        faults.point("create.before-rename")
        try:
            try:
                syscalls.rename_noreplace(tmp_name, layer_id, self.dirs.tmp_fd, self.dirs.fd)
            except FileExistsError:
                raise self._name_taken(layer_id)
        except BaseException:
            if undo is not None:
                undo()
            raise

    def _name_taken(self, layer_id):
        """Why a new layer cannot take its name: a layer has it, or l/ renamed to it (no layer, HomeDirs.link_dirs)."""
        path = self.layout.layer(layer_id).dir
        if layer_id in self.dirs.link_dirs:
            return OverlayError("the home holds %s, a directory of short links only (l/ renamed), under that name; "
                                "remove it (rm -r %s) to make a layer of that name" % (layer_id, path),
                                layer=layer_id, path=path)
        return OverlayError("layer already exists", layer=layer_id, path=path)

    def _open_layer_dir(self, layer_id):
        try:
            return os.open(layer_id, walk.DIR_FLAGS, dir_fd=self.dirs.fd)
        except OSError as e:
            raise OverlayError("cannot open the layer directory: %s" % e.strerror, layer=layer_id,
                               path=self.layout.layer(layer_id).dir)

    def _copy_from_layer(self, src, dst_fd, dst_name, hardlink=False):
        """A layer's root/ or upper/ (src, a LayerPaths path) copied to dst_name, new in root's temp dir dst_fd.

        The layer's directory is opened from the home's fd: its owner (the remapped root) could
        have swapped any name on the way for a symlink.
        """
        layer_dir, name = os.path.split(src)
        layer_fd = self._open_layer_dir(os.path.basename(layer_dir))
        try:
            copy_tree_into(layer_fd, name, dst_fd, dst_name, hardlink, where=src)
        finally:
            os.close(layer_fd)

    def _raise_if_out_of_space(self, e, layer_id):
        """An apply that filled the home's filesystem (or quota) is reported as that, with what bounds a layer's
        size; any other OSError is left for the caller to raise as it is."""
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OverlayError("no space left on the layer home's filesystem while applying the diff%s"
                               % no_space_advice(self.layer_limits), layer=layer_id, path=self.home)

    def remove(self, layer_id):
        """Seed's Remove; refuses a mounted layer instead of failing half-way with EBUSY."""
        paths = self.layout.layer(layer_id)
        if not self.exists(layer_id):
            return False
        if self.mount_entry(layer_id) is not None:
            raise OverlayError("layer is mounted; unmount it before removing", layer=layer_id, path=paths.merged)
        refuse_mounts_below(paths.dir, layer_id)
        trash = self._tempdir("remove", layer_id)
        trash_fd = os.open(trash, walk.DIR_FLAGS, dir_fd=self.dirs.tmp_fd)
        try:
            os.rename(layer_id, "layer", src_dir_fd=self.dirs.fd, dst_dir_fd=trash_fd)
        finally:
            os.close(trash_fd)
        faults.point("remove.renamed")
        try:
            remove_tree_at(self.dirs.tmp_fd, trash, layer_id)
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                raise
            self.made_merged.forget(layer_id)
            raise OverlayError(_STILL_WRITTEN, layer=layer_id, path=os.path.join(self.layout.tmp, trash))
        self.made_merged.forget(layer_id)
        return True

    # -- get / put ----------------------------------------------------------

    def get(self, layer_id, mount_label="", readonly_root=False, entries=None, flags=0):
        """moby's Get: the layer's own mount at merged/ (made if not there yet), or the path _mount_plan gives.

        readonly_root: a layer the seed's layout keeps as a plain root/ is shown
        at a read-only merged/ instead of root/ (see Driver._mount_plan).
        A missing merged/ is made here (Docker 20.10 removes it in Put) and
        removed again by put(). entries: mountinfo as the caller just read it.
        flags: mount flags of mount_options (nosuid, nodev, noexec) for a new mount.
        """
        paths = self._require(layer_id)
        plan = self._mount_plan(layer_id, paths, readonly_root)
        if isinstance(plan, str):
            return plan
        if self._own_mount_there(layer_id, entries):
            return paths.merged
        self.made_merged.make(layer_id, paths)
        plan(mount_label, flags)
        return paths.merged

    def _mount_plan(self, layer_id, paths, readonly_root):
        """How get() shows the layer: a path that needs no mount, or mount(mount_label, flags) making the
        layer's own mount at merged/. What the mount needs is checked here, before merged/ is made."""
        raise NotImplementedError

    def _own_mount_there(self, layer_id, entries):
        """True when the layer's own mount is at merged/, False when nothing is; a foreign mount is an error."""
        entry = self.mount_entry(layer_id, entries)
        if entry is None:
            return False
        if not self.owns_mount(layer_id, entry, entries):
            raise self.foreign_mount_error(layer_id, entry, entries)
        return True

    # The layer directory belongs to the remapped root, and to what runs in the layer's mount: any
    # name in it may have become a symlink. So every directory a mount names is opened here without
    # following one, checked on its fd, and the mount is given the fds, never the paths.

    def _open_part(self, layer_fd, name, layer_id, path, doing="mount"):
        """layer_fd/name as an O_PATH fd: a real directory on the home's filesystem. doing: what root
        refuses to do with it otherwise ("mount", "read"), for messages."""
        try:
            fd = os.open(name, syscalls.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=layer_fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OverlayError("%s/ is not a directory (a symlink?); refusing to %s it" % (name, doing),
                                   layer=layer_id, path=path)
            raise OverlayError("cannot open %s/: %s" % (name, e.strerror), layer=layer_id, path=path)
        if os.fstat(fd).st_dev != os.fstat(self.dirs.fd).st_dev:
            os.close(fd)
            raise OverlayError("%s/ is on another filesystem than the home (something is mounted there); refusing "
                               "to %s it" % (name, doing), layer=layer_id, path=path)
        return fd

    # The naive diff reads a layer's directories by fd: each directory of a view is opened from the home's fd
    # and checked as a mount checks it, and everything below it is read from its fd (view_dirs.py). A layer
    # directory, diff/, upper/ or root/, or any directory inside them, that the remapped root made a symlink to
    # a root-only directory is never listed, whenever it was swapped.

    @staticmethod
    def _view_roots(opened):
        """view_dirs.Dir roots of opened [(fd, path)] (O_PATH fds, which are closed here)."""
        roots = []
        try:
            for fd, path in opened:
                roots.append(Dir.at_root(fd, path))
        except BaseException:
            for root in roots:
                root.close()
            raise
        finally:
            for fd, _path in opened:
                os.close(fd)
        return roots

    def _chown_dir_at(self, dir_fd, name):
        fd = os.open(name, walk.DIR_FLAGS, dir_fd=dir_fd)
        try:
            os.fchown(fd, self.root_uid, self.root_gid)
        finally:
            os.close(fd)

    def put(self, layer_id, lazy=False, entries=None):
        """Seed's Put: unmount merged/ if this layer's own mount is there; a root layer unmounts its bind.

        lazy detaches the mount (MNT_DETACH) while processes still use it.
        entries: mountinfo as the caller just read it.
        """
        paths = self.layout.layer(layer_id)
        # where mountinfo has it (the home may be named here through a bind-mount alias of the one it was mounted
        # in): that very mount is unmounted, whatever the remapped root renames meanwhile, and only the mount
        # checked. None: no mount, nothing to unmount (merged/ is never unmounted by path).
        entry = self.mount_entry(layer_id, entries)
        if entry is None:
            return
        if not self.owns_mount(layer_id, entry, entries):
            raise self.foreign_mount_error(layer_id, entry, entries)
        try:
            mounts.unmount_mount(entry.mount_point, entry.mount_id, detach=lazy)
        except OverlayError as e:  # the operator asked about a layer, not a path
            raise OverlayError(e.cause, layer=layer_id, path=e.path)
        if self.mount_entry(layer_id) is None:
            self.made_merged.drop(layer_id, paths)
            self.mount_records.forget(layer_id)

    # -- apply_diff ---------------------------------------------------------

    def apply_diff(self, layer_id, parent, raw, compression="auto", expected_diff_id=None, progress=None,
                   recorder=None):
        """moby's ApplyDiff, with the diff verified before it becomes visible: each layout's _apply
        writes it where nothing sees it and moves it in once its digest has been checked."""
        paths = self._require(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
        if self.mount_entry(layer_id) is not None:
            raise OverlayError("layer is mounted; a diff can only be applied to an unmounted layer",
                               layer=layer_id, path=paths.merged)
        tmp = self._tempdir("apply", layer_id)
        try:
            tmp_fd = self._open_temp(tmp)
            try:
                faults.point("apply.started")
                return self._apply(paths, layer_id, parent, (tmp_fd, tmp), raw, compression, expected_diff_id,
                                   progress, recorder)
            finally:
                os.close(tmp_fd)
        except OSError as e:
            self._raise_if_out_of_space(e, layer_id)
            raise
        finally:
            self._discard_temp(tmp, layer_id)

    def _move_into_layer(self, tmp_fd, name, layer_id, exchange):
        """name in root's temp dir tmp_fd renamed to the layer's name, or exchanged with it, by fds.

        The layer's directory is opened from the home's fd without following a symlink: the home
        belongs to the remapped root, which could swap the layer's name for a symlink to, say, /
        and have root's own /root exchanged into tmp (and removed with it)."""
        layer_fd = self._open_layer_dir(layer_id)
        try:
            if exchange:
                syscalls.exchange(name, name, tmp_fd, layer_fd)
            else:
                syscalls.rename_noreplace(name, name, tmp_fd, layer_fd)
        finally:
            os.close(layer_fd)

    def _apply_into(self, tmp, name, raw, compression, expected_diff_id, layer_id, progress, recorder=None):
        """Apply the diff into name (a directory, or a temp overlay's merged/) of root's temp dir tmp ((fd, name)).

        The applier is given the directory's fd, opened from the temp dir's fd (see _open_temp).
        """
        # imported here: the applier and its decompressors are only loaded by runs that apply
        from .tar_apply import LayerApplier  # pylint: disable=import-outside-toplevel
        from .verify import read_layer  # pylint: disable=import-outside-toplevel

        target_fd = os.open(name, walk.DIR_FLAGS, dir_fd=tmp[0])
        try:
            applier = LayerApplier(target_fd, self.uid_maps, self.gid_maps, self.layer_limits,
                                   whiteout_format=self.WHITEOUT_FORMAT, where=self._temp_path(tmp[1], name),
                                   recorder=recorder)
            return read_layer(lambda: applier.apply(raw, compression, progress), layer_id, expected_diff_id)
        finally:
            os.close(target_fd)

    @staticmethod
    def _result(applied, fallback):
        return ApplyDiffResult(applied.size, applied.diff_id, applied.entries, applied.compression, fallback)

    # -- naive diff driver ----------------------------------------------------
    #
    # The trees are read from the layers' directories (overlay_view.py for an
    # overlay layer), never through a mount: reading changes nothing on the host.

    @contextlib.contextmanager
    def _changes(self, layer_id, parent):
        """(changes, the view_dirs.Dir holding the layer's own files), the views' directories open until the
        block ends (the changes' entries are read through them)."""
        new = self._tree(layer_id)
        views = [new]
        try:
            old = self._tree(parent)
            views.append(old)
            if not new.overlay and (old is None or not old.overlay):
                yield changes_dirs(new.roots[0], old.roots[0] if old else None), new.roots[0]
            else:
                yield view_changes(new, old), new.roots[0]
        finally:
            for view in views:
                if view is not None:
                    view.close()

    def changes(self, layer_id, parent=""):
        with self._changes(layer_id, parent) as (changes, _own):
            return changes

    def diff_size(self, layer_id, parent=""):
        return self.changes_and_size(layer_id, parent)[1]

    def changes_and_size(self, layer_id, parent=""):
        """changes() and diff_size() from one walk, for callers that report both."""
        with self._changes(layer_id, parent) as (changes, own):
            return changes, changes_size(own, changes)

    def diff(self, layer_id, parent, out, replay=None):
        """Write the layer's changes against parent as a tarball to out.

        replay: the layer's tar-split record, to write the tarball applied again. Returns a DiffResult.
        """
        if replay is not None:
            replayed = replay.replayed_diff(self, layer_id, parent, out)
            if replayed is not None:
                return replayed
        with self._changes(layer_id, parent) as (changes, own):
            exported = exporter().export_changes(own, changes, out, self.uid_maps, self.gid_maps)
        return DiffResult(exported.diff_id, exported.tar_size, changes, exported.diff_size)

    def _own_dir(self, layer_id):
        """The view_dirs.Dir apply_diff wrote the layer's files into."""
        raise NotImplementedError

    # -- a new layer with its diff, in one step ----------------------------------

    def create_applied(self, layer_id, parent, raw, compression="auto", expected_diff_id=None, progress=None,
                       before_rename=None, recorder=None):
        """create then apply_diff, visible only once the diff is in: one rename of a directory built in tmp.

        Done as two steps, a run killed between them or in the middle of the
        apply leaves a layer of that id that is empty or partial; an image
        names its layers by ChainID, a promise of their content, so no later
        run may find such a layer. Here the layer directory is made in
        .strata/tmp, the diff applied there by the layout's _build_applied
        (a second temp dir may hold what a mount needs) and, once verified, the directory is renamed to its id. before_rename(result)
        runs between the two (the store records the layer there: a record
        without its directory is pruned by the next writer). Returns the
        ApplyDiffResult.
        """
        paths = self.layout.layer(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
            if not self.exists(parent):
                raise OverlayError("parent layer %s does not exist" % parent, layer=layer_id,
                                   path=self.layout.layer(parent).dir)
        self._require_writer()
        if os.path.lexists(paths.dir):
            raise self._name_taken(layer_id)
        temps = [self._tempdir("create", layer_id)]
        try:
            # built in root's .strata/tmp and given to the remapped root (by fd) just before the rename, as create
            tmp_fd = self._open_temp(temps[0])
            try:
                result = self._build_applied(tmp_fd, temps, layer_id, parent, raw, compression, expected_diff_id,
                                             progress, recorder)
                if before_rename is not None:
                    before_rename(result)
                undo = self._finish_layer_dir(tmp_fd, layer_id)
            finally:
                os.close(tmp_fd)
            self._rename_in(temps[0], layer_id, undo)
            temps.pop(0)
            return result
        except OSError as e:
            self._raise_if_out_of_space(e, layer_id)
            raise
        finally:
            for left in temps:
                self._discard_temp(left, layer_id)


def lstat_at(dir_fd, name):
    """dir_fd/name's lstat, None when it is missing."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def is_real_dir(path):
    """A real directory, not a symlink to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


__all__ = ["GraphDriver", "is_real_dir", "lstat_at"]
