# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""overlay_image_info's behaviour: what a registry image is now, and what a home holds of it.

It reads the registry as overlay_image does (the same options, checked the same way, the same
registries.conf, credentials, certs.d, proxies, retries and deadlines: image_request.py and
images/sources.py), then the home for reading only (image_presence.py). Nothing is written, locked
or repaired. The config is read from what the home remembers of it when every layer it names is
there, else fetched, as staging does.

A failure says where it happened (failed_at): "registry" for what overlay_image would meet the same
way before it touches the home, "home" for what it might not (it opens the home as a writer), so the
overlay_image action can hand the first on and run the module itself for the second.
"""

import time

from .image_request import ImageRequest
from .overlay_driver.errors import OverlayError
from .overlay_driver.image_presence import HomeView
from .overlay_driver.image_records import ImageRecord, platform_text
from .overlay_driver.images import config_cache
from .overlay_driver.images.certs import DEFAULT_CERTS_DIRS
from .overlay_driver.images.digests import chain_ids
from .overlay_driver.images.download import DEFAULT_BLOB_DEADLINE, DEFAULT_IMAGE_DEADLINE, Deadlines
from .overlay_driver.images.errors import ImageError
from .overlay_driver.images.manifests import check_layer_count, parse_config, parse_platform
from .overlay_driver.images.sources import DEFAULT_TIMEOUT, open_registry


def _at(where, error):
    error.failed_at = where
    return error


class ImageInfo(ImageRequest):
    def __init__(self, params, check_mode=False, diff=False):
        del check_mode, diff  # it reads only, in either mode
        try:
            super().__init__(dict(params, state="present"))
        except (ImageError, OverlayError) as e:
            raise _at("registry", e)  # as overlay_image refuses them, before anything is read
        if self.reference.transport != "docker":
            raise ImageError("overlay_image_info reads images from a registry (docker://HOST/REPOSITORY[:TAG]), "
                             "not %s: references" % self.reference.transport, image=self.reference.text)

    def run(self):
        p = self.params
        started = time.monotonic()
        image = self.reference.text
        try:
            platform = parse_platform(p.get("platform"), image)  # overlay_image reads it first too
        except (ImageError, OverlayError) as e:
            raise _at("registry", e)
        view = None
        if p.get("only_recorded"):
            view = self._open_home()
            if not (view.exists and view.has_record_for(p["src"], platform_text(platform))):
                try:
                    return self._unread(view, round(time.monotonic() - started, 3))
                finally:
                    view.close()
        try:
            try:
                source = open_registry(self.reference, self.registry_auth, p.get("validate_certs", True),
                                       p.get("ca_path"), DEFAULT_TIMEOUT,
                                       [p["certs_dir"]] if p.get("certs_dir") else DEFAULT_CERTS_DIRS,
                                       p.get("registries_conf"), p.get("registries_conf_d"), self.network)
            except (ImageError, OverlayError) as e:
                raise _at("registry", e)
            with source:
                source.deadlines = Deadlines(self.stage_bounds.get("blob_deadline", DEFAULT_BLOB_DEADLINE),
                                             self.stage_bounds.get("image_deadline", DEFAULT_IMAGE_DEADLINE),
                                             started)
                try:
                    resolved = source.resolve(platform)
                except (ImageError, OverlayError) as e:
                    raise _at("registry", e)
                view = view or self._open_home()
                remembered = config_cache.lookup_in(view.dirs, resolved.config.digest, len(resolved.layers)) \
                    if view.exists else None
                if remembered is None:
                    try:
                        diff_ids, run_config = parse_config(source.read_config(resolved.config), image,
                                                            resolved.config.digest, len(resolved.layers))
                    except (ImageError, OverlayError) as e:
                        # overlay_image opens the home as a writer before it reads the config: only where it
                        # would find nothing to refuse there is this failure the one it meets too
                        if not view.exists or (not view.read_only() and p.get("layout") in (None, view.layout)):
                            raise _at("registry", e)
                        raise
                else:
                    diff_ids, run_config = remembered
                check_layer_count(diff_ids, image)
                return self._result(view, resolved, diff_ids, run_config, platform, remembered is not None,
                                    round(time.monotonic() - started, 3))
        finally:
            if view is not None:
                view.close()

    def _open_home(self):
        try:
            return HomeView(self.params["home"], self.params.get("uid_maps"), self.params.get("gid_maps"))
        except (OSError, OverlayError) as e:
            if isinstance(e, OSError):
                e = OverlayError("cannot read the layer home: %s" % e.strerror, path=self.params["home"])
            raise _at("home", e)

    @staticmethod
    def _home(view, remembered=True):
        exists = view.exists
        upkeep = view.upkeep_due() if exists else None
        if exists and upkeep is None and not remembered:
            upkeep = "the home does not remember the image's config"  # staging writes it (config_cache.py)
        return {"path": view.path, "exists": exists, "layout": view.layout if exists else None,
                "read_only": exists and view.read_only(), "upkeep_due": upkeep}

    def _unread(self, view, elapsed):
        """only_recorded, and the home records no image under src: the registry is not asked."""
        return {"changed": False, "registry_read": False, "home": self._home(view),
                "image": {"reference": self.reference.text, "manifest_digest": None, "config_digest": None,
                          "top": None, "layers": [], "config": None, "staged": False, "recorded": False,
                          "seconds": elapsed}}

    def _result(self, view, resolved, diff_ids, run_config, platform, remembered, elapsed):
        p = self.params
        ids = [chain_id[len("sha256:"):] for chain_id in chain_ids(diff_ids)]
        exists = view.exists
        layers, parent = [], ""
        for layer_id, diff_id, descriptor in zip(ids, diff_ids, resolved.layers):
            present = exists and view.has_layer(layer_id, diff_id, parent)
            layers.append({"id": layer_id, "diff_id": diff_id, "digest": descriptor.digest or diff_id,
                           "size": descriptor.size, "present": present})
            parent = layer_id
        record = ImageRecord(p["src"], resolved.manifest_digest, resolved.config.digest, platform_text(platform), ids)
        staged = exists and all(layer["present"] for layer in layers)
        return {
            "changed": False,
            "registry_read": True,
            "image": {
                "reference": self.reference.text,
                "manifest_digest": resolved.manifest_digest,
                "config_digest": resolved.config.digest,
                "top": ids[-1] if ids else None,
                "layers": layers,
                "config": run_config,
                "staged": staged,
                "recorded": staged and view.records_image(record),
                "seconds": elapsed,
            },
            "home": self._home(view, remembered or not staged),
        }
