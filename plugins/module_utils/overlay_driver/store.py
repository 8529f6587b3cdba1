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
import hashlib
import os

from . import faults, holders as records
from .driver import KIND_OVERLAY, KIND_ROOT, Driver
from .errors import OverlayError
from .ids import validate_diff_id, validate_layer_id
from .locking import DEFAULT_TIMEOUT, HomeLock
from .mounts import read_mountinfo

DEFAULT_HOME = "/var/lib/strata/overlay"
DEFAULT_HOLDER = "ansible"


def file_digest(raw, compression="auto"):
    """diff_id of a layer without applying it: sha256 of its uncompressed bytes."""
    from .tar_stream import HashingReader  # pylint: disable=import-outside-toplevel

    reader = HashingReader(raw, compression)
    try:
        while reader.read(1 << 20):
            pass
    finally:
        reader.close()
    return reader.digest()


class LayerStore:
    def __init__(self, home=DEFAULT_HOME, uid_maps=None, gid_maps=None, lock_timeout=DEFAULT_TIMEOUT,
                 check=True, load_module=True):
        self.driver = Driver(home, uid_maps, gid_maps, check=check, load_module=load_module)
        self.layout = self.driver.layout
        self.home = self.driver.home
        self._lock = HomeLock(self.layout.lock, lock_timeout)
        self._cleaned = False

    @contextlib.contextmanager
    def locked(self):
        with self._lock:
            if not self._cleaned:
                self.driver.cleanup()
                self._prune_orphan_records()
                self._cleaned = True
            yield self

    def _prune_orphan_records(self):
        """Records of layers that are gone, and record temp files of killed writes."""
        for layer_id in self.layout.recorded_ids():
            if not self.driver.exists(layer_id):
                records.delete_record(self.layout.record(layer_id))
        for name in os.listdir(self.layout.records):
            if name.startswith(".tmp-"):
                os.unlink(os.path.join(self.layout.records, name))

    # -- records --------------------------------------------------------------

    def record(self, layer_id):
        return records.load_record(self.layout.record(layer_id), layer_id)

    def save(self, record):
        records.save_record(self.layout.record(record.layer_id), record)

    def parent_of(self, layer_id, record=None):
        """The recorded parent; for layers made by another tool, the lower-id of an overlay."""
        record = record or self.record(layer_id)
        if record.exists_on_disk:
            return record.parent or ""
        if self.driver.kind(layer_id) == KIND_OVERLAY:
            return self.driver.lower_id(layer_id)
        return ""

    def children_of(self, layer_id):
        out = []
        for other in self.layout.layer_ids():
            if other == layer_id:
                continue
            paths = self.layout.layer(other)
            parent = self.record(other).parent
            lower = None
            if os.path.exists(paths.lower_id) and not os.path.isdir(paths.root):
                try:
                    lower = self.driver.lower_id(other)
                except OverlayError:
                    lower = None
            if parent == layer_id or lower == layer_id:
                out.append(other)
        return out

    # -- state ----------------------------------------------------------------

    def state(self, layer_id, entries=None):
        """What a module reports about one layer; exists=False when it is not there."""
        validate_layer_id(layer_id)
        if not self.driver.exists(layer_id):
            return {"id": layer_id, "exists": False, "parent": None, "kind": None, "mounted": False,
                    "holders": [], "stale": False, "diff_id": None, "path": None, "metadata": {}}
        entries = read_mountinfo() if entries is None else entries
        record = self.record(layer_id)
        kind = self.driver.kind(layer_id)
        mount = self.driver.mount_entry(layer_id, entries)
        mounted = mount is not None and self.driver.owns_mount(layer_id, mount)
        paths = self.layout.layer(layer_id)
        holders = sorted(record.holders)
        return {
            "id": layer_id,
            "exists": True,
            "parent": self.parent_of(layer_id, record) or None,
            "kind": kind,
            "metadata": self.driver.metadata(layer_id),
            "mounted": mounted,
            "foreign_mount": mount is not None and not mounted,
            "holders": holders,
            "stale": kind == KIND_OVERLAY and bool(holders) and not mounted,
            "unheld_mount": mounted and not holders,
            "diff_id": record.diff_id,
            "size": record.size,
            "path": paths.root if kind == KIND_ROOT else paths.merged,
            "options": mount.options_dict() if mounted else {},
        }

    def layers(self):
        entries = read_mountinfo()
        return [self.state(layer_id, entries) for layer_id in self.layout.layer_ids()]

    # -- operations -------------------------------------------------------------

    def _check_parent(self, layer_id, parent):
        existing = self.parent_of(layer_id)
        if (existing or "") != (parent or ""):
            raise OverlayError("exists with parent %s, not %s" % (existing or "(none)", parent or "(none)"),
                               layer=layer_id, path=self.layout.layer(layer_id).dir)

    def create(self, layer_id, parent="", check_mode=False):
        """Present: create if missing. Returns changed."""
        validate_layer_id(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
        if self.driver.exists(layer_id):
            self._check_parent(layer_id, parent)
            return False
        # In check mode the parent may be one an earlier task would have created.
        if parent and not check_mode and not self.driver.exists(parent):
            raise OverlayError("parent layer %s does not exist" % parent, layer=layer_id,
                               path=self.layout.layer(parent).dir)
        if check_mode:
            return True
        self.driver.create(layer_id, parent)
        record = self.record(layer_id)
        record.parent = parent or None
        self.save(record)
        return True

    def remove(self, layer_id, force=False, check_mode=False):
        """Absent: refuses while holders exist (unless force) or children depend on it."""
        validate_layer_id(layer_id)
        if not self.driver.exists(layer_id):
            return False
        record = self.record(layer_id)
        paths = self.layout.layer(layer_id)
        if record.holders and not force:
            raise OverlayError("still held by %s (use force to remove anyway)" % ", ".join(sorted(record.holders)),
                               layer=layer_id, path=paths.dir)
        children = self.children_of(layer_id)
        if children:
            raise OverlayError("layers %s are built on it; remove them first" % ", ".join(children),
                               layer=layer_id, path=paths.dir)
        if check_mode:
            return True
        self.driver.put(layer_id)
        self.driver.remove(layer_id)
        records.delete_record(self.layout.record(layer_id))
        return True

    def mount(self, layer_id, holder=DEFAULT_HOLDER, mount_label="", check_mode=False):
        """Mounted: add the holder, mount if needed. Returns changed."""
        validate_layer_id(layer_id)
        if not holder:
            raise OverlayError("holder must be a non-empty string", layer=layer_id)
        if not self.driver.exists(layer_id):
            if check_mode:
                return True  # an earlier task would have created it
            raise OverlayError("layer does not exist", layer=layer_id, path=self.layout.layer(layer_id).dir)
        record = self.record(layer_id)
        changed = holder not in record.holders
        kind = self.driver.kind(layer_id)
        needs_mount = kind == KIND_OVERLAY and not self.driver.is_mounted(layer_id)
        if needs_mount:
            entry = self.driver.mount_entry(layer_id)
            if entry is not None:
                raise OverlayError("a different mount (%s from %s) is at merged/" % (entry.fstype, entry.source),
                                   layer=layer_id, path=self.layout.layer(layer_id).merged)
        if check_mode:
            return changed or needs_mount
        if needs_mount:
            self.driver.get(layer_id, mount_label)
            faults.point("mount.mounted")
        if changed:
            record.holders.add(holder)
            self.save(record)
        return changed or needs_mount

    def unmount(self, layer_id, holder=DEFAULT_HOLDER, force=False, check_mode=False, lazy=False):
        """Unmounted: drop the holder; unmount when none is left (or force). Returns changed.

        lazy: detach the mount even while processes use it (MNT_DETACH).
        """
        validate_layer_id(layer_id)
        if not self.driver.exists(layer_id):
            return False
        record = self.record(layer_id)
        before = set(record.holders)
        if force:
            record.holders.clear()
        else:
            record.holders.discard(holder)
        mounted = self.driver.is_mounted(layer_id)
        will_unmount = mounted and not record.holders
        changed = before != record.holders or will_unmount
        if check_mode or not changed:
            return changed
        if will_unmount:
            self.driver.put(layer_id, lazy=lazy)
            faults.point("unmount.unmounted")
        self.save(record)
        return changed

    def restore(self, check_mode=False):
        """Mount every stale layer again (after a reboot); returns the ids mounted."""
        done = []
        for state in self.layers():
            if state["stale"]:
                if not check_mode:
                    self.driver.get(state["id"])
                done.append(state["id"])
        return done

    def apply_diff(self, layer_id, parent, opener, diff_id=None, compression="auto", check_mode=False):
        """One diff per layer. Returns (changed, result-or-None, reason)."""
        validate_layer_id(layer_id)
        if parent:
            validate_layer_id(parent, "parent id")
        if diff_id is not None:
            validate_diff_id(diff_id, layer_id)
        exists = self.driver.exists(layer_id)
        if exists:
            self._check_parent(layer_id, parent)
            record = self.record(layer_id)
            if record.diff_id:
                if diff_id is None:
                    with opener() as raw:
                        diff_id = file_digest(raw, compression)
                if diff_id == record.diff_id:
                    return False, None, "already applied"
                raise OverlayError("already has diff %s applied; refusing a different diff %s"
                                   % (record.diff_id, diff_id), layer=layer_id)
        elif parent and not check_mode and not self.driver.exists(parent):
            raise OverlayError("parent layer %s does not exist" % parent, layer=layer_id,
                               path=self.layout.layer(parent).dir)
        if check_mode:
            return True, None, "would apply"
        created = False
        if not exists:
            self.create(layer_id, parent)
            created = True
        try:
            with opener() as raw:
                result = self.driver.apply_diff(layer_id, parent, raw, compression, diff_id)
        except BaseException:
            if created:
                self.driver.remove(layer_id)
                records.delete_record(self.layout.record(layer_id))
            raise
        faults.point("apply.before-record")
        record = self.record(layer_id)
        record.parent = parent or None
        record.diff_id = result.diff_id
        record.size = result.size
        self.save(record)
        return True, result, "applied"

    def export_diff(self, layer_id, dest, check_mode=False):
        """Write the layer's diff against its parent to dest, atomically; changed when dest differs."""
        validate_layer_id(layer_id)
        if not self.driver.exists(layer_id):
            raise OverlayError("layer does not exist", layer=layer_id, path=self.layout.layer(layer_id).dir)
        parent = self.parent_of(layer_id)
        dest = os.path.abspath(dest)
        directory = os.path.dirname(dest)
        if not os.path.isdir(directory):
            raise OverlayError("destination directory does not exist", layer=layer_id, path=directory)
        if os.path.realpath(dest).startswith(self.home.rstrip("/") + "/"):
            raise OverlayError("refusing to write a diff inside the layer home", layer=layer_id, path=dest)
        tmp = dest + ".strata-tmp"
        try:
            with open(tmp, "wb") as out:
                digest, tar_size, changes, size = self.driver.diff(layer_id, parent, out)
            same = os.path.isfile(dest) and _sha256_file(dest) == digest
            if same or check_mode:
                os.unlink(tmp)
            else:
                os.rename(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return not same, {"diff_id": digest, "size": size, "tar_size": tar_size,
                          "changes": [c.as_dict() for c in changes], "parent": parent or None, "dest": dest}


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()
