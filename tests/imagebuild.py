"""Test images built offline, in Python: OCI image layouts and `docker save` archives.

Images are what operators stage, so the tests need real ones: a config whose
``rootfs.diff_ids`` are the sha256 of each uncompressed layer, a manifest naming
each blob by digest and size, an index for several platforms. Everything here is
written by hand from the image-spec, with no daemon and no network, and then
pushed into a test registry with ``skopeo copy`` (which compresses the layers
with gzip, or zstd when asked: skopeo decides the bytes the registry serves, as
it does for real registries).

A layer is given as ``bytes`` (an uncompressed tar) or as the path of a file
holding one (large layers for the benchmark are never held in memory).
"""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

from layertools import TarBuilder

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = {"none": "application/vnd.oci.image.layer.v1.tar",
             "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
             "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}
REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1 << 20


def _digest_of(layer):
    h = hashlib.sha256()
    if isinstance(layer, (bytes, bytearray)):
        h.update(layer)
        return "sha256:" + h.hexdigest(), len(layer)
    size = 0
    with open(layer, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def chain_ids(diff_ids):
    """image-spec ChainIDs: the layer ids strata gives an image's layers (hex, no prefix)."""
    out, chain = [], None
    for diff_id in diff_ids:
        chain = diff_id if chain is None else "sha256:" + hashlib.sha256((chain + " " + diff_id).encode()).hexdigest()
        out.append(chain.split(":", 1)[1])
    return out


class Image:
    """One platform's image: layers (uncompressed tars, bottom first), platform and config."""

    def __init__(self, layers, os_name="linux", arch="amd64", variant=None, config=None,
                 created="2024-01-02T03:04:05Z"):
        self.layers = list(layers)
        self.os = os_name
        self.arch = arch
        self.variant = variant
        self.runtime_config = config if config is not None else {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"], "WorkingDir": "/", "Labels": {"org.example.test": "strata"}}
        self.created = created
        self._diff_ids = None

    @property
    def diff_ids(self):
        if self._diff_ids is None:
            self._diff_ids = [_digest_of(layer)[0] for layer in self.layers]
        return self._diff_ids

    @property
    def chain_ids(self):
        return chain_ids(self.diff_ids)

    @property
    def platform(self):
        p = {"architecture": self.arch, "os": self.os}
        if self.variant:
            p["variant"] = self.variant
        return p

    def config_bytes(self):
        config = {"created": self.created, "architecture": self.arch, "os": self.os,
                  "config": self.runtime_config,
                  "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
                  "history": [{"created": self.created, "created_by": "strata test layer %d" % i}
                              for i in range(len(self.layers))]}
        if self.variant:
            config["variant"] = self.variant
        return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


class Index:
    """Several platforms' images under one reference."""

    def __init__(self, images):
        self.images = list(images)


class _Blobs:
    """The blobs/sha256 directory of an OCI layout."""

    def __init__(self, root):
        self.dir = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.dir, exist_ok=True)

    def put_bytes(self, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = os.path.join(self.dir, digest[7:])
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
        return digest, len(data)

    def put_layer(self, layer, compression):
        """The layer as stored (compressed as asked): (digest, size) of the stored blob."""
        if compression == "none":
            if isinstance(layer, (bytes, bytearray)):
                return self.put_bytes(bytes(layer))
            return self._put_file(layer)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if compression == "gzip":
                    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz:
                        _copy_layer(layer, gz)
                elif compression == "zstd":
                    with subprocess.Popen(["zstd", "-q", "-3", "-c"], stdin=subprocess.PIPE, stdout=out) as zst:
                        _copy_layer(layer, zst.stdin)
                        zst.stdin.close()
                    if zst.returncode:
                        raise RuntimeError("zstd failed with %d" % zst.returncode)
                else:
                    raise ValueError("compression %r" % compression)
            digest, size = _digest_of(tmp)
            os.rename(tmp, os.path.join(self.dir, digest[7:]))
            return digest, size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _put_file(self, path):
        digest, size = _digest_of(path)
        dest = os.path.join(self.dir, digest[7:])
        if not os.path.exists(dest):
            try:
                os.link(path, dest)
            except OSError:
                shutil.copyfile(path, dest)
        return digest, size


def _copy_layer(layer, out):
    if isinstance(layer, (bytes, bytearray)):
        out.write(layer)
        return
    with open(layer, "rb") as f:
        shutil.copyfileobj(f, out, CHUNK)


def _descriptor(media_type, digest, size, **extra):
    d = {"mediaType": media_type, "digest": digest, "size": size}
    d.update(extra)
    return d


def _write_manifest(blobs, image, compression):
    config_desc = _descriptor(OCI_CONFIG, *blobs.put_bytes(image.config_bytes()))
    layers = [_descriptor(OCI_LAYER[compression], *blobs.put_layer(layer, compression)) for layer in image.layers]
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": layers}
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    digest, size = blobs.put_bytes(data)
    return _descriptor(OCI_MANIFEST, digest, size)


def write_oci_layout(path, refs, compression="none"):
    """An OCI image layout at ``path`` with ``refs`` {ref name: Image or Index}.

    Returns {ref name: digest of what the ref names (a manifest, or an index)}.
    A layout that exists already gets the new refs added (blobs are shared).
    """
    blobs = _Blobs(path)
    with open(os.path.join(path, "oci-layout"), "w", encoding="ascii") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    index_path = os.path.join(path, "index.json")
    try:
        with open(index_path, "rb") as f:
            top = json.load(f)
    except FileNotFoundError:
        top = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    out = {}
    for name, item in refs.items():
        if isinstance(item, Index):
            entries = []
            for image in item.images:
                desc = _write_manifest(blobs, image, compression)
                desc["platform"] = image.platform
                entries.append(desc)
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
            digest, size = blobs.put_bytes(json.dumps(index, sort_keys=True, separators=(",", ":")).encode())
            desc = _descriptor(OCI_INDEX, digest, size)
        else:
            desc = _write_manifest(blobs, item, compression)
        desc["annotations"] = {REF_NAME: name}
        top["manifests"] = [m for m in top["manifests"] if m.get("annotations", {}).get(REF_NAME) != name]
        top["manifests"].append(desc)
        out[name] = desc["digest"]
    with open(index_path, "w", encoding="ascii") as f:
        json.dump(top, f, sort_keys=True, separators=(",", ":"))
    return out


def write_docker_archive(path, image, repo_tag="strata/test:latest"):
    """A `docker save` archive (manifest.json, config, <id>/layer.tar) of one image, uncompressed layers."""
    import tarfile  # pylint: disable=import-outside-toplevel

    config = image.config_bytes()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_names = []
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data=None, file_path=None):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = 0o644
            if file_path is not None:
                info.size = os.path.getsize(file_path)
                with open(file_path, "rb") as f:
                    tar.addfile(info, f)
            else:
                info.size = len(data)
                tar.addfile(info, _BytesReader(data))

        def add_dir(name):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = 0
            tar.addfile(info)

        for layer, diff_id in zip(image.layers, image.diff_ids):
            name = diff_id[7:]
            add_dir(name)
            add(name + "/VERSION", b"1.0")
            add(name + "/json", json.dumps({"id": name}).encode())
            if isinstance(layer, (bytes, bytearray)):
                add(name + "/layer.tar", bytes(layer))
            else:
                add(name + "/layer.tar", file_path=layer)
            layer_names.append(name + "/layer.tar")
        add(config_name, config)
        manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]
        add("manifest.json", json.dumps(manifest).encode())
        repo, _sep, tag = repo_tag.rpartition(":")
        add("repositories", json.dumps({repo: {tag: layer_names[-1].split("/")[0]}}).encode())
    return path


class _BytesReader:
    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def read(self, n=-1):
        end = len(self.data) if n is None or n < 0 else self.pos + n
        chunk = self.data[self.pos:end].tobytes()
        self.pos += len(chunk)
        return chunk


BLOB_INFO_CACHE = "/var/lib/containers/cache"


def skopeo_copy(src, dest, cert_dir=None, creds=None, compression=None, all_platforms=False, fmt=None,
                src_cert_dir=None, src_creds=None, timeout=600, private_cache=False):
    """``skopeo copy`` SRC DEST; returns the digest of the manifest written (``--digestfile``).

    ``compression`` "gzip" or "zstd" picks the layers' compression at the
    destination (skopeo's own default for a registry is gzip); zstd needs an
    OCI manifest, which ``fmt="oci"`` (set for it) gives.

    ``private_cache`` runs skopeo in a mount namespace of its own with an empty
    blob-info cache: skopeo 1.9 otherwise reuses a gzip blob it pushed before
    for a layer it was asked to push as zstd (the cache maps the uncompressed
    digest to every compressed variant it has seen, and 1.9 ignores the asked
    compression when it substitutes), and would mount blobs across
    repositories; a push would then not be the image the test asked for.
    """
    fd, digest_file = tempfile.mkstemp(prefix="strata-digest-")
    os.close(fd)
    cmd = []
    if private_cache:
        os.makedirs(BLOB_INFO_CACHE, mode=0o700, exist_ok=True)
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
               'mount -t tmpfs -o mode=0700,size=64m strata-blob-cache "$0" && shift && exec "$@"',
               BLOB_INFO_CACHE, "skopeo-with-private-cache"]
    cmd += ["skopeo", "--insecure-policy", "copy", "--quiet", "--digestfile", digest_file]
    if cert_dir:
        cmd += ["--dest-cert-dir", cert_dir]
    if creds:
        cmd += ["--dest-creds", creds]
    if src_cert_dir:
        cmd += ["--src-cert-dir", src_cert_dir]
    if src_creds:
        cmd += ["--src-creds", src_creds]
    if compression == "zstd":
        cmd += ["--dest-compress-format", "zstd", "--dest-compress"]
        fmt = fmt or "oci"
    elif compression == "gzip":
        cmd += ["--dest-compress-format", "gzip", "--dest-compress"]
    if fmt:
        cmd += ["--format", fmt]
    if all_platforms:
        cmd += ["--all"]
    cmd += [src, dest]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, check=False)
        if proc.returncode:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode,
                                                       proc.stderr.decode(errors="replace")))
        with open(digest_file, encoding="ascii") as f:
            return f.read().strip()
    finally:
        os.unlink(digest_file)


