# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One manager per module, one method per state; each returns the module's result.

Managers take the module's params, check_mode and diff flags and nothing from
Ansible, so they are tested with plain calls.
"""

import os
import platform

from . import layer_tree
from .overlay_driver import fscheck
from .overlay_driver.errors import OverlayError
from .overlay_driver.ids import validate_diff_id, validate_layer_id
from .overlay_driver.store import LayerStore

DIFF_KEYS = ("exists", "kind", "parent", "mounted", "holders", "diff_id")


def public_state(state):
    """A layer's state as modules return it."""
    return {
        "id": state["id"],
        "exists": state["exists"],
        "parent": state["parent"],
        "kind": state["kind"],
        "metadata": state["metadata"],
        "mounted": state["mounted"],
        "holders": state["holders"],
        "stale": state["stale"],
        "diff_id": state["diff_id"],
        "path": state["path"],
    }


class Manager:
    """Validates ids first, opens the store under its lock, reports diff before/after."""

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

    def open_store(self):
        return LayerStore(self.params["home"], self.params.get("uid_maps"), self.params.get("gid_maps"))

    def diff_of(self, before, after):
        return {"before": {k: before.get(k) for k in DIFF_KEYS}, "after": {k: after.get(k) for k in DIFF_KEYS}}

    def run(self):
        self.store = self.open_store()
        with self.store.locked():
            return self.execute()

    def execute(self):
        raise NotImplementedError

    def with_diff(self, result, before, after):
        if self.diff:
            result["diff"] = self.diff_of(before, after)
        return result

    def predicted(self, before, **changes):
        """What the state would be after a check-mode run."""
        after = dict(before)
        after.update(changes)
        return after


class LayerManager(Manager):
    def execute(self):
        return getattr(self, self.params["state"])()

    def present(self):
        layer_id, parent = self.params["id"], self.params.get("parent") or ""
        before = self.store.state(layer_id)
        changed = self.store.create(layer_id, parent, self.check_mode)
        if self.check_mode and changed:
            after = self.predicted(before, exists=True, parent=parent or None,
                                   kind=self._predicted_kind(parent), holders=[])
        else:
            after = self.store.state(layer_id)
        return self.with_diff({"changed": changed, "layer": public_state(after)}, before, after)

    def _predicted_kind(self, parent):
        if not parent:
            return "root"
        return "overlay"

    def absent(self):
        layer_id = self.params["id"]
        before = self.store.state(layer_id)
        changed = self.store.remove(layer_id, self.params["force"], self.check_mode)
        after = self.store.state(layer_id) if not (self.check_mode and changed) else \
            self.predicted(before, exists=False, kind=None, parent=None, mounted=False, holders=[], diff_id=None)
        return self.with_diff({"changed": changed, "layer": public_state(after)}, before, after)


class MountManager(Manager):
    def execute(self):
        return getattr(self, self.params["state"])()

    def _result(self, changed, before, after):
        result = {
            "changed": changed,
            "path": after["path"],
            "mounted": after["mounted"],
            "holders": after["holders"],
            "options": after.get("options", {}),
            "layer": public_state(after),
        }
        return self.with_diff(result, before, after)

    def mounted(self):
        layer_id, holder = self.params["id"], self.params["holder"]
        before = self.store.state(layer_id)
        changed = self.store.mount(layer_id, holder, self.params.get("mount_label") or "", self.check_mode)
        if self.check_mode:
            after = self.predicted(before, holders=sorted(set(before["holders"]) | {holder}),
                                   mounted=before["kind"] == "overlay", stale=False)
        else:
            after = self.store.state(layer_id)
        return self._result(changed, before, after)

    def unmounted(self):
        layer_id, holder, force = self.params["id"], self.params["holder"], self.params["force"]
        before = self.store.state(layer_id)
        if not before["exists"]:
            return self._result(False, before, before)
        changed = self.store.unmount(layer_id, holder, force, self.check_mode, lazy=self.params.get("lazy", False))
        if self.check_mode:
            left = [] if force else sorted(set(before["holders"]) - {holder})
            after = self.predicted(before, holders=left, mounted=before["mounted"] and bool(left), options={})
        else:
            after = self.store.state(layer_id)
        return self._result(changed, before, after)


