"""A private Docker 20.10 daemon for tests: started and stopped by the test, no systemd.

Docker 20.10 is the last release with the legacy `overlay` graph driver, the
one whose layer home this collection writes by default, and it writes the
`overlay2` layout the way the collection's overlay2 homes are written. Each
daemon gets its own data-root, exec-root, pidfile and socket under a directory
of the test, runs with `--storage-driver overlay` (or the `storage_driver`
given: `overlay2`) and no network setup, and is talked to with
`/usr/bin/docker -H unix://...` (a newer CLI may come first on PATH).

What each driver writes is described in docs/docker.md ("overlay2 as Docker 20.10 writes it").

Side effects outside that directory, which dockerd makes whatever its flags:
`/etc/docker/key.json` (created once, reused), `/run/docker/` and
`/run/containerd/` (runtime dirs, left empty). They are left alone here:
another daemon may be using them.

Use the `dockerd` fixture (a started daemon on the test's scratch tmpfs), or
`Dockerd(directory)` with start()/stop() for more than one data-root.
"""

import io
import json
import os
import signal
import subprocess
import tarfile
import time

import pytest

DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker"

MISSING = None if os.access(DOCKERD, os.X_OK) and os.access(DOCKER, os.X_OK) else (
    "Docker 20.10 (Debian package docker.io, installed by make deps) is not installed: no %s"
    % (DOCKERD if not os.access(DOCKERD, os.X_OK) else DOCKER))

requires_dockerd = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

STORAGE_DRIVERS = ("overlay", "overlay2")


class DockerdError(Exception):
    pass


