# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay_image's behaviour: stage an image's layers, report them, and the layer list before/after.

Kept apart from managers.py: images bring a registry client and manifests,
which no other module needs.
"""

import os

from .image_request import ImageRequest
from .managers import home_exists, repaired, warn_if_volatile
from .overlay_driver.errors import OverlayError
from .overlay_driver.image_records import ImageRecord, ImageRecords, platform_text
from .overlay_driver.images.errors import ImageError
from .overlay_driver.images.manifests import parse_platform
from .overlay_driver.images.reference import parse_reference
from .overlay_driver.images.sources import registry_endpoints
from .overlay_driver.images.stage import stage_image
from .overlay_driver.layout import HomeLayout
from .overlay_driver.store import LayerStore

LAYER_KEYS = ("id", "diff_id", "digest", "size", "changed")


class ImageManager(ImageRequest):
    def __init__(self, params, check_mode=False, diff=False):
        super().__init__(params)
        self.check_mode = check_mode
        self.diff = diff
        # and the signature policy, whole, before anything is pulled
        self.policy = None
        if params.get("policy") and not self.absent:
            from .overlay_driver.images.policy import load_policy  # pylint: disable=import-outside-toplevel
            self.policy = load_policy(params["policy"], params.get("src"))

    def open_store(self):
        """None in check mode when the home holds no layer records yet (missing, or only Docker's own):
        every layer would be staged, and check mode must not create the home or its bookkeeping."""
        home = self.params["home"]
        if not self.check_mode:
            return LayerStore(home, self.params.get("uid_maps"), self.params.get("gid_maps"),
                              layout=self.params.get("layout"))
        if not os.path.isdir(HomeLayout(home).records):
            return None
        # read-only: a writer's store would record maps, load overlay and clear leftovers
        return LayerStore.for_check_run(home, self.params.get("uid_maps"), self.params.get("gid_maps"),
                                        layout=self.params.get("layout"))

    def written_source(self):
        """The file-transport Reference the task wrote when the controller sent a copy (src is the copy,
        record_as the task's src): the signature policy's path scopes judge it. None otherwise."""
        p = self.params
        if not (self.reference.is_file and p.get("record_as") and p["record_as"] != p["src"]):
            return None
        try:
            written = parse_reference(p["record_as"])
        except ImageError:
            return None
        return written if written.is_file else None

    def run(self):
        if self.absent:
            return self.remove()
        p = self.params
        if self.reference.is_file and not os.path.exists(self.reference.path):
            raise ImageError("it does not exist on the managed host (set remote_src: false to send it from the "
                             "controller)", image=self.reference.text, path=self.reference.path)
        if self.reference.transport == "docker":
            # a registries.conf that is wrong, or refuses the pull, fails the task before the home is made
            registry_endpoints(self.reference, p.get("registries_conf"), p.get("registries_conf_d"),
                               self.registry_auth)
        # opened once the manifest is read and the policy allowed the image: a registry that cannot be reached,
        # an image that is not there and a refused one leave no home behind
        opened = []
        existed = os.path.isdir(p["home"])

        def open_store():
            opened.append(self.open_store())
            return opened[0]
        try:
            return warn_if_volatile(self._stage(open_store, opened), p["home"], existed, self.check_mode)
        finally:
            # the store holds the home's, its bookkeeping's and its lock's descriptors
            for store in opened:
                if store is not None:
                    store.close()

    def _stage(self, open_store, opened):
        p = self.params
        store = open_store
        staged = stage_image(store, self.reference, platform=p.get("platform"), registry_auth=self.registry_auth,
                             validate_certs=p.get("validate_certs", True), ca_path=p.get("ca_path"),
                             certs_dirs=[p["certs_dir"]] if p.get("certs_dir") else None,
                             registries_conf=p.get("registries_conf"), registries_conf_d=p.get("registries_conf_d"),
                             check_mode=self.check_mode, home=p["home"], network=self.network, policy=self.policy,
                             registries_d=p.get("registries_d"), policy_written=self.written_source(),
                             **self.stage_bounds)
        if callable(store):
            store = opened[0]
        recorded = self._record(store, staged)
        layers = [{k: getattr(layer, k) for k in LAYER_KEYS} for layer in staged.layers]
        result = {
            # a new record of layers already there is bookkeeping, as the config cache is: staging the same
            # layers under another reference stays a no-op, and `recorded` says that the record was written
            "changed": staged.changed,
            "recorded": recorded,
            "top": staged.top,
            "layers": layers,
            "manifest_digest": staged.manifest_digest,
            "config_digest": staged.config_digest,
            "config": staged.config,
            "bytes": staged.bytes,
            "elapsed": staged.elapsed,
            # the names the role reports per image: what was fetched, and how long it took
            "fetched_bytes": staged.bytes,
            "seconds": staged.elapsed,
        }
        if self.diff:
            before = [layer.id for layer in staged.layers if layer.present]
            after = [layer.id for layer in staged.layers]
            result["diff"] = {"before": {"image": self.reference.text, "layers": before},
                              "after": {"image": self.reference.text, "layers": after}}
        # a check run stages without the lock (and reads no repair): the real run makes and reports them
        return repaired(result, store.repaired if store is not None else [], self.check_mode)

    def _record(self, store, staged):
        """Record the staged image with the home (what state=absent finds); True when the record is new
        or changed (would be, in check mode)."""
        p = self.params
        record = ImageRecord(p.get("record_as") or p["src"], staged.manifest_digest, staged.config_digest,
                             platform_text(parse_platform(p.get("platform"), p["src"])),
                             [layer.id for layer in staged.layers])
        if store is None:
            return True
        records = ImageRecords(store.driver.dirs)
        if self.check_mode:
            return records.would_change(record)
        with store.locked():
            for layer in staged.layers:
                if not store.driver.exists(layer.id):
                    raise OverlayError("layer %s of the image was removed while it was staged; stage it again"
                                       % layer.id, layer=layer.id, path=store.home)
            return records.save(record)

    def remove(self):
        """state=absent: the image's layers that nothing else needs go; the rest is listed with the reason."""
        p = self.params
        home = p["home"]
        if not home_exists(home):  # a missing home holds no image, and stays missing
            return self._removal_result(None)
        if self.check_mode:
            store = LayerStore.for_check_run(home, p.get("uid_maps"), p.get("gid_maps"), layout=p.get("layout"))
        else:
            store = LayerStore(home, p.get("uid_maps"), p.get("gid_maps"), layout=p.get("layout"))
        try:
            from .overlay_driver.image_removal import remove_image  # pylint: disable=import-outside-toplevel
            return self._removal_result(remove_image(store, p["src"], self.check_mode))
        finally:
            store.close()

    def _removal_result(self, removal):
        if removal is None:
            result = {"changed": False, "images": [], "removed": [], "kept": []}
        else:
            result = {"changed": removal.changed, "images": removal.images, "removed": removal.removed,
                      "kept": removal.kept}
        if self.diff:
            kept = [k["id"] for k in result["kept"]]
            result["diff"] = {"before": {"image": self.params["src"], "layers": result["removed"] + kept},
                              "after": {"image": self.params["src"], "layers": kept}}
        return result
