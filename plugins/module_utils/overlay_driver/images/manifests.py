# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Manifests, indexes and image configs: what is accepted, and what each says about the layers.

Accepted are OCI and Docker v2 schema 2 manifests and indexes, and layers as
tar, tar+gzip and tar+zstd. Schema 1, foreign (non-distributable) layers and
unknown types are refused by name, since staging a layer we cannot verify or
read the same way the image's author meant would be silently wrong.
Manifests and configs are read whole, so they have size limits.
"""

import json
import platform as host_platform_module

from . import platforms
from .digests import parse_digest, sha256_bytes, verify_bytes
from .errors import ImageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST)

CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")

# Layer media type -> the compression the applier is told.
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "auto",  # Docker also pushes plain tars under this
    "application/vnd.docker.image.rootfs.diff.tar": "none",
}
FOREIGN_LAYER_TYPES = (
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)

MAX_MANIFEST = 4 << 20   # distribution's own limit for a manifest
MAX_CONFIG = 8 << 20
MAX_LAYERS = 1000
MAX_INDEX_DEPTH = 4

# platform.machine() -> GOARCH[/variant], as the platform fields of an index name them.
_MACHINES = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


class Descriptor:
    __slots__ = ("media_type", "digest", "size", "platform", "annotations", "urls", "compression", "path")

    def __init__(self, media_type, digest, size, platform=None, annotations=None, urls=None, compression=None,
                 path=None):
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.platform = platform
        self.annotations = annotations or {}
        self.urls = urls or []
        self.compression = compression
        self.path = path  # inside a docker archive

    def __repr__(self):
        return "Descriptor(%s, %s, %s)" % (self.media_type, self.digest, self.size)


class Resolved:
    """One image: its manifest's digest, the config's descriptor and the layers' descriptors, in order."""

    def __init__(self, manifest_digest, config, layers, media_type=None, raw=None):
        self.manifest_digest = manifest_digest
        self.config = config
        self.layers = layers
        self.media_type = media_type
        self.raw = raw  # the manifest's bytes, for the action plugin's copy of a layout
        self.top_digest = manifest_digest  # the manifest the reference names (an index, when it names one)


def load_json(data, image, what, limit):
    if len(data) > limit:
        raise ImageError("%s is larger than the %d bytes accepted" % (what, limit), image=image)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ImageError("%s is not valid JSON: %s" % (what, e), image=image)
    except RecursionError:
        raise ImageError("%s nests its JSON too deeply to be read" % what, image=image)
    if not isinstance(value, dict):
        raise ImageError("%s is not a JSON object" % what, image=image)
    return value


def parse_descriptor(value, image, what):
    if not isinstance(value, dict):
        raise ImageError("%s is not a descriptor object" % what, image=image)
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ImageError("%s has no mediaType" % what, image=image)
    digest = parse_digest(value.get("digest"), image, "%s digest" % what)
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ImageError("%s %s has no valid size" % (what, digest), image=image)
    annotations = value.get("annotations") or {}
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise ImageError("%s %s has an invalid platform" % (what, digest), image=image)
    if not isinstance(annotations, dict):
        raise ImageError("%s %s has invalid annotations" % (what, digest), image=image)
    return Descriptor(media_type, digest, size, platform, annotations, value.get("urls"))


def kind_of(document, declared, image, what):
    """'manifest' or 'index', from the document's own mediaType, else the declared one, else its shape."""
    if document.get("schemaVersion") == 1 or declared in SCHEMA1 or document.get("mediaType") in SCHEMA1:
        raise ImageError("%s is a Docker schema 1 manifest, which is not supported (push the image again "
                         "with a current client to get schema 2 or OCI)" % what, image=image)
    if document.get("schemaVersion") != 2:
        raise ImageError("%s has schemaVersion %r, not 2" % (what, document.get("schemaVersion")), image=image)
    media_type = document.get("mediaType") or declared
    if media_type in MANIFEST_TYPES:
        return "manifest", media_type
    if media_type in INDEX_TYPES:
        return "index", media_type
    if not media_type or media_type in ("application/json", "application/octet-stream"):
        if "manifests" in document and "layers" not in document:
            return "index", OCI_INDEX
        if "layers" in document and "config" in document:
            return "manifest", OCI_MANIFEST
    raise ImageError("%s has the unsupported media type %r (accepted: %s)" % (what, media_type, ", ".join(ACCEPT)),
                     image=image)


def parse_manifest(document, image, digest):
    what = "manifest %s" % digest
    config = parse_descriptor(document.get("config"), image, "the config of " + what)
    if config.media_type not in CONFIG_TYPES:
        raise ImageError("config %s has the unsupported media type %r (an artifact, not an image?)"
                         % (config.digest, config.media_type), image=image)
    if config.size > MAX_CONFIG:
        raise ImageError("config %s is %d bytes, more than the %d accepted" % (config.digest, config.size, MAX_CONFIG),
                         image=image)
    raw_layers = document.get("layers")
    if not isinstance(raw_layers, list):
        raise ImageError("%s has no layers list" % what, image=image)
    if len(raw_layers) > MAX_LAYERS:
        raise ImageError("%s lists %d layers, more than the %d accepted" % (what, len(raw_layers), MAX_LAYERS),
                         image=image)
    layers = []
    for i, raw in enumerate(raw_layers):
        layer = parse_descriptor(raw, image, "layer %d of %s" % (i, what))
        if layer.media_type in FOREIGN_LAYER_TYPES:
            raise ImageError("layer %d has the foreign (non-distributable) media type %s; its content is not "
                             "in the image and is not fetched from elsewhere" % (i, layer.media_type),
                             image=image, blob=layer.digest)
        compression = LAYER_TYPES.get(layer.media_type)
        if compression is None:
            raise ImageError("layer %d has the unsupported media type %r (accepted: %s)"
                             % (i, layer.media_type, ", ".join(sorted(LAYER_TYPES))), image=image, blob=layer.digest)
        layer.compression = compression
        layers.append(layer)
    return config, layers


