"""A local registry holding a small three-layer image, for the pull: controller target.

    registry.py start DIR   build the image, start docker-registry on 127.0.0.1 over TLS (a
                            self-signed certificate made here), push the image with skopeo and
                            print what the tasks check against, as JSON
    registry.py stop DIR    stop that registry (its pid is in DIR/registry.pid) and remove DIR

Everything lives in DIR: the certificate, the registry's storage, its log and the
OCI layout the image is pushed from. stop is safe to run whatever start got to.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

REPO = "strata/pull"
TAG = "v1"
READY_SECONDS = 30


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


def layers():
    """A base, an application on it, and a layer that deletes the base's program (a whiteout)."""
    return [
        layer_tar([("etc", None, 0o755), ("etc/os-release", b"ID=strata\n", 0o644),
                   ("bin", None, 0o755), ("bin/hello", b"#!/bin/sh\necho hello\n", 0o755)]),
        layer_tar([("app", None, 0o755), ("app/run.sh", b"#!/bin/sh\nexec /bin/hello\n", 0o755)]),
        layer_tar([("bin", None, 0o755), ("bin/.wh.hello", b"", 0o644),
                   ("etc", None, 0o755), ("etc/motd", b"pulled by the controller\n", 0o644)]),
    ]


def chain_ids(diff_ids):
    ids, chain = [], None
    for diff_id in diff_ids:
        chain = diff_id if chain is None else sha256(("%s %s" % (chain, diff_id)).encode())
        ids.append(chain.split(":", 1)[1])
    return ids


def write_layout(path):
    """An OCI layout of the image, tagged TAG; returns (diff_ids, layer digests, config digest)."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data):
        digest = sha256(data)
        with open(os.path.join(blobs, digest.split(":", 1)[1]), "wb") as f:
            f.write(data)
        return digest, len(data)

    tars = layers()
    diff_ids = [sha256(t) for t in tars]
    gzipped = [put(gzip.compress(t, mtime=0)) for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"WorkingDir": "/app", "Cmd": ["/app/run.sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_digest, config_size = put(config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}
                   for d, s in gzipped]}).encode()
    manifest_digest, manifest_size = put(manifest)
    with open(os.path.join(path, "oci-layout"), "w", encoding="ascii") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(path, "index.json"), "w", encoding="ascii") as f:
        json.dump({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
            "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": TAG}}]}, f)
    return diff_ids, [d for d, _s in gzipped], config_digest, manifest_digest


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 in directory/certs (ca.crt: the same, as skopeo wants it)."""
    certs = os.path.join(directory, "certs")
    os.makedirs(certs)
    crt, key = os.path.join(directory, "server.crt"), os.path.join(directory, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", crt],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.copy(crt, os.path.join(certs, "ca.crt"))
    return crt, key, certs


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_registry(directory, crt, key):
    """docker-registry serving directory/storage on a free port, in a session of its own; its port."""
    port = free_port()
    config = os.path.join(directory, "config.yml")
    with open(config, "w", encoding="ascii") as f:
        f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
                "http:\n  addr: 127.0.0.1:%d\n  tls:\n    certificate: %s\n    key: %s\n"
                % (os.path.join(directory, "storage"), port, crt, key))
    with open(os.path.join(directory, "registry.log"), "ab") as log:
        proc = subprocess.Popen(["docker-registry", "serve", config], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    with open(os.path.join(directory, "registry.pid"), "w", encoding="ascii") as f:
        f.write("%d\n" % proc.pid)
    context = ssl.create_default_context(cafile=crt)
    deadline = time.monotonic() + READY_SECONDS
    while True:
        if proc.poll() is not None:
            raise SystemExit("docker-registry exited with %s; see %s/registry.log" % (proc.returncode, directory))
        try:
            urllib.request.urlopen("https://127.0.0.1:%d/v2/" % port, context=context, timeout=2).close()
            return port
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise SystemExit("docker-registry not ready after %d s" % READY_SECONDS)
            time.sleep(0.1)


def start(directory):
    os.makedirs(directory, mode=0o700)
    layout = os.path.join(directory, "layout")
    diff_ids, digests, config_digest, manifest_digest = write_layout(layout)
    crt, key, certs = make_certificate(directory)
    port = start_registry(directory, crt, key)
    host = "127.0.0.1:%d" % port
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-cert-dir", certs, "oci:%s:%s" % (layout, TAG),
                    "docker://%s/%s:%s" % (host, REPO, TAG)], check=True, stdout=subprocess.DEVNULL)
    print(json.dumps({"src": "docker://%s/%s:%s" % (host, REPO, TAG), "ca": crt, "diff_ids": diff_ids,
                      "ids": chain_ids(diff_ids), "layer_digests": digests, "config_digest": config_digest,
                      "manifest_digest": manifest_digest}))


def running(pid):
    """Whether pid is alive (a zombie nobody reaped yet is not)."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop(directory):
    try:
        with open(os.path.join(directory, "registry.pid"), encoding="ascii") as f:
            pid = int(f.read())
    except (OSError, ValueError):
        pid = None
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGTERM)
            for _tick in range(100):
                if not running(pid):
                    break
                time.sleep(0.1)
            else:
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    {"start": start, "stop": stop}[sys.argv[1]](sys.argv[2])
