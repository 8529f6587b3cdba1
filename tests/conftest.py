"""Shared by every test: the collection importable from the source tree, and real filesystems.

The collection is made importable as ansible_collections.strata.overlay
through a symlink farm in a temp dir. Tests run as root on real mounts: a fresh
tmpfs per test for the layer home, loop-mounted images for backing-filesystem
cases. Teardown unmounts everything below the test's scratch dir, also when
the test failed.

Every test that uses a home runs once per on-disk layout (the `layout`
fixture): the suites are parametrized, not copied. A test about one layout's
disk format says so with `@pytest.mark.layout("overlay")` (its reason beside it).
"""

import atexit
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from hypothesis import settings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _collection_root():
    try:
        importlib.import_module("ansible_collections.strata.overlay")
        return None
    except ImportError:
        pass
    root = tempfile.mkdtemp(prefix="strata-collections-")
    ns = os.path.join(root, "ansible_collections", "strata")
    os.makedirs(ns)
    os.symlink(REPO, os.path.join(ns, "overlay"))
    atexit.register(shutil.rmtree, root, True)
    sys.path.insert(0, root)
    return root


# Property tests run the same examples on every run and every machine, so a failure is a
# property that broke, never a draw: "derandomized" (the default) derives the examples
# from each test's source and keeps no example database. `make fuzz` explores with
# STRATA_HYPOTHESIS_PROFILE=random.
settings.register_profile("derandomized", derandomize=True, database=None)
settings.register_profile("random", derandomize=False)
settings.load_profile(os.environ.get("STRATA_HYPOTHESIS_PROFILE", "derandomized"))

COLLECTIONS_ROOT = _collection_root()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # layertools


def _driver(name):
    return importlib.import_module("ansible_collections.strata.overlay.plugins.module_utils.overlay_driver." + name)


def _unmount_below(path):
    mounts, syscalls = _driver("mounts"), _driver("syscalls")
    for entry in sorted(mounts.mounts_below(path), key=lambda m: -len(m.mount_point)):
        try:
            syscalls.umount(entry.mount_point, syscalls.MNT_DETACH)
        except OSError:
            pass


@pytest.fixture(autouse=True, scope="session")
def _require_root():
    if os.geteuid() != 0:
        pytest.exit("these tests make real mounts and must run as root", returncode=2)


def _record_homes(monkeypatch):
    """The HomeDirs (a LayerStore's, a driver's) opened from now on in this process."""
    home = _driver("home")
    opened = []
    original = home.HomeDirs.__init__

    def init(self, *args, **kwargs):
        opened.append(self)
        original(self, *args, **kwargs)
    monkeypatch.setattr(home.HomeDirs, "__init__", init)
    return opened


@pytest.fixture
def scratch(monkeypatch):
    """A tmpfs of its own: the test's world. Unmounted with everything on it afterwards.

    It is mounted one level inside a private directory, so that what an escape would write
    beside it (`../x`) lands where no other process writes and the test can look for it.
    Homes the test opened and left open are closed first: their descriptors would keep the
    lazily unmounted tmpfs alive to the end of the run."""
    opened = _record_homes(monkeypatch)
    syscalls = _driver("syscalls")
    parent = tempfile.mkdtemp(prefix="strata-test-")
    os.chmod(parent, 0o755)  # tests act as other users inside
    path = os.path.join(parent, "w")
    os.mkdir(path)
    syscalls.mount("tmpfs", path, "tmpfs", 0, "mode=0755,size=2g")
    try:
        yield path
    finally:
        for dirs in opened:
            dirs.close()
        _unmount_below(path)
        syscalls.umount(path, syscalls.MNT_DETACH)
        os.rmdir(path)
        shutil.rmtree(parent)


