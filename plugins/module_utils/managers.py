# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One manager per module, one method per state; each returns the module's result.

Managers take the module's params, check_mode and diff flags and nothing from
Ansible, so they are tested with plain calls.
"""

import fcntl
import os
import struct

from . import layer_images, layer_tree
from .common import require_absolute_host_path
from .overlay_driver import fscheck, space, subids
from .overlay_driver.tar_headers import Limits
from .overlay_driver.errors import NeedsSource, OverlayError
from .overlay_driver.home import HomeDirs
from .overlay_driver.ids import parse_maps, validate_diff_id, validate_holder, validate_layer_id
from .overlay_driver.regular_files import open_regular
from .overlay_driver.store import LayerStore

DIFF_KEYS = ("exists", "kind", "parent", "mounted", "holders", "diff_id")


def public_metadata(state):
    """The metadata a module hands out, as the layer's driver made it (Driver.public_metadata): no
    path into an image layer, whose files are shared with the layers built on it."""
    return dict(state.get("public_metadata") or {})


def public_state(state):
    """A layer's state as modules return it."""
    return {
        "id": state["id"],
        "exists": state["exists"],
        "parent": state["parent"],
        "kind": state["kind"],
        "metadata": public_metadata(state),
        "mounted": state["mounted"],
        "readonly": state.get("readonly", False),
        "holders": state["holders"],
        "stale": state["stale"],
        "diff_id": state["diff_id"],
        "path": state["path"],
        "problem": state.get("problem"),
    }


def home_exists(home):
    """Whether the layer home is there; its path is walked and checked as every open of it is."""
    dirs = HomeDirs(home)
    try:
        return dirs.exists
    finally:
        dirs.close()


def released(outcome):
    """The holders an operation dropped: the one let go, or every one a force took away."""
    return sorted(set(outcome.before["holders"]) - set(outcome.after["holders"]))


def repaired(result, paths, check_mode):
    """A result that also says what the run made again of what the home had lost (overlay2's l/ and short
    links, from the layers' link files), or in check mode would: changed, with a warning naming them."""
    if paths:
        result["changed"] = True
        result.setdefault("warnings", []).append(
            "%s missing from the layer home and %s from the layers' link files: %s"
            % ("were" if len(paths) > 1 else "was", "would be made again" if check_mode else "made again",
               ", ".join(paths)))
    return result


def warn_if_volatile(result, home, existed, check_mode):
    """The result of a writer, warning first when the run made the home (or in check mode would) on a
    filesystem that keeps nothing across a reboot (tmpfs, ramfs). Said once, when the home is made: a
    later run finds it there, and overlay_info says it whenever asked."""
    made = result.get("changed") if check_mode else os.path.isdir(home)
    if existed or not made:
        return result
    warning = fscheck.volatile_home(home)
    if warning:
        result.setdefault("warnings", []).insert(0, warning)
    return result


_FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long): the kernel writes an int


class Manager:
    """Validates ids first, opens the store under its lock, reports diff before/after.

    Only managers that create layers create a missing home (creates_home): a mistyped home given to
    an unmount, a removal or a mount must not appear as a new directory. The others open a missing
    home for reading, which creates nothing, and find no layer in it.
    """

    creates_home = False

    def __init__(self, params, check_mode=False, diff=False):
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.store = None
        for key in ("id", "parent"):
            if params.get(key):
                validate_layer_id(params[key], "layer id" if key == "id" else "parent id")
        if params.get("diff_id") is not None:
            validate_diff_id(params["diff_id"], params.get("id"))
        if "holder" in params:
            validate_holder(params["holder"], params.get("id"))

    def open_store(self, read_only=False):
        """A check run opens the home read-only: it creates, probes and cleans nothing.

        A writer's check run still fails on a read-only home, as its real run does.
        """
        home, uid_maps, gid_maps = self.params["home"], self.params.get("uid_maps"), self.params.get("gid_maps")
        layout = self.params.get("layout")
        if self.check_mode and not read_only:
            return LayerStore.for_check_run(home, uid_maps, gid_maps, layout=layout)
        if not (read_only or self.creates_home or home_exists(home)):
            read_only = True  # a missing home stays missing: there is no layer in it to act on
        return LayerStore(home, uid_maps, gid_maps, read_only=read_only or self.check_mode, layout=layout)

    def diff_of(self, before, after):
        return {"before": {k: before.get(k) for k in DIFF_KEYS}, "after": {k: after.get(k) for k in DIFF_KEYS}}

    def run(self):
        home = self.params["home"]
        existed = not self.creates_home or os.path.isdir(home)
        self.store = self.open_store()
        try:
            with self.store.locked():
                result = repaired(self.execute(), self.store.repaired, self.check_mode)
        finally:
            self.store.close()
        return warn_if_volatile(result, home, existed, self.check_mode)

    def execute(self):
        raise NotImplementedError

    def with_diff(self, result, before, after):
        if self.diff:
            result["diff"] = self.diff_of(before, after)
        return result


