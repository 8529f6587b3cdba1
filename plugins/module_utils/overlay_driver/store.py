# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layer store: the driver plus what the seed's commit moved above it.

Reference counts become named holders persisted per layer, because every
Ansible task is a new process and mounts outlive processes. The live truth
of what is mounted is always mountinfo; holders recorded while the mount is
gone (after a reboot) is the "stale" state, repaired by mount(). Every
operation holds the home's lock and first clears what killed runs left.
"""

import contextlib
import os
import re
import stat

from . import faults, layer_state, mounts, records, syscalls
from . import mount_options as mount_options_mod
from .drivers import open_driver
from .errors import OverlayError
from .image_records import ImageRecords
from .ids import validate_diff_id, validate_holder, validate_layer_id
from .layout import DEFAULT_HOME, KIND_OVERLAY, KIND_ROOT
from .locking import DEFAULT_TIMEOUT, HomeLock
from .results import ApplyDiffResult, ApplyOutcome, ExportOutcome, Outcome

DEFAULT_HOLDER = "ansible"


_CHAIN_ID = re.compile(r"^[0-9a-f]{64}$")  # how overlay_image names the layers it stages


def _unlinkable_at(dir_fd, name):
    """Whether dir_fd/name is there and no directory, looked at without following a link (unlink follows none)."""
    try:
        return not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


class LayerStore:
    """read_only=True: a reader (overlay_info) or a check run. It creates nothing (no home, no
    .strata, no lock file, no probe), cleans nothing, and takes a shared lock only if the lock file
    exists; write operations then only answer in check mode."""

    def __init__(self, home=DEFAULT_HOME, uid_maps=None, gid_maps=None, lock_timeout=DEFAULT_TIMEOUT,
                 check=True, load_module=True, read_only=False, layout=None):
        """layout: the layout a new home is written in; None (not given) takes the home's (drivers.py)."""
        self.read_only = read_only
        self.driver = open_driver(home, layout, uid_maps, gid_maps, check=check, load_module=load_module,
                                  writable=not read_only)
        self.layout = self.driver.layout
        self.home = self.driver.home
        self._dirs = self.driver.dirs
        self._lock = HomeLock(self.layout.lock, lock_timeout, dir_fd=self._dirs.state_fd, shared=read_only)
        self._cleaned = read_only
        # what the layout lost beside its layers (overlay2's short links): made again by a writer when it takes
        # the lock, or (read_only) what a writer would make; either way, what the run reports it changed
        self.repaired = []

    @classmethod
    def for_check_run(cls, home, uid_maps=None, gid_maps=None, layout=None):
        """A writer's check run: the home opened for reading (it creates, probes and cleans nothing),
        failing on a read-only home as the real run would."""
        store = cls(home, uid_maps, gid_maps, read_only=True, layout=layout)
        try:
            store.driver.require_writable()
        except BaseException:
            store.close()
            raise
        return store

    def close(self):
        self.driver.close()

    @contextlib.contextmanager
    def locked(self):
        with self._lock:
            if not self._cleaned:
                self.driver.cleanup()
                self._prune_orphan_records()
                self.repaired = self.driver.make_repairs()
                self._cleaned = True
            elif self.read_only:
                self.repaired = self.driver.repairs_due()
            yield self

    def _prune_orphan_records(self):
        """Records of layers that are gone, and record temp files of killed writes: never a directory. In a
        .strata an earlier version gave the remapped root, that user could put a directory under such a name
        (a writer takes the directory back with it): unlinking it failed every writer."""
        fd = self._dirs.records_fd
        for suffix in (".json", records.TAR_SPLIT_SUFFIX):
            for layer_id in records.recorded_ids(fd, suffix):
                try:
                    validate_layer_id(layer_id)
                except OverlayError:
                    continue
                if not self.driver.exists(layer_id) and _unlinkable_at(fd, layer_id + suffix):
                    os.unlink(layer_id + suffix, dir_fd=fd)
        for name in os.listdir(fd):
            if name.startswith(".tmp-") and _unlinkable_at(fd, name):
                os.unlink(name, dir_fd=fd)

    def _require_writer(self, layer_id=None):
        if self.read_only:
            raise OverlayError("the layer home was opened for reading only", layer=layer_id, path=self.home)

    # -- records --------------------------------------------------------------

    def record(self, layer_id):
        validate_layer_id(layer_id)
        return records.load_record(self._dirs.records_fd, layer_id, self.layout.records)

    def save(self, record):
        self._require_writer(record.layer_id)
        records.save_record(self._dirs.records_fd, record)

    def _delete_record(self, layer_id):
        records.delete_record(self._dirs.records_fd, layer_id)

    def parent_of(self, layer_id, record=None):
        """The recorded parent, else the layer below as the layer's directories name it.

        A layer another tool made (Docker) has no recorded parent, also once a
        holder is recorded for it: the layer its files name (an overlay's
        lower-id) is then the parent it can know. A root layer's parent that
        only Docker's layer database knows is "".
        """
        record = record or self.record(layer_id)
        if record.exists_on_disk and record.parent:
            return record.parent
        return self.driver.lower_layer(layer_id) or ""

    def children_of(self, layer_id):
        out = []
        for other in self.driver.layer_ids():
            if other == layer_id:
                continue
            try:
                parent = self.record(other).parent
            except OverlayError:  # a damaged record: its directories may still say what it is built on
                parent = None
            if parent == layer_id or self._lower_or_none(other) == layer_id:
                out.append(other)
        return out

    # -- state ----------------------------------------------------------------

    def state(self, layer_id, entries=None):
        """What a module reports about one layer; exists=False when it is not there."""
        validate_layer_id(layer_id)
        if not self.driver.exists(layer_id):
            return layer_state.absent(layer_id)
        entries = mounts.read_mountinfo() if entries is None else entries
        mount = self.driver.mount_entry(layer_id, entries)
        try:
            record = self.record(layer_id)
        except OverlayError as e:
            return layer_state.damaged(layer_id, e.cause, self._lower_or_none(layer_id), None, mount,
                                       self._merged(layer_id))
        problem = self.driver.layer_problem(layer_id)
        if problem:
            return layer_state.damaged(layer_id, problem, record.parent or self._lower_or_none(layer_id), record,
                                       mount, self._merged(layer_id))
        kind = self.driver.kind(layer_id)
        mounted = mount is not None and self.driver.owns_mount(layer_id, mount, entries)
        options = self.driver.mount_options(layer_id, mount) if mounted else None
        return layer_state.present(layer_id, kind, self.parent_of(layer_id, record), self.driver.metadata(layer_id),
                                   record, mount, mounted, self._merged(layer_id), options,
                                   public_metadata=self.driver.public_metadata(layer_id))

    def missing_layer(self, layer_id):
        """The error for a layer that is not there; a home that is not there either is named."""
        if not self._dirs.exists:
            return OverlayError("the layer home %s does not exist (nothing was created)" % self.home,
                                layer=layer_id, path=self.home)
        return OverlayError("layer does not exist", layer=layer_id, path=self.layout.layer(layer_id).dir)

    def _merged(self, layer_id):
        return self.layout.layer(layer_id).merged

    def _lower_or_none(self, layer_id):
        try:
            return self.driver.lower_layer(layer_id)
        except OverlayError:
            return None

    def require_sound(self, state):
        """A damaged layer (state["problem"]) is refused by every operation that needs it, naming it and
        the way out; the rest of the home works as before."""
        if state.get("problem"):
            raise OverlayError("the layer is damaged: %s (state: absent with force: true removes it)"
                               % state["problem"], layer=state["id"], path=self.layout.layer(state["id"]).dir)

    def layers(self):
        entries = mounts.read_mountinfo()
        return [self.state(layer_id, entries) for layer_id in self.driver.layer_ids()]

    # -- operations -------------------------------------------------------------

    def _check_parent(self, layer_id, parent):
        existing = self.parent_of(layer_id)
        if (existing or "") != (parent or ""):
            raise OverlayError("exists with parent %s, not %s" % (existing or "(none)", parent or "(none)"),
                               layer=layer_id, path=self.layout.layer(layer_id).dir)

    def _check_new_parent(self, layer_id, parent, check_mode):
        # In check mode the parent may be one an earlier task would have created.
        if not parent:
            return
        if self.driver.exists(parent):
            problem = self.state(parent)["problem"]
            if problem:
                raise OverlayError("parent layer %s is damaged: %s" % (parent, problem), layer=layer_id,
                                   path=self.layout.layer(parent).dir)
            self.driver.require_child_possible(parent, layer_id)
        elif not check_mode:
            raise OverlayError("parent layer %s does not exist" % parent, layer=layer_id,
                               path=self.layout.layer(parent).dir)

    def _check_new_layer(self, layer_id, parent, check_mode):
        """What a new layer's creation checks before writing: its parent, then what the layout needs (overlay2's
        l/), so that a check run fails as the real run does, with its message."""
        self._check_new_parent(layer_id, parent, check_mode)
        self.driver.require_create_possible(layer_id)

    def ensure_present(self, layer_id, parent="", check_mode=False):
        """Present: create if missing. Returns an Outcome."""
        validate_layer_id(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
        before = self.state(layer_id)
        if before["exists"]:
            self.require_sound(before)
            self._check_parent(layer_id, parent)
            return Outcome(False, before, before)
        self._check_new_layer(layer_id, parent, check_mode)
        if check_mode:
            return Outcome(True, before, layer_state.new(layer_id, parent, self._merged(layer_id)))
        self._create(layer_id, parent)
        return Outcome(True, before, self.state(layer_id))

    def _create(self, layer_id, parent):
        self._require_writer(layer_id)
        self.driver.create(layer_id, parent)
        try:
            record = self.record(layer_id)
            record.parent = parent or None
            self.save(record)
        except BaseException:
            # a layer whose parent could not be recorded (no space, a read-only records directory,
            # a signal) is not left behind: the next run creates it whole
            try:
                self.driver.remove(layer_id)
            except OSError:
                pass  # the error that stopped the record is the one to report
            raise

    def ensure_absent(self, layer_id, force=False, check_mode=False):
        """Absent: refuses while holders exist (unless force) or children depend on it.

        A damaged layer goes with force too: its holders may be unknown (a record that cannot be read).
        """
        validate_layer_id(layer_id)
        before = self.state(layer_id)
        if not before["exists"]:
            return Outcome(False, before, before)
        if not force:
            self.require_sound(before)
        self._refuse_removal(layer_id, before["holders"], force)
        after = layer_state.absent(layer_id)
        if not check_mode:
            self._require_writer(layer_id)
            self._remove(layer_id)
        return Outcome(True, before, after)

    def _refuse_removal(self, layer_id, holders, force):
        """A held layer goes only with force; a layer others are built on, never."""
        paths = self.layout.layer(layer_id)
        if holders and not force:
            raise OverlayError("still held by %s (force: true removes it anyway)" % ", ".join(holders),
                               layer=layer_id, path=paths.dir)
        children = self.children_of(layer_id)
        if children:
            raise OverlayError("layers %s are built on it; remove them first" % ", ".join(children),
                               layer=layer_id, path=paths.dir)

    def _remove(self, layer_id):
        self.driver.put(layer_id)
        try:
            self.driver.remove(layer_id)
        finally:
            if not self.driver.exists(layer_id):  # out of the home, even if its files were not all deleted
                self._delete_record(layer_id)

    def ensure_mounted(self, layer_id, holder=DEFAULT_HOLDER, mount_label="", check_mode=False, mount_options=None):
        """Mounted: add the holder, mount if needed. Returns an Outcome.

        mount_options (nosuid, nodev, noexec): None means the layer's recorded ones, else the
        careful default (mount_options.default); a layer already mounted with others fails.
        """
        validate_layer_id(layer_id)
        validate_holder(holder, layer_id)
        wanted = mount_options_mod.validate(mount_options, layer_id)
        entries = mounts.read_mountinfo()
        before = self.state(layer_id, entries)
        if not before["exists"]:
            if check_mode:  # an earlier task would have created it; its parent and kind are that task's to say
                return Outcome(True, before, layer_state.new(layer_id, "", self._merged(layer_id), holders=[holder],
                                                             mounted=True, kind=None))
            raise self.missing_layer(layer_id)
        self.require_sound(before)
        record = self.record(layer_id)
        changed = holder not in record.holders
        needs_mount = not before["mounted"]
        if needs_mount and before["foreign_mount"]:
            raise self._foreign_mount_error(layer_id, entries)
        if not needs_mount and wanted is not None:
            self._require_mounted_with(layer_id, wanted, entries)
        if not (changed or needs_mount):
            return Outcome(False, before, before)
        readonly = self._must_mount_readonly(layer_id, record) if needs_mount else None
        options = wanted if wanted is not None else self.mount_options_of(layer_id, record, before["kind"], readonly)
        if check_mode:
            if needs_mount:
                self.driver.require_mount_possible(layer_id)
            after = layer_state.held(before, record.holders | {holder},
                                     None if readonly is None else readonly or before["kind"] == KIND_ROOT)
            if needs_mount:
                after["mount_options"] = list(options)
            return Outcome(True, before, after)
        self._require_writer(layer_id)
        self._mount_and_hold(record, holder if changed else None, needs_mount, mount_label, entries,
                             options if needs_mount else None, readonly)
        return Outcome(True, before, self.state(layer_id))

    def _must_mount_readonly(self, layer_id, record):
        """Whether the layer's own mount must be read-only (DESIGN: immutability holds the same way on both
        layouts): it holds an applied diff (an image layer, or one overlay_apply_diff wrote), which its
        diff_id names, or layers are built on it (its children), which in the overlay2 layout stack on its
        files. A writable view of it is a child on top. A root layer of the seed's layout is read-only
        whatever this says: its files are hardlinks shared with the layers built on it (driver.get's
        readonly_root)."""
        return bool(record.diff_id) or bool(self.children_of(layer_id))

    def _get(self, layer_id, mount_label, entries, options, readonly):
        """The driver's get with the task's mount options, read-only when readonly (_must_mount_readonly)."""
        flags = mount_options_mod.flags(options) | (syscalls.MS_RDONLY if readonly else 0)
        self.driver.get(layer_id, mount_label, readonly_root=True, entries=entries, flags=flags)

    def mount_options_of(self, layer_id, record, kind, readonly=None):
        """The options a mount of the layer gets when the task names none: those recorded with it,
        else nosuid,nodev for a writable layer whose chain comes from an image (readonly: whether
        the mount is read-only, _must_mount_readonly's answer when the caller has it)."""
        if record.mount_options is not None:
            return record.mount_options
        if readonly is None:
            readonly = self._must_mount_readonly(layer_id, record)
        return mount_options_mod.default(kind == KIND_OVERLAY and not readonly,
                                         self._chain_from_image(layer_id, record))

    def _chain_from_image(self, layer_id, record):
        """Whether the layer or one below it was staged from an image: recorded with the home by
        overlay_image, or named as overlay_image names its layers (a ChainID's hex)."""
        staged = set()
        try:
            for image in ImageRecords(self.driver.dirs).all():
                staged.update(image.layers)
        except OverlayError:
            return True  # image records that cannot be read: assume the worst
        seen = set()
        current = layer_id
        while current and current not in seen and len(seen) < 1024:
            if current in staged or _CHAIN_ID.match(current):
                return True
            seen.add(current)
            try:
                current = self.parent_of(current, record if current == layer_id else None)
            except OverlayError:
                return True  # a chain that cannot be followed: assume the worst
        return False

    def _require_mounted_with(self, layer_id, wanted, entries):
        entry = self.driver.mount_entry(layer_id, entries)
        live = mount_options_mod.live(entry) if entry is not None else []
        if live != wanted:
            raise OverlayError("mounted with mount_options %s; this task asks for %s. Unmount it (every holder) "
                               "to mount it with other options" % (live or "[]", wanted or "[]"),
                               layer=layer_id, path=self._merged(layer_id))

    def _mount_and_hold(self, record, holder, needs_mount, mount_label, entries, options=None, readonly=False):
        """Mount (when needs_mount, with options, read-only when readonly), then record holder (when not None)
        and the options; a mount nobody holds is not left behind by an interrupted run."""
        layer_id = record.layer_id
        if needs_mount:
            # a root layer is bind-mounted read-only: its files are shared with the layers built on it
            self._get(layer_id, mount_label, entries, options, readonly)
        try:
            if needs_mount:
                faults.point("mount.mounted")
                record.mount_options = list(options or [])
            if holder is not None:
                record.holders.add(holder)
            if holder is not None or (needs_mount and record.holders):
                self.save(record)
        except BaseException:
            if needs_mount and not self.record(layer_id).holders:
                self.driver.put(layer_id)
            raise

    def ensure_unmounted(self, layer_id, holder=DEFAULT_HOLDER, force=False, check_mode=False, lazy=False):
        """Unmounted: drop the holder; unmount when none is left (or force). Returns an Outcome.

        lazy: detach the mount even while processes use it (MNT_DETACH).
        """
        validate_layer_id(layer_id)
        validate_holder(holder, layer_id)
        entries = mounts.read_mountinfo()
        before = self.state(layer_id, entries)
        if not before["exists"]:
            return Outcome(False, before, before)
        self.require_sound(before)
        record = self.record(layer_id)
        if force:
            record.holders.clear()
        else:
            record.holders.discard(holder)
        will_unmount = before["mounted"] and not record.holders
        if set(before["holders"]) == record.holders and not will_unmount:
            return Outcome(False, before, before)
        if before["foreign_mount"] and not record.holders:
            # the last holder would go while another mount sits at merged/ (over the layer's own one,
            # or its root/ bound writable): nobody would hold, or see, what is left mounted
            raise self._foreign_mount_error(layer_id, entries)
        if check_mode:
            return Outcome(True, before, layer_state.released(before, record.holders, will_unmount))
        self._require_writer(layer_id)
        self._release(record, will_unmount, lazy, entries)
        return Outcome(True, before, self.state(layer_id))

    def _release(self, record, will_unmount, lazy, entries):
        """Unmount (when the last holder goes), then record the holders left."""
        if will_unmount:
            self.driver.put(record.layer_id, lazy=lazy, entries=entries)
            faults.point("unmount.unmounted")
        self.save(record)

    def _foreign_mount_error(self, layer_id, entries):
        return self.driver.foreign_mount_error(layer_id, self.driver.mount_entry(layer_id, entries), entries)

    def restore(self, check_mode=False, failures=None):
        """Mount every stale layer again (after a reboot); returns the ids mounted.

        A layer that cannot be mounted does not stop the others: with a
        failures list, each (id, message) is appended to it; without one, the
        first failure is raised after every other layer was tried.
        """
        done = []
        errors = []
        entries = mounts.read_mountinfo()
        for layer_id in self.driver.layer_ids():
            try:  # a damaged record, or a mount that fails, keeps only its own layer down
                if self._restore_one(layer_id, entries, check_mode):
                    done.append(layer_id)
            except OverlayError as e:
                errors.append((layer_id, e))
        if failures is not None:
            failures.extend((layer_id, e.message) for layer_id, e in errors)
        elif errors:
            raise errors[0][1]
        return done

    def _restore_one(self, layer_id, entries, check_mode):
        """Mount a stale layer again; True when it was stale. A damaged layer is reported, not skipped."""
        state = self.state(layer_id, entries)
        if state["problem"]:
            raise OverlayError(state["problem"], layer=layer_id, path=self.layout.layer(layer_id).dir)
        if not state["stale"]:
            return False
        if not check_mode:
            record = self.record(layer_id)
            readonly = self._must_mount_readonly(layer_id, record)
            self._get(layer_id, "", entries, self.mount_options_of(layer_id, record, state["kind"], readonly),
                      readonly)
        return True

    def apply_diff(self, layer_id, parent, opener, diff_id=None, compression="auto", check_mode=False):
        """One diff per layer. Returns an ApplyOutcome.

        In check mode a diff the layer does not have yet is read and verified
        (format, names, digest) without writing, so the outcome carries the
        diff_id and size the real run would record, or the error it would raise.
        """
        before = self._apply_target(layer_id, parent, diff_id, check_mode)
        if before["diff_id"]:
            if diff_id is None:
                # imported here: the decompressors are only loaded by runs that read a tarball
                from .hashing_reader import file_digest  # pylint: disable=import-outside-toplevel

                with opener() as raw:
                    diff_id = file_digest(raw, compression)
            return self._same_diff(layer_id, before, diff_id)
        if check_mode:
            return self._verify_only(layer_id, parent, opener, diff_id, compression, before)
        self._require_writer(layer_id)
        created = not before["exists"]
        if created:
            self._create(layer_id, parent)
        try:
            # a layer made here holds nothing but the diff, which exports can replay
            result = self._apply_and_record(layer_id, parent, opener, diff_id, compression, tar_split=created)
        except BaseException:
            if created:
                self._undo_create(layer_id)
            raise
        return ApplyOutcome(True, before, self.state(layer_id), result)

    def _apply_and_record(self, layer_id, parent, opener, diff_id, compression, tar_split=False):
        recorder = self.tar_split_recorder() if tar_split else None
        with opener() as raw:
            result = self.driver.apply_diff(layer_id, parent, raw, compression, diff_id, recorder=recorder)
        faults.point("apply.before-record")
        record = self.record(layer_id)
        record.parent = parent or None
        record.diff_id = result.diff_id
        record.size = result.size
        self.save(record)
        self.save_tar_split(layer_id, recorder, result.diff_id)
        return result

    @staticmethod
    def tar_split_recorder():
        """A tar_split.Recorder, if the running module ships tar_split."""
        tar_split = records.tar_split_module()
        return tar_split.Recorder() if tar_split is not None else None

    def save_tar_split(self, layer_id, recorder, diff_id):
        """What recorder kept of the tarball applied, beside the layer's record, for diff."""
        if recorder is None:
            return
        tar_split = records.tar_split_module()
        data = recorder.finish(diff_id)
        if data is None:
            tar_split.remove(self._dirs.records_fd, layer_id)
        else:
            tar_split.save(self._dirs.records_fd, layer_id, data)

    def diff(self, layer_id, parent, out):
        """The driver's diff, replaying the tarball applied when parent is the one it was applied on."""
        record = self.record(layer_id)
        replay = None
        tar_split = records.tar_split_module()
        if tar_split is not None and record.diff_id and (parent or None) == (record.parent or None):
            replay = tar_split.open_record(self._dirs.records_fd, layer_id, record.diff_id)
        try:
            return self.driver.diff(layer_id, parent, out, replay=replay)
        finally:
            if replay is not None:
                replay.close()

    def find_applied(self, layer_id, parent, diff_id):
        """apply_diff's outcome when the layer already has diff_id, answered from its record
        without reading the diff; None when the diff is still to be applied.

        Raises what apply_diff would refuse the diff with before reading it.
        """
        before = self._apply_target(layer_id, parent, diff_id, check_mode=True)
        if before["diff_id"]:
            return self._same_diff(layer_id, before, diff_id)
        return None

    def _apply_target(self, layer_id, parent, diff_id, check_mode):
        """The layer's state before an apply, once its ids, its children and its parent are checked.

        Children first: a layer others are built on takes no diff whatever parent the call names, and
        that, not a parent the call left out, is what the operator needs to hear.
        """
        validate_layer_id(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
        if diff_id is not None:
            validate_diff_id(diff_id, layer_id)
        before = self.state(layer_id)
        if before["exists"]:
            self.require_sound(before)
            if not before["diff_id"]:
                self._refuse_children(layer_id)
            self._check_parent(layer_id, parent)
        else:
            self._check_new_layer(layer_id, parent, check_mode)
        return before

    @staticmethod
    def _same_diff(layer_id, before, diff_id):
        """One diff per layer: the one it has again is no change, another one is refused."""
        if diff_id == before["diff_id"]:
            return ApplyOutcome(False, before, before, ApplyDiffResult(before["size"], before["diff_id"]))
        raise OverlayError("already has diff %s applied; refusing a different diff %s"
                           % (before["diff_id"], diff_id), layer=layer_id)

    def _refuse_children(self, layer_id):
        """A diff goes into a layer before anything is built on it.

        Applying to a root layer exchanges its root/, which its overlay children
        use as lowerdir: a mounted child would list nothing (its lowerdir deleted
        under it) and an unmounted one would change without a diff of its own,
        while children built by apply_diff (hardlink copies) would not see it.
        """
        children = self.children_of(layer_id)
        if children:
            raise OverlayError("layers %s are built on it; a diff is applied to a layer before anything is built on "
                               "it (remove them first, or apply the diff to a new layer on top)"
                               % ", ".join(sorted(children)), layer=layer_id, path=self.layout.layer(layer_id).dir)

    def _undo_create(self, layer_id):
        """An apply that failed (or was interrupted) leaves no empty layer behind."""
        if not self.record(layer_id).diff_id:
            self._remove(layer_id)

    def _verify_only(self, layer_id, parent, opener, diff_id, compression, before):
        from .verify import verify_layer  # pylint: disable=import-outside-toplevel

        with opener() as raw:
            verified = verify_layer(raw, compression, layer_id, diff_id, self.driver.uid_maps, self.driver.gid_maps,
                                    self.driver.layer_limits)
        kind, fallback = self.driver.kind_after_apply(before["exists"], before["kind"],
                                                      parent or (before["parent"] or ""))
        base = before if before["exists"] else layer_state.new(layer_id, parent, self._merged(layer_id))
        after = layer_state.changed(base, diff_id=verified.diff_id, size=verified.size, kind=kind,
                                    path=self._merged(layer_id))
        return ApplyOutcome(True, before, after, ApplyDiffResult(verified.size, verified.diff_id, verified.entries,
                                                                 verified.compression, fallback))

    def export_diff(self, layer_id, dest, check_mode=False):
        """Write the layer's diff against its parent to dest, atomically; changed when dest differs.

        Returns an ExportOutcome. In check mode the tarball is built and
        hashed into nothing.
        """
        validate_layer_id(layer_id)
        if not self.driver.exists(layer_id):
            raise self.missing_layer(layer_id)
        self.require_sound(self.state(layer_id))
        parent = self.parent_of(layer_id)
        from .dest import resolve_dest  # pylint: disable=import-outside-toplevel

        dir_fd, directory, name = resolve_dest(dest, self.home, layer_id)
        try:
            diff, same = self._write_diff(layer_id, parent, dir_fd, directory, name, check_mode)
        finally:
            os.close(dir_fd)
        return ExportOutcome(not same, diff, parent or None, os.path.join(directory, name))

    def _write_diff(self, layer_id, parent, dir_fd, directory, name, check_mode):
        """(the DiffResult, whether dest held that tarball already); a check run writes into nothing."""
        # imported here, as the exporter is: only runs that export load them
        from .dest import AtomicDest, NullWriter, remove_leftovers, same_content  # pylint: disable=import-outside-toplevel

        if check_mode:
            diff = self.diff(layer_id, parent, NullWriter())
            return diff, same_content(dir_fd, name, diff.diff_id)
        remove_leftovers(dir_fd)
        with AtomicDest(dir_fd, name, directory, layer_id) as out:
            diff = self.diff(layer_id, parent, out)
            faults.point("diff.written")
            same = same_content(dir_fd, name, diff.diff_id)
            out.commit(keep_existing=same)
        return diff, same