def pytest_generate_tests(metafunc):
    """Every test that uses the layout fixture (through home, or a store or driver fixture) runs
    once per layout, or only on the layouts its `layout` marker names."""
    if "layout" not in metafunc.fixturenames:
        return
    drivers = _driver("drivers")
    marker = metafunc.definition.get_closest_marker("layout")
    names = marker.args if marker else drivers.LAYOUTS
    unknown = set(names) - set(drivers.LAYOUTS)
    if unknown:
        raise pytest.UsageError("%s: layout marker names unknown layouts %s"
                                % (metafunc.definition.nodeid, sorted(unknown)))
    available = drivers.available_layouts()
    params = [pytest.param(name, id=name, marks=() if name in available else pytest.mark.skip(
        reason="no driver is registered for the %s layout yet (drivers.available_layouts())" % name))
        for name in names]
    metafunc.parametrize("layout", params, indirect=True)


@pytest.fixture
def layout(request, monkeypatch):
    """The on-disk layout of the test's homes: a new home takes it wherever a call leaves layout out.

    It is set as the registry's default rather than passed to every LayerStore, driver and module call,
    so that the suites run unchanged on each layout; a home keeps the layout it was first written in,
    so the calls that reopen it need nothing either. (Only in this process: a child process that writes
    a new home must be given layout.)"""
    marker = request.node.get_closest_marker("layout")  # also one set on a single parameter of the test
    if marker and request.param not in marker.args:
        pytest.skip("about the disk format of the %s layout" % " and ".join(marker.args))
    drivers = _driver("drivers")
    monkeypatch.setattr(drivers, "DEFAULT_LAYOUT", request.param)
    return request.param


def _recorded_layout(home):
    """The layout a home's record names, None when there is none (or a test damaged it on purpose)."""
    try:
        with open(os.path.join(home, ".strata", "layout.json")) as f:
            written = json.load(f)
    except (OSError, ValueError):
        return None
    name = written.get("layout") if isinstance(written, dict) else None
    return name if name in _driver("drivers").LAYOUTS else None


@pytest.fixture
def home(scratch, layout):
    """The path of the test's layer home (not made yet). Afterwards, a home that was written must be in the
    test's layout: a call that wrote it another way (a child process not given layout, a driver class
    opened directly) would otherwise pass on the seed's layout while claiming the other one."""
    path = os.path.join(scratch, "home")
    yield path
    written = _recorded_layout(path)
    assert written in (None, layout), "the test's home was written in the %s layout, not %s" % (written, layout)


@pytest.fixture
def tmp_dir_fd(tmp_path):
    """A directory fd on pytest's tmp_path, for the code that works relative to one."""
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


@pytest.fixture
def canary(scratch):
    """A directory beside the home that no operation may touch; checked by snapshot."""
    path = os.path.join(scratch, "canary")
    os.makedirs(os.path.join(path, "etc"))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0::/root:/bin/sh\n")
    os.symlink("etc/passwd", os.path.join(path, "link"))
    return path


@pytest.fixture
def loopfs(scratch):
    """Factory: loopfs(fstype, size_mb, mkfs_args) -> mounted directory of a real filesystem image."""
    made = []

    def make(fstype, size_mb=300, mkfs_args=()):
        image = os.path.join(tempfile.gettempdir(), "strata-%s-%d-%d.img" % (fstype, os.getpid(), len(made)))
        with open(image, "wb") as f:
            f.truncate(size_mb << 20)
        mkfs = shutil.which("mkfs.%s" % fstype) or "/usr/sbin/mkfs.%s" % fstype
        quiet = ["-q"] if fstype in ("ext4", "ext2", "xfs", "btrfs") else []
        subprocess.run([mkfs] + quiet + list(mkfs_args) + [image], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        target = os.path.join(scratch, "%s-%d" % (fstype, len(made)))
        os.mkdir(target)
        subprocess.run(["mount", "-o", "loop", image, target], check=True)
        made.append((target, image))
        return target

    try:
        yield make
    finally:
        for target, image in reversed(made):
            _unmount_below(target)
            subprocess.run(["umount", target], check=False)
            os.unlink(image)
