"""One lock per home: a second holder waits, and a dead holder's lock is free."""

import subprocess
import sys

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.locking import HomeLock


def test_second_process_waits_then_times_out(tmp_path):
    path = str(tmp_path / "lock")
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl,os,sys,time\n"
                               "fd=os.open(sys.argv[1],os.O_RDWR|os.O_CREAT)\n"
                               "fcntl.flock(fd,fcntl.LOCK_EX)\nprint('held',flush=True)\ntime.sleep(30)", path],
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(OverlayError, match="timed out"):
            HomeLock(path, timeout=0.3).acquire()
        holder.kill()
        holder.wait()
        with HomeLock(path, timeout=5):  # the kernel released the dead holder's lock
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_reentrant_within_a_process(tmp_path):
    lock = HomeLock(str(tmp_path / "lock"))
    with lock:
        with lock:
            assert lock.depth == 2
        assert lock.fd is not None
    assert lock.fd is None