def push(regs_or_registry, src, repo, tag="latest", compression="gzip", all_platforms=False, fmt=None,
         registry=None):
    """Push ``src`` (a skopeo source reference) to ``repo:tag`` of a test registry; the manifest digest.

    ``regs_or_registry`` is a :class:`registry.RegistrySet` (pushes to its
    htpasswd registry unless ``registry`` says which) or a
    :class:`registry.Registry` (credentials of the RegistrySet defaults).
    """
    from registry import RegistrySet  # pylint: disable=import-outside-toplevel

    if isinstance(regs_or_registry, RegistrySet):
        target = registry or regs_or_registry.basic
        creds = regs_or_registry.creds
    else:
        target = regs_or_registry
        creds = "%s:%s" % (RegistrySet.USER, RegistrySet.PASSWORD)
    return skopeo_copy(src, target.ref(repo, tag), cert_dir=target.pki.cert_dir, creds=creds,
                       compression=compression, all_platforms=all_platforms, fmt=fmt, private_cache=True)


def push_samples(regs, work, repos, tag="v1", compression="gzip"):
    """Write the sample images as an OCI layout in ``work`` and push them to ``regs``' htpasswd registry.

    ``repos`` maps each repository to the sample image it receives (several may get the same one);
    returns ``(layout, {repo: manifest digest})``.
    """
    layout = os.path.join(work, "layout")
    write_oci_layout(layout, sample_images())
    digests = {repo: push(regs, "oci:%s:%s" % (layout, name), repo, tag, compression)
               for repo, name in repos.items()}
    return layout, digests