class LayerManager(Manager):
    def __init__(self, params, check_mode=False, diff=False):
        Manager.__init__(self, params, check_mode, diff)
        self.creates_home = params.get("state", "present") == "present"

    def execute(self):
        return getattr(self, self.params["state"])()

    def _result(self, outcome):
        return self.with_diff({"changed": outcome.changed, "layer": public_state(outcome.after),
                               "released": released(outcome)}, outcome.before, outcome.after)

    def present(self):
        return self._result(self.store.ensure_present(self.params["id"], self.params.get("parent") or "",
                                                      self.check_mode))

    def absent(self):
        return self._result(self.store.ensure_absent(self.params["id"], self.params["force"], self.check_mode))


class MountManager(Manager):
    # the role's overlay_mounts entries say present/absent; both spellings mean the same in both places
    STATES = {"mounted": "mounted", "present": "mounted", "unmounted": "unmounted", "absent": "unmounted"}

    def execute(self):
        return getattr(self, self.STATES[self.params["state"]])()

    def _result(self, outcome):
        before, after = outcome.before, outcome.after
        result = {
            "changed": outcome.changed,
            "path": after["path"],
            "mounted": after["mounted"],
            "holders": after["holders"],
            "options": after.get("options", {}),
            "mount_options": after.get("mount_options", []),
            "readonly": after.get("readonly", False),
            "layer": public_state(after),
            "released": released(outcome),
        }
        return self.with_diff(result, before, after)

    def mounted(self):
        p = self.params
        outcome = self.store.ensure_mounted(p["id"], p["holder"], p.get("mount_label") or "", self.check_mode,
                                            mount_options=p.get("mount_options"))
        result = self._result(outcome)
        if self.check_mode and not outcome.before["exists"]:
            # check mode answers as if an earlier task of the run made the layer (its check run made
            # nothing); the real run fails when none does, so say what the answer assumed
            result["warnings"] = ["layer %s does not exist%s: check mode assumes an earlier task creates it; the "
                                  "real run fails if none does" % (p["id"], "" if home_exists(p["home"]) else
                                                                   ", nor does the home %s" % p["home"])]
        return result

    def unmounted(self):
        p = self.params
        return self._result(self.store.ensure_unmounted(p["id"], p["holder"], p["force"], self.check_mode,
                                                        lazy=p.get("lazy", False)))


