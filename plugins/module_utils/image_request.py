# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image task's options, checked before anything is read: what overlay_image and overlay_image_info share.

Both modules refuse the same options with the same words, in the same order, so that
overlay_image_info can answer for overlay_image (the action plugin asks it first when an image
may already be staged) and fail exactly as overlay_image would. Kept free of the store and the
stager, which overlay_image_info does not ship.
"""

from .common import flag, require_absolute_host_path
from .overlay_driver.errors import OverlayError
from .overlay_driver.images.errors import ImageError
from .overlay_driver.images.network import Network
from .overlay_driver.images.reference import parse_reference
from .overlay_driver import space

# How the host reaches a registry and proves who it is: the options of both modules.
REGISTRY_ARGS = dict(
    platform=dict(type="str"),
    registry_auth=dict(type="dict", no_log=False, options=dict(
        username=dict(type="str"), password=dict(type="str", no_log=True), auth_file=dict(type="path"))),
    username=dict(type="str"), password=dict(type="str", no_log=True), auth_file=dict(type="path"),
    validate_certs=flag(True), ca_path=dict(type="path"), certs_dir=dict(type="path"),
    registries_conf=dict(type="path"), registries_conf_d=dict(type="path"),
    blob_deadline=dict(type="int", default=3600), image_deadline=dict(type="int", default=10800),
    retries=dict(type="int", default=5), retry_max_delay=dict(type="int", default=60),
    proxy=dict(type="str", no_log=True), no_proxy=dict(type="list", elements="str"),
)

CREDENTIAL_KEYS = ("username", "password", "auth_file")


def registry_credentials(params):
    """registry_auth, or the same keys given at the top level as community.docker's modules take them.

    Both at once is refused: which one would win is not something a playbook should have to know.
    """
    nested = {k: v for k, v in (params.get("registry_auth") or {}).items() if v is not None}
    top = {k: params[k] for k in CREDENTIAL_KEYS if params.get(k) is not None}
    if nested and top:
        raise ImageError("give registry credentials either in registry_auth or as username, password and "
                         "auth_file, not both", image=params.get("src"))
    return nested or top


# The options that name a file or directory the module reads on the managed host (with pull: controller the action
# plugin keeps them on the controller, and the module never sees them).
HOST_PATH_OPTIONS = ("auth_file", "ca_path", "certs_dir", "registries_conf", "registries_conf_d", "registries_d")


def require_host_paths(params, reference):
    """Refuse a relative path the module would read on the host, before anything is read or made.

    A file transport's PATH with remote_src: true (with remote_src: false the action plugin finds it on the
    controller and hands the module the absolute path of its copy), and the host-side files of a pull.
    """
    if reference is not None and reference.is_file and params.get("remote_src"):
        require_absolute_host_path("src's PATH", reference.path, written=reference.text, fix=(
            "; write the full path on the host (%s:/srv/images/...), or set remote_src: false to send it from the "
            "controller (a relative PATH is then looked up there in files/ and beside the playbook)"
            % reference.transport))
    for name in HOST_PATH_OPTIONS:
        require_absolute_host_path(name, params.get(name), fix="; write the full path on the managed host")
    nested = params.get("registry_auth") or {}
    require_absolute_host_path("registry_auth.auth_file", nested.get("auth_file"),
                               fix="; write the full path on the managed host")


class ImageRequest:
    """The checked options: reference, credentials, deadlines and limits, network. Raises what is wrong."""

    def __init__(self, params):
        self.params = params
        self.absent = params.get("state") == "absent"
        # absent finds the image by its recorded reference or digest, which need not parse as a source
        self.reference = None if self.absent else parse_reference(params["src"])
        require_host_paths(params, self.reference)
        if self.reference is not None and self.reference.transport == "docker" and params.get("pull") == "controller":
            # the action plugin pulls on the controller and hands the module an OCI layout: here it did not run
            raise ImageError("pull: controller is done by the overlay_image action plugin on the controller; the "
                             "module was run without it (use the strata.overlay.overlay_image action)",
                             image=self.reference.text)
        self.registry_auth = registry_credentials(params)  # not used by file transports
        self.stage_bounds = self.bounds()  # checked before the home is touched
        self.network = None if self.absent else self.network_settings()  # so are the retries and the proxy

    def bounds(self):
        """The deadlines (and limits) the task sets, as stage_image takes them; what it leaves out keeps the
        default. Refused before anything is read when they are not positive."""
        out = {}
        for name, unit in (("blob_deadline", "seconds"), ("image_deadline", "seconds"), ("max_layer_size", "bytes"),
                           ("max_image_size", "bytes")):
            value = self.params.get(name)
            if value is None:
                continue
            if unit == "bytes":
                try:
                    value = space.parse_size(value, name)  # "10M", "1.5GiB" as well as bytes
                except OverlayError as e:
                    raise ImageError(e.cause, image=self.params.get("src"))
            if value <= 0:
                raise ImageError("%s must be a positive number of %s, not %s" % (name, unit, value),
                                 image=self.params.get("src"))
            out[name] = value
        return out

    def network_settings(self):
        """How the registry is reached (retries, proxies), from the options and the module's environment."""
        p = self.params
        settings = {name: p[name] for name in ("retries", "retry_max_delay") if p.get(name) is not None}
        return Network(proxy=p.get("proxy"), no_proxy=p.get("no_proxy"), image=p.get("src"), **settings)