# -- the sample images the registry and peer tests share ---------------------------------------------

CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\x00" * 12  # cap_net_raw, as ping carries it
T0 = 1700000000


def _pseudo_random(n, seed):
    out, block = bytearray(), seed.encode()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def base_layer():
    """A small root filesystem: every kind of entry a layer can hold, each directory with its own header."""
    long_dir = "usr/share/" + "d" * 60
    return (TarBuilder()
            .dir("bin", mode=0o755, mtime=T0 + 1).dir("etc", mtime=T0 + 2).dir("usr").dir("usr/bin", mtime=T0 + 3)
            .dir("usr/lib").dir("usr/share").dir(long_dir).dir("var").dir("var/cache").dir("var/cache/apt")
            .dir("var/lib").dir("opt").dir("opt/app").dir("opt/app/data").dir("dev").dir("run")
            .dir("tmp", mode=0o1777).dir("home").dir("home/user", mode=0o750, uid=1000, gid=1000)
            .dir("srv", mode=0o2775, gid=50)
            .file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
                  mtime=T0 + 10)
            .file("etc/shadow", "root:*:19000:0:99999:7:::\n", mode=0o640, gid=42)
            .file("etc/hostname", "strata\n")
            .file("etc/empty", b"")
            .file("usr/bin/ping", _pseudo_random(40000, "ping"), mode=0o4755, xattrs={"security.capability": CAP})
            .hardlink("usr/bin/ping4", "usr/bin/ping", mode=0o4755)
            .file("usr/bin/tool", _pseudo_random(70000, "tool"), mode=0o755, xattrs={"user.test": b"tool"})
            .file("usr/lib/libx.so.1", _pseudo_random(150000, "libx"), mode=0o644, mtime=T0 - 86400)
            .symlink("usr/lib/libx.so", "libx.so.1")
            .symlink("usr/lib/dangling", "/nonexistent/target")
            .symlink("lib", "usr/lib")
            .file(long_dir + "/" + "f" * 90 + ".txt", "a long name\n")
            .file("usr/share/caf\u00e9.txt", "unicode name\n")
            .file("var/cache/apt/pkgcache.bin", _pseudo_random(30000, "apt"))
            .file("var/lib/state", "s", uid=1000, gid=1000, mode=0o600)
            .file("opt/app/data/a", "a\n").file("opt/app/data/b", "b\n")
            .dir("opt/app/data/sub").file("opt/app/data/sub/c", "c\n")
            .file("opt/app/config", "v1\n")
            .device("dev/null", major=1, minor=3).device("dev/loop0", char=False, major=7, minor=0, mode=0o660, gid=6)
            .fifo("run/initctl", mode=0o600)
            .file("home/user/.profile", "PS1='$ '\n", uid=1000, gid=1000)
            .bytes())


