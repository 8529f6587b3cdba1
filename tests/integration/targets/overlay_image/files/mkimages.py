"""Build small images offline: OCI layouts (dir and archive) and docker save archives.

Used as a script by the overlay_image integration target (prints what it made
as JSON) and imported by the unit tests, which tamper with what it builds.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(entries):
    """entries: (name, data or None for a directory, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(data, compression):
    if compression == "none":
        return data
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    raise ValueError(compression)


def default_layers():
    base = layer_tar([("etc", None, 0o755), ("etc/os-release", b"ID=strata\n", 0o644),
                      ("bin", None, 0o755), ("bin/hello", b"#!/bin/sh\necho hello\n", 0o755),
                      ("var", None, 0o755), ("var/old", b"old\n", 0o644)])
    app = layer_tar([("app", None, 0o755), ("app/run.sh", b"#!/bin/sh\nexec /bin/hello\n", 0o755),
                     ("var/.wh.old", b"", 0o644)])
    return [base, app]


def image_config(diff_ids, arch="amd64", env=None):
    return json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Env": env or ["PATH=/usr/bin:/bin"], "Cmd": ["/app/run.sh"], "WorkingDir": "/app",
                   "Labels": {"org.example.name": "strata-test"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "mkimages %d" % i} for i in range(len(diff_ids))],
    }, sort_keys=True).encode()


class Blobs:
    """A blob store: content by digest, with descriptors for it."""

    def __init__(self):
        self.blobs = {}

    def add(self, data, media_type, **extra):
        digest = sha256(data)
        self.blobs[digest] = data
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        desc.update(extra)
        return desc


def build_image(blobs, tars, compression="gzip", arch="amd64", env=None, layer_types=None):
    """Add one image's blobs; its manifest descriptor."""
    diff_ids = [sha256(t) for t in tars]
    config = blobs.add(image_config(diff_ids, arch, env), OCI_CONFIG)
    layers = []
    for i, tar in enumerate(tars):
        kind = compression[i] if isinstance(compression, (list, tuple)) else compression
        media_type = (layer_types or {}).get(i, LAYER_TYPES[kind])
        layers.append(blobs.add(compress(tar, kind), media_type))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                           "layers": layers}, sort_keys=True).encode()
    return blobs.add(manifest, OCI_MANIFEST)


def write_layout(path, blobs, entries):
    """An OCI layout directory whose index.json lists entries (descriptors)."""
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, f)
    for digest, data in blobs.blobs.items():
        with open(os.path.join(path, "blobs", "sha256", digest.split(":")[1]), "wb") as f:
            f.write(data)


def tar_directory(src, dest):
    """A tar of a directory's contents, as oci-archive and docker save write them."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(os.listdir(src)):
            tf.add(os.path.join(src, name), arcname=name)


def write_docker_archive(dest, tars, tag="strata/test:1", env=None, oci_style=False):
    """A docker save archive: legacy (<id>/layer.tar, <hex>.json) or Docker 25's (blobs/sha256/...)."""
    diff_ids = [sha256(t) for t in tars]
    config = image_config(diff_ids, env=env)
    config_hex = hashlib.sha256(config).hexdigest()
    files = {}
    layer_names = []
    for i, tar in enumerate(tars):
        if oci_style:
            name = "blobs/sha256/" + hashlib.sha256(tar).hexdigest()
        else:
            name = "%s/layer.tar" % hashlib.sha256(("%d" % i).encode() + tar).hexdigest()
        files[name] = tar
        layer_names.append(name)
    config_name = ("blobs/sha256/" + config_hex) if oci_style else config_hex + ".json"
    files[config_name] = config
    files["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": [tag],
                                          "Layers": layer_names}]).encode()
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            tf.addfile(info, io.BytesIO(data))
    return {"diff_ids": diff_ids, "config_digest": "sha256:" + config_hex}


def chain_ids(diff_ids):
    out, chain = [], None
    for d in diff_ids:
        chain = d if chain is None else sha256((chain + " " + d).encode())
        out.append(chain)
    return [c.split(":")[1] for c in out]


def main(out):
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    tars = default_layers()
    blobs = Blobs()
    manifest = build_image(blobs, tars, ["gzip", "zstd"])
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    layout = os.path.join(out, "layout")
    write_layout(layout, blobs, [manifest])
    tar_directory(layout, os.path.join(out, "image.oci.tar"))
    facts = write_docker_archive(os.path.join(out, "image.docker.tar"), tars)
    # A layout whose second layer is a lie: right size, wrong bytes.
    bad = os.path.join(out, "bad-layout")
    shutil.copytree(layout, bad)
    second = json.loads(blobs.blobs[manifest["digest"]])["layers"][1]["digest"]
    path = os.path.join(bad, "blobs", "sha256", second.split(":")[1])
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        f.seek(0)
        f.write(data)
    # One image per platform, listed at the top of index.json (no ref names).
    multi = Blobs()
    amd = build_image(multi, tars, "gzip", "amd64")
    arm_tars = [layer_tar([("arch", b"arm64\n", 0o644)])]
    arm = build_image(multi, arm_tars, "gzip", "arm64")
    amd["platform"] = {"os": "linux", "architecture": "amd64"}
    arm["platform"] = {"os": "linux", "architecture": "arm64", "variant": "v8"}
    write_layout(os.path.join(out, "multi"), multi, [arm, amd])
    print(json.dumps({"diff_ids": facts["diff_ids"], "ids": chain_ids(facts["diff_ids"]),
                      "arm_ids": chain_ids([sha256(t) for t in arm_tars]), "amd_manifest": amd["digest"],
                      "manifest_digest": manifest["digest"], "bad_blob": second,
                      "config_digest": facts["config_digest"]}))


if __name__ == "__main__":
    main(sys.argv[1])
