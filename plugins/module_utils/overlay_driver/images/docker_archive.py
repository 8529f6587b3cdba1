# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`docker save` archives (docker-archive:), in both layouts Docker writes.

manifest.json lists, per image, its Config and its Layers. Docker before 25
names them <hex>.json and <id>/layer.tar (uncompressed tars whose only proof is
their diff_id); Docker 25 and later write an OCI layout inside the archive and
name them blobs/sha256/<hex>, which is then also the layer's digest. There is
no registry manifest, so manifest_digest is None; the config's digest is
Docker's image id.

A directory with the archive's files is read the same way: the action plugin
sends only the files a host lacks, and a layer that is not there is only an
error if it has to be staged.
"""

import contextlib
import json
import os
import re

from . import manifests
from .digests import verify_bytes
from .errors import ImageError
from .files import FileSource, member_name, read_small

_HEX_JSON = re.compile(r"^([0-9a-f]{64})\.json$")
_BLOB = re.compile(r"^(?:\./)?blobs/sha256/([0-9a-f]{64})$")
MAX_MANIFEST_JSON = 1 << 20


def _digest_in_name(name):
    m = _HEX_JSON.match(name) or _BLOB.match(name)
    return "sha256:" + m.group(1) if m else None


def _normalize_tag(name):
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


class DockerArchive(FileSource):
    def __init__(self, reference):
        super().__init__(reference, want_dir=os.path.isdir(reference.path))

    def _entry(self):
        data = read_small(self.files, "manifest.json", MAX_MANIFEST_JSON, "manifest.json")
        try:
            entries = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ImageError("manifest.json is not valid JSON: %s" % e, image=self.image, path=self.files.path)
        except RecursionError:
            raise ImageError("manifest.json nests its JSON too deeply to be read", image=self.image,
                             path=self.files.path)
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ImageError("manifest.json is not a list of images", image=self.image, path=self.files.path)
        ref, index = self.reference.ref, self.reference.index
        if index is not None:
            if index >= len(entries):
                raise ImageError("the archive has %d images; there is no @%d" % (len(entries), index),
                                 image=self.image, path=self.files.path)
            return entries[index]
        if ref:
            want = _normalize_tag(ref)
            for entry in entries:
                tags = entry.get("RepoTags") or []
                if any(isinstance(t, str) and _normalize_tag(t) == want for t in tags):
                    return entry
            raise ImageError("no image tagged %s in the archive" % ref, image=self.image, path=self.files.path)
        if len(entries) > 1:
            raise ImageError("the archive holds %d images; name one with :NAME:TAG or :@INDEX" % len(entries),
                             image=self.image, path=self.files.path)
        return entries[0]

    def resolve(self, wanted_platform):
        del wanted_platform  # an archive holds one image per entry, no index
        entry = self._entry()
        config_name = entry.get("Config")
        layer_names = entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list) or \
                not all(isinstance(n, str) for n in layer_names):
            raise ImageError("manifest.json: an entry needs Config and Layers", image=self.image, path=self.files.path)
        if len(layer_names) > manifests.MAX_LAYERS:
            raise ImageError("manifest.json lists %d layers, more than the %d accepted"
                             % (len(layer_names), manifests.MAX_LAYERS), image=self.image)
        # Member names, never paths: checked and normalized here, before anything reads or sends them.
        config_name = member_name(config_name, self.image)
        layer_names = [member_name(n, self.image) for n in layer_names]
        for source in (entry.get("LayerSources") or {}).values():
            media_type = source.get("mediaType") if isinstance(source, dict) else None
            if media_type in manifests.FOREIGN_LAYER_TYPES:
                raise ImageError("a layer has the foreign (non-distributable) media type %s" % media_type,
                                 image=self.image)
        config = manifests.Descriptor(manifests.CONFIG_TYPES[1], _digest_in_name(config_name), None,
                                      path=config_name)
        layers = []
        for name in layer_names:
            size = None
            if self.files.exists(name):
                f, size = self.files.open(name)  # its size, before anything is staged
                f.close()
            layers.append(manifests.Descriptor("application/vnd.docker.image.rootfs.diff.tar", _digest_in_name(name),
                                               size, compression="auto", path=name))
        return manifests.Resolved(None, config, layers)

    def read_config(self, descriptor):
        data = read_small(self.files, descriptor.path, manifests.MAX_CONFIG, "config")
        if descriptor.digest is not None:
            verify_bytes(data, descriptor.digest, None, self.image, "config")
        else:
            descriptor.digest = manifests.digest_of(data)
        return data

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        try:
            f, size = self.files.open(descriptor.path)
        except ImageError as e:
            raise ImageError("layer %s: %s" % (descriptor.path, e.cause), image=self.image, blob=descriptor.digest)
        if descriptor.size is not None and size != descriptor.size:
            f.close()
            raise ImageError("layer %s changed size while being read" % descriptor.path, image=self.image,
                             blob=descriptor.digest)
        with f:
            yield f