def update_layer():
    """On top of base_layer: changes, deletions (whiteouts), an opaque dir, a new hardlink, a type change."""
    return (TarBuilder()
            .dir("etc", mtime=T0 + 100)
            .file("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\n",
                  mtime=T0 + 101)
            .whiteout("etc/hostname")
            .file("etc/motd", "welcome\n", mode=0o444)
            .dir("var", mtime=T0 + 102).dir("var/cache", mtime=T0 + 103)
            .whiteout("var/cache/apt")
            .dir("opt", mtime=T0 + 104).dir("opt/app", mtime=T0 + 105)
            .dir("opt/app/data", mode=0o700, mtime=T0 + 106)
            .opaque("opt/app/data")
            .file("opt/app/data/fresh", "only this layer's entries remain\n")
            .symlink("opt/app/config", "/etc/app.conf")  # a file becomes a symlink
            .dir("usr", mtime=T0 + 107).dir("usr/lib", mode=0o750, mtime=T0 + 108)
            .file("usr/lib/libx.so.2", _pseudo_random(20000, "libx2"))
            .hardlink("usr/lib/libx.so.2.0", "usr/lib/libx.so.2")
            .dir("usr/bin", mtime=T0 + 109)
            .file("usr/bin/tool", _pseudo_random(50000, "tool2"), mode=0o750, xattrs={"user.test": b"tool2"})
            .bytes())


def app_layer():
    return (TarBuilder()
            .dir("srv", mode=0o2775, gid=50, mtime=T0 + 200).dir("srv/app", mtime=T0 + 201)
            .file("srv/app/main.py", "print('hello')\n", mode=0o755)
            .dir("etc", mtime=T0 + 202).file("etc/app.conf", "port = 8080\n")
            .whiteout("etc/empty")
            .bytes())


def arch_layer(arch):
    return (TarBuilder()
            .dir("etc", mtime=T0 + 300).file("etc/arch", arch + "\n")
            .dir("usr").dir("usr/lib").dir("usr/lib/" + arch)
            .file("usr/lib/%s/ld.so" % arch, _pseudo_random(5000, arch))
            .bytes())


def sample_images():
    """base (two layers), app (base's layers and one more) and a linux/amd64 + linux/arm64/v8 index."""
    base = [base_layer(), update_layer()]
    return {
        "base": Image(base),
        "app": Image(base + [app_layer()], config={"Env": ["PATH=/usr/bin:/bin", "APP=1"],
                                                   "Entrypoint": ["/srv/app/main.py"], "Cmd": ["--serve"],
                                                   "WorkingDir": "/srv/app", "User": "1000:1000",
                                                   "Labels": {"org.example.role": "app"}}),
        "multi": Index([Image([base_layer(), arch_layer("amd64")], arch="amd64"),
                        Image([base_layer(), arch_layer("arm64")], arch="arm64", variant="v8")]),
    }