def parse_index(document, image, digest):
    raw = document.get("manifests")
    if not isinstance(raw, list):
        raise ImageError("index %s has no manifests list" % digest, image=image)
    return [parse_descriptor(m, image, "entry %d of index %s" % (i, digest)) for i, m in enumerate(raw)]


def machine_platform(machine):
    """(os, arch, variant) of a Linux machine as `uname -m` names it."""
    machine = machine.strip().lower()
    arch, variant = _MACHINES.get(machine, (machine, None))
    return "linux", arch, variant


def host_platform():
    return machine_platform(host_platform_module.machine())


def parse_platform(text, image=None):
    """os/arch[/variant]; None means the host's."""
    if text is None or text == "":
        return host_platform()
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError("platform %r must be os/arch[/variant], for example linux/amd64 or linux/arm/v7" % text,
                         image=image)
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _platform_text(p):
    if not p:
        return "(none)"
    text = "%s/%s" % (p.get("os"), p.get("architecture"))
    if p.get("variant"):
        text += "/" + p["variant"]
    return text


def select_platform(entries, wanted, image, index_digest):
    """The entry for os/arch[/variant], as containerd picks it (platforms.py): names normalized on both
    sides, the closest compatible platform first, the index's order among equals."""
    chosen = platforms.best_entry(entries, wanted)
    if chosen is None:
        offered = ", ".join(sorted(_platform_text(e.platform) for e in entries)) or "nothing"
        want_os, want_arch, want_variant = wanted
        wanted_text = "%s/%s%s" % (want_os, want_arch, "/" + want_variant if want_variant else "")
        raise ImageError("index %s has no image for platform %s (it offers %s)" % (index_digest, wanted_text, offered),
                         image=image)
    return chosen


def resolve(fetch_manifest, data, declared_type, digest, wanted_platform, image):
    """Walk from the first manifest or index down to one image manifest.

    fetch_manifest(descriptor) returns the verified bytes of a child manifest;
    an index that leads back to one already seen, or deeper than MAX_INDEX_DEPTH,
    is an error.
    """
    seen = set()
    top = digest
    for _depth in range(MAX_INDEX_DEPTH + 1):
        if digest in seen:
            raise ImageError("index %s refers back to itself" % digest, image=image)
        seen.add(digest)
        document = load_json(data, image, "manifest %s" % digest, MAX_MANIFEST)
        kind, media_type = kind_of(document, declared_type, image, "manifest %s" % digest)
        if kind == "manifest":
            config, layers = parse_manifest(document, image, digest)
            resolved = Resolved(digest, config, layers, media_type, data)
            resolved.top_digest = top  # what the reference names: the index, for a multi-platform image
            return resolved
        entries = parse_index(document, image, digest)
        chosen = select_platform(entries, wanted_platform, image, digest)
        if chosen.digest in seen:
            raise ImageError("index %s refers back to itself" % chosen.digest, image=image)
        if chosen.size > MAX_MANIFEST:
            raise ImageError("manifest %s is %d bytes, more than the %d accepted" % (chosen.digest, chosen.size,
                                                                                     MAX_MANIFEST), image=image)
        data = fetch_manifest(chosen)
        verify_bytes(data, chosen.digest, chosen.size, image, "manifest")
        declared_type, digest = chosen.media_type, chosen.digest
    raise ImageError("indexes nest deeper than %d levels" % MAX_INDEX_DEPTH, image=image)


def parse_config(data, image, digest, layer_count):
    """diff_ids (one per layer, in order) and the config's `config` object."""
    document = load_json(data, image, "config %s" % digest, MAX_CONFIG)
    rootfs = document.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ImageError("config %s has no rootfs of type layers" % digest, image=image, blob=digest)
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise ImageError("config %s has no rootfs.diff_ids list" % digest, image=image, blob=digest)
    for i, diff_id in enumerate(diff_ids):
        parse_digest(diff_id, image, "diff_id %d of config %s" % (i, digest))
    if len(diff_ids) != layer_count:
        raise ImageError("config %s lists %d diff_ids for the manifest's %d layers"
                         % (digest, len(diff_ids), layer_count), image=image, blob=digest)
    if not diff_ids:
        raise ImageError("the image has no layers", image=image, blob=digest)
    run_config = document.get("config")
    if run_config is not None and not isinstance(run_config, dict):
        raise ImageError("config %s: `config` is not an object" % digest, image=image, blob=digest)
    return diff_ids, run_config or {}


def digest_of(data):
    return sha256_bytes(data)


# Docker's layer store refuses a chain deeper than this (maxLayerDepth in moby's layer_store.go), and an
# overlay2 mount stacks at most 128 lowers (short_links.MAX_DEPTH), so a writable layer on such an image's
# top still mounts. In the seed's overlay layout it also bounds what an image can make the home pay: every
# layer there holds a hardlink copy of the whole tree below it.
MAX_IMAGE_LAYERS = 125


def check_layer_count(diff_ids, image):
    """An ImageError for an image of more than MAX_IMAGE_LAYERS layers: asked as soon as the config is read, here
    and by the action plugin before it fetches or sends a layer of it."""
    if len(diff_ids) > MAX_IMAGE_LAYERS:
        raise ImageError("the image has %d layers; at most %d are staged (Docker's own limit, which keeps a "
                         "writable layer on its top mountable in both layouts)" % (len(diff_ids), MAX_IMAGE_LAYERS),
                         image=image)
