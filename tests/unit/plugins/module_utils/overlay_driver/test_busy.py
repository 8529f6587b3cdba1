"""A busy mount: the error names who holds it, and lazy detaches it anyway."""

import contextlib
import io
import os
import subprocess
import sys

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import busy, mounts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder

BASE = TarBuilder().dir("etc").file("etc/hostname", "base\n").bytes()


@pytest.fixture
def mounted(home):
    store = LayerStore(home)
    with store.locked():
        store.apply_diff("base", "", lambda: contextlib.closing(io.BytesIO(BASE)))
        store.ensure_present("app", "base")
        store.ensure_mounted("app", "web")
        yield store, os.path.join(home, "app", "merged")


@contextlib.contextmanager
def child(cwd, *argv):
    """A real process, started in cwd, stopped and reaped whatever happens."""
    proc = subprocess.Popen(list(argv) or ["sleep", "60"], cwd=cwd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        if argv:
            proc.stdout.readline()  # the child says when it holds what it holds
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_busy_unmount_names_the_process_and_its_cwd(mounted):
    store, merged = mounted
    with child(merged) as proc:
        with pytest.raises(OverlayError) as err:
            store.ensure_unmounted("app", "web")
        msg = str(err.value)
        assert "Device or resource busy" in msg and "pid %d (sleep 60: cwd)" % proc.pid in msg
        assert "lazy: true" in msg and merged in msg
        # the overlay_layers role shows this line per item before its own message: it names the role's variable
        assert "overlay_lazy: true with the overlay_layers role" in msg
        assert store.driver.is_mounted("app") and store.record("app").holders == {"web"}


def test_open_fd_and_mmap_are_named(mounted):
    store, merged = mounted
    script = ("import mmap, sys; f = open('etc/hostname', 'rb'); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ);"
              " g = open('etc/hostname', 'rb'); import os; os.chdir('/'); print('ready', flush=True); sys.stdin.read()")
    with child(merged, sys.executable, "-c", script) as proc:
        found = [p for p in busy.processes_using(merged) if p["pid"] == proc.pid]
        assert found and found[0]["uses"] == ["open fd", "mmap"]
        with pytest.raises(OverlayError, match="open fd, mmap"):
            store.ensure_unmounted("app", "web")


def test_busy_unmount_names_the_layer(mounted):
    store, merged = mounted
    with child(merged):
        with pytest.raises(OverlayError) as err:
            store.ensure_unmounted("app", "web")
    assert err.value.layer == "app" and err.value.path == merged
    assert str(err.value).startswith("layer app, path %s: cannot unmount" % merged)


def test_a_multiline_command_is_one_line_in_the_message():
    procs = [{"pid": 7, "command": "python3 -c \nimport time\n  time.sleep(60)", "uses": ["cwd"]}]
    assert busy.describe(procs) == "held by pid 7 (python3 -c import time time.sleep(60): cwd)"


def test_lazy_detaches_a_busy_mount(mounted):
    store, merged = mounted
    with child(merged):
        assert store.ensure_unmounted("app", "web", lazy=True).changed is True
        assert not store.driver.is_mounted("app") and mounts.mount_at(merged) is None
        assert store.record("app").holders == set()


def test_no_user_found_says_so():
    assert "no process found" in busy.describe([])
    many = [{"pid": n, "command": "x", "uses": ["cwd"]} for n in range(30)]
    assert busy.describe(many).endswith("and 10 more")


def test_a_bind_mount_is_matched_by_path_only(scratch):
    """A bind mount shares its filesystem's device: a process elsewhere on it is no user."""
    src, target = os.path.join(scratch, "src"), os.path.join(scratch, "bind")
    os.mkdir(src)
    os.mkdir(target)
    subprocess.run(["mount", "--bind", src, target], check=True)
    try:
        with child(scratch) as outside, child(target) as inside:
            pids = {p["pid"] for p in busy.processes_using(target)}
            assert inside.pid in pids and outside.pid not in pids
    finally:
        subprocess.run(["umount", target], check=True)