class ApplyDiffManager(Manager):
    creates_home = True

    def __init__(self, params, check_mode=False, diff=False):
        super().__init__(params, check_mode, diff)
        if params.get("remote_src"):
            require_absolute_host_path("src", params.get("src"), fix=(
                "; write the tarball's full path on the host, or set remote_src: false to send it from the "
                "controller (a relative src is then looked up there in files/ and beside the playbook)"))
        # The applier's bounds for this task, checked before the home is touched: max_layer_size on the
        # uncompressed tar stream.
        max_size = params.get("max_layer_size")
        if max_size is None:
            max_size = space.DEFAULT_MAX_LAYER_SIZE
        else:
            max_size = space.check_size_limit(max_size, "max_layer_size")
        self.layer_limits = Limits(max_bytes=max_size, max_bytes_name="max_layer_size")

    def execute(self):
        p = self.params
        layer_id, parent, src = p["id"], p.get("parent") or "", p.get("src")
        if src is None:
            return self._without_src()
        if not os.path.isfile(src):
            raise OverlayError("src is not a file on the managed host (set remote_src: false to send it "
                               "from the controller)", layer=layer_id, path=src)
        self.store.driver.layer_limits = self.layer_limits
        # a layer takes at least its tarball's bytes once applied
        space.require_free(p["home"], os.path.getsize(src), "the diff (%s)" % src, layer_id)

        def opener():
            try:
                return open_regular(src)  # a FIFO put there since never blocks the run, which holds the lock
            except OSError as e:
                raise OverlayError("cannot read src: %s" % e.strerror, layer=layer_id, path=src)

        outcome = self.store.apply_diff(layer_id, parent, opener, p.get("diff_id"), p["compression"], self.check_mode)
        if self.check_mode and outcome.changed:
            self._require_room_for(outcome.diff.size, layer_id)
        return self._result(outcome)

    def _require_room_for(self, size, layer_id):
        """Check mode read the whole diff: fail, as the real run would fill the filesystem and fail, when what
        it unpacks to exceeds the free space of the home's filesystem (of its nearest existing ancestor while
        the home does not exist yet)."""
        path = self.params["home"]
        while not os.path.isdir(path) and os.path.dirname(path) != path:
            path = os.path.dirname(path)
        free = space.free_bytes(path)
        if size and free is not None and size > free:
            raise OverlayError("not enough free space: the diff unpacks to %d bytes, the home's filesystem has %d "
                               "free%s" % (size, free, space.no_space_advice(self.layer_limits)),
                               layer=layer_id, path=self.params["home"])

    def _without_src(self):
        """Used by the action plugin: answer from the record alone when the diff is already there.

        Otherwise src is needed, in check mode too: a check run verifies the tarball.
        """
        p = self.params
        diff_id = p.get("diff_id")
        outcome = self.store.find_applied(p["id"], p.get("parent") or "", diff_id) if diff_id else None
        if outcome is None:
            raise NeedsSource("src is required: the layer does not have diff %s yet" % (diff_id or "(unknown)"),
                              layer=p["id"])
        return self._result(outcome)

    def _result(self, outcome):
        after = outcome.after
        diff = outcome.diff
        out = {"changed": outcome.changed, "size": diff.size, "diff_id": diff.diff_id, "fallback": diff.fallback,
               "path": after["path"]}
        if diff.compression is not None:
            out["compression"] = diff.compression
            out["entries"] = diff.entries
        out["layer"] = public_state(after)
        return self.with_diff(out, outcome.before, after)


