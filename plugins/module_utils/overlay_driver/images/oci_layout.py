# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI image layouts (image-spec image-layout.md), as a directory (oci:) or a tar of one (oci-archive:).

index.json is the only file not addressed by its content; every blob is read
from blobs/<alg>/<hex> and checked against the digest that names it.
"""

import contextlib

from . import manifests
from .digests import hex_of, verify_bytes
from .errors import ImageError
from .files import FileSource, read_small

REF_NAME = "org.opencontainers.image.ref.name"


def blob_path(digest):
    algorithm, hexpart = digest.split(":", 1)
    return "blobs/%s/%s" % (algorithm, hexpart)


class OciLayout(FileSource):
    def __init__(self, reference):
        super().__init__(reference, want_dir=reference.transport == "oci")

    def _read_blob(self, descriptor, limit, what):
        try:
            data = read_small(self.files, blob_path(descriptor.digest), limit, what)
        except ImageError as e:
            if e.cause.startswith(what):
                raise
            raise e.prefix("the %s: " % what)
        return verify_bytes(data, descriptor.digest, descriptor.size, self.image, what)

    def _check_layout(self):
        try:
            data = read_small(self.files, "oci-layout", 4096, "oci-layout")
        except ImageError:
            raise ImageError("no oci-layout file: not an OCI image layout", image=self.image, path=self.files.path)
        layout = manifests.load_json(data, self.image, "oci-layout", 4096)
        if layout.get("imageLayoutVersion") != "1.0.0":
            raise ImageError("unsupported imageLayoutVersion %r" % layout.get("imageLayoutVersion"),
                             image=self.image, path=self.files.path)

    def resolve(self, wanted_platform):
        self._check_layout()
        data = read_small(self.files, "index.json", manifests.MAX_MANIFEST, "index.json")
        index = manifests.load_json(data, self.image, "index.json", manifests.MAX_MANIFEST)
        entries = manifests.parse_index(index, self.image, "index.json")
        ref = self.reference.ref
        if ref:
            chosen = [e for e in entries if e.annotations.get(REF_NAME) == ref]
            if not chosen:
                names = sorted(set(e.annotations.get(REF_NAME) for e in entries if e.annotations.get(REF_NAME)))
                raise ImageError("no image named %r in index.json (it has %s)" % (ref, ", ".join(names) or "no names"),
                                 image=self.image, path=self.files.path)
        else:
            chosen = entries
        if len(chosen) > 1:
            if all(e.platform for e in chosen):  # one image for several platforms, listed at the top
                entry = manifests.select_platform(chosen, wanted_platform, self.image, "index.json")
            else:
                raise ImageError("index.json lists %d images; name one with %s:PATH:REF"
                                 % (len(chosen), self.reference.transport), image=self.image, path=self.files.path)
        elif not chosen:
            raise ImageError("index.json lists no image", image=self.image, path=self.files.path)
        else:
            entry = chosen[0]
        if entry.size > manifests.MAX_MANIFEST:
            raise ImageError("manifest %s is %d bytes, more than the %d accepted"
                             % (entry.digest, entry.size, manifests.MAX_MANIFEST), image=self.image)
        data = self._read_blob(entry, manifests.MAX_MANIFEST, "manifest")

        def fetch(descriptor):
            return self._read_blob(descriptor, manifests.MAX_MANIFEST, "manifest")

        return manifests.resolve(fetch, data, entry.media_type, entry.digest, wanted_platform, self.image)

    def read_config(self, descriptor):
        return self._read_blob(descriptor, manifests.MAX_CONFIG, "config")

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        try:
            f, _size = self.files.open(blob_path(descriptor.digest))
        except ImageError as e:
            raise ImageError("layer blob %s is missing from the layout: %s" % (hex_of(descriptor.digest), e.cause),
                             image=self.image, blob=descriptor.digest)
        with f:
            yield f

    def has_blob(self, descriptor):
        return self.files.exists(blob_path(descriptor.digest))
