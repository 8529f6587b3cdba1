# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a small OCI image layout (one gzip layer) for the demo, with the standard library only.

The demo stays offline and needs no image tool: this is the layout that
`skopeo copy ... oci:DIR:demo` or `umoci` would write for a one-layer image,
byte for byte reproducible (fixed times and owners, gzip without a timestamp).
Usage: make_oci_layout.py DIR [REF]
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

FILES = {
    "etc/demo-image-release": b"strata.overlay demo image 1\n",
    "srv/www/index.html": b"<h1>served from the image's layer</h1>\n",
    "usr/share/doc/demo/README": b"This layer came from an OCI image layout.\n",
}
MTIME = 1700000000


def layer_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({os.path.dirname(p)[:i] for p in FILES for i in range(1, len(os.path.dirname(p)) + 1)
                       if os.path.dirname(p)[i:i + 1] in ("/", "")})
        for name in dirs:
            info = tarfile.TarInfo(name + "/")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
            tar.addfile(info)
        for name, data in sorted(FILES.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, MTIME
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest


def main(out, ref="demo"):
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    tar = layer_tar()
    compressed = gzip.compress(tar, mtime=0)
    layer_digest = write_blob(blobs, compressed)
    config = json.dumps({
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/srv/www", "Labels": {"demo": "strata.overlay"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
    }, sort_keys=True).encode()
    config_digest = write_blob(blobs, config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest,
                    "size": len(compressed)}],
    }, sort_keys=True).encode()
    manifest_digest = write_blob(blobs, manifest)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
            "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": ref}}]}, f, sort_keys=True)
    print(json.dumps({"manifest": manifest_digest, "diff_id": "sha256:" + hashlib.sha256(tar).hexdigest()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