class InfoManager(Manager):
    def run(self):
        result = self._read()
        result["exists"] = result["status"]["home_exists"]
        if result["exists"]:
            result["tree"] = layer_tree.render(result["layers"])
            volatile = fscheck.volatile_home(result["status"]["home"])
            if volatile:
                result.setdefault("warnings", []).insert(0, volatile)
        else:
            result["tree"] = [layer_tree.missing_home(result["status"]["home"])]
        if self.params.get("as_facts"):
            result["ansible_facts"] = {"overlay_info": {k: v for k, v in result.items() if k != "changed"}}
        return result

    def _read(self):
        p = self.params
        status = fscheck.host_status(p["home"], verifiers=p.get("verifiers"))
        result = {"changed": False, "status": status, "layers": [], "layout": None}
        if not status["home_exists"]:
            if p.get("id"):
                result["layer"] = None
            self._warn_maps(result, parse_maps(p.get("uid_maps"), "uid_maps"),
                            parse_maps(p.get("gid_maps"), "gid_maps"))
            return result
        self.store = self.open_store(read_only=True)
        try:
            result["layout"] = self.store.driver.LAYOUT
            self._warn_maps(result, self.store.driver.uid_maps, self.store.driver.gid_maps)
            self._warn_strays(result, self.store.driver.dirs)
            with self.store.locked():
                self._report(result)
        finally:
            self.store.close()
        return result

    @staticmethod
    def _warn_strays(result, dirs):
        """Names the remapped root left in the home that are no layer: not fatal (it can write there), but said."""
        for name in dirs.strays:
            result.setdefault("warnings", []).append(
                "the layer home %s holds %r, which is not a layer directory (made by the remapped root, uid %d); "
                "remove it" % (dirs.path, name, dirs.root_uid))
        for name in dirs.link_dirs:
            result.setdefault("warnings", []).append(
                "the layer home %s holds %r, a directory of short links only, l/ renamed; it is no layer (the links "
                "are made again in l/ from the layers' link files): remove it with rm -r %s, or with overlay_home "
                "state=absent along with the home" % (dirs.path, name, os.path.join(dirs.path, name)))

    @staticmethod
    def _warn_maps(result, uid_maps, gid_maps):
        """The home's maps (recorded, or given for a home not there yet) against /etc/subuid and /etc/subgid."""
        result["map_warnings"] = subids.map_warnings(uid_maps, gid_maps)
        if result["map_warnings"]:
            result.setdefault("warnings", []).extend(result["map_warnings"])

    def _inode(self, layer_id):
        """The inode of the layer's directory: a layer removed and made again (by anyone) has another one, which
        is how the overlay_layers role tells a layer it staged from one of the same name made since."""
        try:
            return os.stat(layer_id, dir_fd=self.store.driver.dirs.fd, follow_symlinks=False).st_ino
        except FileNotFoundError:
            return None

    def _generation(self, layer_id):
        """The generation of the layer's directory (FS_IOC_GETVERSION), None where the filesystem keeps none.

        ext4 gives a freed inode number out again at once, so a layer removed and made again can have the
        same inode; its generation differs (ext4, xfs, btrfs). tmpfs keeps none, nor reuses numbers at once.
        """
        try:
            fd = os.open(layer_id, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK,
                         dir_fd=self.store.driver.dirs.fd)
        except OSError:
            return None
        try:
            return struct.unpack("I", fcntl.ioctl(fd, _FS_IOC_GETVERSION, b"\0" * 8)[:4])[0]
        except OSError:
            return None
        finally:
            os.close(fd)

    def _report(self, result):
        """Reads only: a shared lock when the lock file exists, no cleanup, changes without mounting."""
        p = self.params
        layers = self.store.layers()
        result["layers"] = [dict(public_state(s), inode=self._inode(s["id"]), generation=self._generation(s["id"]),
                                 size=s["size"]) for s in layers]
        records, result["images_problem"] = layer_images.read_records(self.store.driver.dirs)
        result["images"] = layer_images.annotate(result["layers"], records)
        result["stale"] = [s["id"] for s in layers if s["stale"]]
        result["damaged"] = [s["id"] for s in layers if s["problem"]]
        result["repairs"] = list(self.store.repaired)
        if result["repairs"]:
            result.setdefault("warnings", []).append(
                "missing from the layer home, made again from the layers' link files by the next task that writes "
                "to it (a mount, for one): %s" % ", ".join(result["repairs"]))
        if not p.get("id"):
            return
        state = self.store.state(p["id"])
        result["layer"] = public_state(state)
        if p.get("changes"):
            if not state["exists"]:
                raise self.store.missing_layer(p["id"])
            self.store.require_sound(state)
            parent = self.store.parent_of(p["id"])
            changes, result["diff_size"] = self.store.driver.changes_and_size(p["id"], parent)
            result["changes"] = [c.as_dict() for c in changes]


class DiffManager(Manager):
    def execute(self):
        outcome = self.store.export_diff(self.params["id"], self.params["dest"], self.check_mode)
        diff = outcome.diff
        result = {"changed": outcome.changed, "diff_id": diff.diff_id, "size": diff.size, "tar_size": diff.tar_size,
                  "changes": [c.as_dict() for c in diff.changes], "parent": outcome.parent, "dest": outcome.dest}
        if self.diff:
            result["diff"] = {"before": {"dest": outcome.dest, "diff_id": None if outcome.changed else diff.diff_id},
                              "after": {"dest": outcome.dest, "diff_id": diff.diff_id}}
        return result