class ApplyDiffManager(Manager):
    def execute(self):
        p = self.params
        layer_id, parent, src = p["id"], p.get("parent") or "", p.get("src")
        before = self.store.state(layer_id)
        if src is None:
            return self._without_src(before)
        if not os.path.isfile(src):
            raise OverlayError("src is not a file on the managed host (set remote_src: false to send it "
                               "from the controller)", layer=layer_id, path=src)

        def opener():
            return open(src, "rb")

        changed, result, _reason = self.store.apply_diff(layer_id, parent, opener, p.get("diff_id"),
                                                         p["compression"], self.check_mode)
        return self._result(changed, result, before)

    def _without_src(self, before):
        """Used by the action plugin: answer from the record alone when the diff is already there."""
        p = self.params
        diff_id = p.get("diff_id")
        if diff_id and before["exists"] and before["diff_id"] == diff_id:
            if (before["parent"] or "") != (p.get("parent") or ""):
                self.store.create(p["id"], p.get("parent") or "", check_mode=True)  # raises naming both
            return self._result(False, None, before)
        if diff_id and self.check_mode and not (before["exists"] and before["diff_id"]):
            return self._result(True, None, before)
        err = OverlayError("src is required: the layer does not have diff %s yet" % (diff_id or "(unknown)"),
                           layer=p["id"])
        err.extra = {"needs_src": True}
        raise err

    def _result(self, changed, applied, before):
        if applied is not None:
            after = self.store.state(self.params["id"])
            out = {"changed": changed, "size": applied.size, "diff_id": applied.diff_id,
                   "fallback": applied.fallback, "path": after["path"], "compression": applied.compression,
                   "entries": applied.entries}
        else:
            if changed:  # check mode
                after = self.predicted(before, exists=True, parent=self.params.get("parent") or None,
                                       diff_id=self.params.get("diff_id") or "(computed on apply)")
            else:
                after = before
            out = {"changed": changed, "size": before.get("size"),
                   "diff_id": after["diff_id"], "fallback": None, "path": after["path"]}
        out["layer"] = public_state(after)
        return self.with_diff(out, before, after)


def host_status(home):
    """Overlay support, kernel and backing filesystem, without creating or loading anything."""
    supported = fscheck.supports_overlay(load=False)
    probe = fscheck.existing_ancestor(home)
    backing, _magic = fscheck.backing_fs(probe)
    problems = fscheck.backing_problems(home)
    try:
        dtype = fscheck.supports_dtype(probe) if os.access(probe, os.W_OK) else None
    except OSError:
        dtype = None
    if not supported:
        problems.insert(0, "kernel %s has no overlay filesystem: 'overlay' is not in /proc/filesystems "
                           "(modprobe overlay failed or the kernel lacks CONFIG_OVERLAY_FS)" % platform.release())
    return {
        "overlay_supported": supported,
        "kernel": platform.release(),
        "backing_fs": backing,
        "d_type": dtype,
        "home": home,
        "home_exists": os.path.isdir(home),
        "problems": problems,
        "zstd": fscheck.zstd_support(),
    }


class InfoManager(Manager):
    def run(self):
        result = self._read()
        result["tree"] = layer_tree.render(result["layers"])
        if self.params.get("as_facts"):
            result["ansible_facts"] = {"overlay_info": {k: v for k, v in result.items() if k != "changed"}}
        return result

    def _read(self):
        p = self.params
        status = host_status(p["home"])
        result = {"changed": False, "status": status, "layers": []}
        if not status["home_exists"]:
            if p.get("id"):
                result["layer"] = None
            return result
        self.store = self.open_store()
        with self.store.locked():
            layers = self.store.layers()
            result["layers"] = [public_state(s) for s in layers]
            result["stale"] = [s["id"] for s in layers if s["stale"]]
            if p.get("id"):
                state = self.store.state(p["id"])
                result["layer"] = public_state(state)
                if p.get("changes"):
                    if not state["exists"]:
                        raise OverlayError("layer does not exist", layer=p["id"])
                    parent = self.store.parent_of(p["id"])
                    changes, result["diff_size"] = self.store.driver.changes_and_size(p["id"], parent)
                    result["changes"] = [c.as_dict() for c in changes]
        return result


class DiffManager(Manager):
    def execute(self):
        changed, info = self.store.export_diff(self.params["id"], self.params["dest"], self.check_mode)
        result = {"changed": changed}
        result.update(info)
        if self.diff:
            result["diff"] = {"before": {"dest": info["dest"], "diff_id": None if changed else info["diff_id"]},
                              "after": {"dest": info["dest"], "diff_id": info["diff_id"]}}
        return result