class Dockerd:
    """One private dockerd. All its state is below `directory`; its graph driver is `storage_driver`."""

    def __init__(self, directory, data_root=None, storage_driver="overlay"):
        if storage_driver not in STORAGE_DRIVERS:
            raise ValueError("storage_driver must be one of %s, not %r" % (STORAGE_DRIVERS, storage_driver))
        self.storage_driver = storage_driver
        self.directory = os.path.abspath(directory)
        self.data_root = os.path.abspath(data_root) if data_root else os.path.join(self.directory, "data-root")
        self.exec_root = os.path.join(self.directory, "exec-root")
        self.pidfile = os.path.join(self.directory, "dockerd.pid")
        self.socket = os.path.join(self.directory, "docker.sock")
        self.log = os.path.join(self.directory, "dockerd.log")
        self.process = None

    @property
    def overlay_home(self):
        """The graph driver's layer home: `<data-root>/overlay` or `<data-root>/overlay2`."""
        return os.path.join(self.data_root, self.storage_driver)

    @property
    def image_root(self):
        """Docker's image store for this driver: `<data-root>/image/<driver>` (layerdb, imagedb)."""
        return os.path.join(self.data_root, "image", self.storage_driver)

    def start(self, timeout=60):
        """Start the daemon and wait until it answers; raise with the log's tail when it does not."""
        if self.process is not None:
            raise DockerdError("dockerd is already running (pid %d)" % self.process.pid)
        os.makedirs(self.directory, exist_ok=True)
        cmd = [DOCKERD, "--data-root", self.data_root, "--exec-root", self.exec_root, "--pidfile", self.pidfile,
               "-H", "unix://" + self.socket, "--storage-driver", self.storage_driver, "--iptables=false", "--ip-masq=false",
               "--ip6tables=false", "--bridge=none", "--userland-proxy=false"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise DockerdError("dockerd exited with %d while starting:\n%s" % (code, self.log_tail()))
            probe = subprocess.run([DOCKER, "-H", "unix://" + self.socket, "info", "--format", "{{.Driver}}"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False)
            if probe.returncode == 0:
                driver = probe.stdout.decode().strip()
                if driver != self.storage_driver:
                    self.stop()
                    raise DockerdError("dockerd runs the %r storage driver, not %s" % (driver, self.storage_driver))
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise DockerdError("dockerd did not answer within %d s:\n%s" % (timeout, self.log_tail()))
            time.sleep(0.2)

    def stop(self, timeout=30):
        """SIGTERM, wait; SIGKILL the whole process group if it does not end. Then unmount what it left."""
        if self.process is not None:
            process, self.process = self.process, None
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: dockerd and its containerd
                    process.wait(10)
        self.unmount_leftovers()

    def restart(self):
        self.stop()
        return self.start()

    def unmount_leftovers(self):
        """Mounts a killed daemon leaves: the data-root bound on itself, containers' layer mounts."""
        points = set()
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].encode().decode("unicode_escape")
                for top in (self.data_root, self.exec_root):
                    if point == top or point.startswith(top.rstrip("/") + "/"):
                        points.add(point)
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False, stderr=subprocess.DEVNULL)

    def log_tail(self, lines=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- the client -------------------------------------------------------------

    def docker(self, *args, stdin=None, check=True):
        """Run /usr/bin/docker against this daemon; returns stdout (bytes)."""
        done = subprocess.run([DOCKER, "-H", "unix://" + self.socket] + list(args), input=stdin,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if check and done.returncode != 0:
            error = done.stderr.decode(errors="replace").strip()
            raise DockerdError("docker %s failed (%d): %s" % (" ".join(args), done.returncode, error))
        return done.stdout

    def load(self, archive_bytes):
        """`docker load` of a `docker save`-format archive; returns the loaded image ids/names."""
        return self.docker("load", stdin=archive_bytes).decode()

    def export(self, container):
        """`docker export` of a container, as bytes of a tarball."""
        return self.docker("export", container)

    # -- Docker's own records -----------------------------------------------------

    def layerdb(self):
        """Image layers by chain id: {chain_id: {cache_id, diff_id, parent}} from <image root>/layerdb."""
        root = os.path.join(self.image_root, "layerdb", "sha256")
        out = {}
        for name in os.listdir(root):
            entry = os.path.join(root, name)

            def read(field, entry=entry):
                try:
                    with open(os.path.join(entry, field)) as f:
                        return f.read().strip()
                except FileNotFoundError:
                    return None
            out["sha256:" + name] = {"cache_id": read("cache-id"), "diff_id": read("diff"), "parent": read("parent")}
        return out

    def container_layers(self, container):
        """(mount id, init id) of a container's read-write layer: its layer dirs are <home>/<mount id>[-init]."""
        full = self.docker("inspect", "--format", "{{.Id}}", container).decode().strip()
        mounts = os.path.join(self.image_root, "layerdb", "mounts", full)
        with open(os.path.join(mounts, "mount-id")) as f:
            mount_id = f.read().strip()
        with open(os.path.join(mounts, "init-id")) as f:
            init_id = f.read().strip()
        return mount_id, init_id


def save_archive(layers, repo_tag, config=None):
    """A `docker save`-format archive of an image made of the given uncompressed layer tarballs.

    manifest.json (Config, RepoTags, Layers), the image config with
    rootfs.diff_ids (the sha256 of each layer tar) and the layer tars.
    """
    import hashlib  # pylint: disable=import-outside-toplevel

    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": dict(config or {}),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "strata test layer %d" % i}
                    for i in range(len(layers))],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    members = [(config_name, config_bytes)]
    layer_names = []
    for diff_id, layer in zip(diff_ids, layers):
        name = diff_id.split(":", 1)[1] + "/layer.tar"
        layer_names.append(name)
        members.append((name, layer))
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            directory = os.path.dirname(name)
            if directory and directory + "/" not in tf.getnames():
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue(), diff_ids


@pytest.fixture
def dockerd(scratch, request):
    """A started private dockerd whose data-root is on the test's scratch tmpfs; stopped afterwards.

    Its graph driver is `overlay` unless the test is parametrized indirectly with another
    (`@pytest.mark.parametrize("dockerd", ["overlay2"], indirect=True)`)."""
    if MISSING:
        pytest.skip(MISSING)
    daemon = Dockerd(os.path.join(scratch, "docker"), storage_driver=getattr(request, "param", "overlay"))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
