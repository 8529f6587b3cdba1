"""Test helpers for images: the integration target's image builder, importable, plus tampering tools."""

import importlib.util
import json
import os

_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration", "targets", "overlay_image",
                       "files", "mkimages.py")
_spec = importlib.util.spec_from_file_location("mkimages", _SCRIPT)
mkimages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mkimages)

sha256 = mkimages.sha256
chain_ids = mkimages.chain_ids


def manifest_bytes(config, layers, media_type=mkimages.OCI_MANIFEST, **extra):
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers}
    doc.update(extra)
    return json.dumps(doc, sort_keys=True).encode()


class Image:
    """One image's parts, kept so tests can rebuild a tampered copy."""

    def __init__(self, tars=None, compression="gzip", arch="amd64"):
        self.tars = tars or mkimages.default_layers()
        self.blobs = mkimages.Blobs()
        self.manifest = mkimages.build_image(self.blobs, self.tars, compression, arch)
        self.doc = json.loads(self.blobs.blobs[self.manifest["digest"]])
        self.diff_ids = [sha256(t) for t in self.tars]
        self.ids = chain_ids(self.diff_ids)

    def layer_digest(self, i):
        return self.doc["layers"][i]["digest"]

    def rewrite(self, doc):
        """A new manifest for doc; its descriptor."""
        self.doc = doc
        media_type = doc.get("mediaType", mkimages.OCI_MANIFEST)
        self.manifest = self.blobs.add(json.dumps(doc, sort_keys=True).encode(), media_type)
        return self.manifest

    def replace_config(self, config_doc):
        data = json.dumps(config_doc, sort_keys=True).encode()
        doc = dict(self.doc, config=self.blobs.add(data, mkimages.OCI_CONFIG))
        return self.rewrite(doc)

    def config_doc(self):
        return json.loads(self.blobs.blobs[self.doc["config"]["digest"]])

    def write_layout(self, path, ref="v1", extra_entries=()):
        entry = dict(self.manifest)
        if ref:
            entry["annotations"] = {"org.opencontainers.image.ref.name": ref}
        mkimages.write_layout(path, self.blobs, [entry] + list(extra_entries))
        return path

    def blob_path(self, layout, digest):
        return os.path.join(layout, "blobs", "sha256", digest.split(":")[1])
