"""Backing filesystems, on real loop-mounted filesystems of each kind."""

import os
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import fscheck, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import IncompatibleFS, NotSupported


def test_overlay_is_supported_here():
    assert fscheck.supports_overlay()
    assert fscheck.overlay_in_proc()


def test_overlay_missing_from_proc_filesystems(tmp_path):
    fake = tmp_path / "filesystems"
    fake.write_text("nodev\ttmpfs\n\text4\nnodev\toverlayfoo\n")
    assert not fscheck.overlay_in_proc(str(fake))
    fake.write_text("nodev\ttmpfs\nnodev\toverlay\n")
    assert fscheck.overlay_in_proc(str(fake))


def test_tmpfs_is_accepted(scratch):
    assert fscheck.backing_fs(scratch)[0] == "tmpfs"
    assert fscheck.backing_problems(scratch) == []


def test_ext4_is_accepted(loopfs):
    mnt = loopfs("ext4", 64)
    assert fscheck.backing_fs(mnt)[0] == "ext4"
    assert fscheck.dtype_without_writing(mnt)
    open_driver(os.path.join(mnt, "home"))


@pytest.mark.parametrize("fstype", ["ext2", "ext3"])
def test_ext2_and_ext3_are_named_for_what_they_are(loopfs, fstype):
    """One statfs magic for the three: the name comes from the mount, also for a path deep below it."""
    mnt = loopfs(fstype, 32)
    deep = os.path.join(mnt, "a", "b")
    os.makedirs(deep)
    assert fscheck.backing_fs(deep)[0] == fstype
    assert fscheck.mount_fstype(deep) == fstype


def test_btrfs_is_refused_like_the_seed(loopfs):
    mnt = loopfs("btrfs", 300)
    assert fscheck.backing_fs(mnt)[0] == "btrfs"
    home = os.path.join(mnt, "home")
    with pytest.raises(IncompatibleFS, match="'overlay' is not supported over btrfs"):
        open_driver(home)
    assert not os.path.exists(home)  # refused before anything was created


def test_filesystem_without_dtype_is_refused(loopfs):
    """ext4 made without the filetype feature answers DT_UNKNOWN, as xfs ftype=0 does."""
    mnt = loopfs("ext4", 64, ["-O", "^filetype,^metadata_csum"])
    os.mkdir(os.path.join(mnt, "d"))
    assert not fscheck.dir_reports_dtype(mnt)
    assert not fscheck.dtype_without_writing(mnt)
    with pytest.raises(IncompatibleFS, match="does not support d_type"):
        open_driver(os.path.join(mnt, "home"))


def test_dtype_check_reads_a_real_directory(scratch):
    os.mkdir(os.path.join(scratch, "d"))
    with open(os.path.join(scratch, "f"), "w"):
        pass
    types = dict(syscalls.readdir_types(scratch))
    assert types["d"] == 4 and types["f"] == 8  # DT_DIR, DT_REG
    assert fscheck.dir_reports_dtype(scratch)
    assert len(syscalls.readdir_types(scratch, limit=1)) == 1  # a home of many layers is sampled, not read whole
    assert fscheck.dtype_without_writing(scratch)


def test_overlay_as_backing_fs_is_refused(home):
    driver = open_driver(home)
    driver.create("base", "")
    driver.create("child", "base")
    merged = driver.get("child")
    try:
        problems = fscheck.backing_problems(merged)
        assert problems and "overlayfs" in problems[0]
    finally:
        driver.put("child")


@pytest.fixture
def xfs(scratch):
    """Factory: a loop-mounted xfs with the given ftype, or a skip when the kernel cannot mount it."""
    made = []

    def make(ftype):
        image = os.path.join(scratch, "xfs-%s.img" % ftype)
        with open(image, "wb") as f:
            f.truncate(300 << 20)
        extra = ["-m", "crc=0"] if ftype == "0" else []
        subprocess.run(["mkfs.xfs", "-q", "-n", "ftype=" + ftype] + extra + [image], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = os.path.join(scratch, "xfs-" + ftype)
        os.mkdir(target)
        if subprocess.run(["mount", "-o", "loop", image, target], stderr=subprocess.DEVNULL, check=False).returncode:
            pytest.skip("this kernel mounts no xfs with ftype=%s (V4 filesystems; the molecule VMs do)" % ftype)
        made.append(target)
        return target

    yield make
    for target in made:
        subprocess.run(["umount", target], check=False)


@pytest.mark.parametrize("ftype, expected", [("1", True), ("0", False)])
def test_xfs_dtype_is_read_without_writing(xfs, ftype, expected):
    mnt = xfs(ftype)
    before = os.listdir(mnt)
    assert fscheck.dtype_without_writing(os.path.join(mnt, "home")) is expected
    assert os.listdir(mnt) == before == []
    problems = fscheck.backing_problems(os.path.join(mnt, "home"))
    assert bool(problems) is not expected and os.listdir(mnt) == []


def test_ext4_without_dtype_is_found_from_lost_and_found(loopfs):
    mnt = loopfs("ext4", 64, ["-O", "^filetype,^metadata_csum"])
    assert fscheck.dtype_without_writing(os.path.join(mnt, "home")) is False
    assert os.listdir(mnt) == ["lost+found"]


def test_empty_tmpfs_reports_dtype(scratch):
    empty = os.path.join(scratch, "empty")
    os.mkdir(empty)
    assert fscheck.dtype_without_writing(os.path.join(empty, "home")) is True


def test_zstd_support_is_the_program_or_the_module(monkeypatch, tmp_path):
    found = fscheck.zstd_support()
    assert found["supported"] == (bool(found["program"]) or found["module"])
    monkeypatch.setenv("PATH", str(tmp_path))
    without_program = fscheck.zstd_support()
    assert without_program["program"] == "" and without_program["supported"] == without_program["module"]


def test_the_status_names_the_igzip_program_unless_there_is_none_or_it_is_turned_off(monkeypatch, tmp_path):
    fake = tmp_path / "igzip"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    home = str(tmp_path / "home")
    assert fscheck.host_status(home)["gzip"] == {"program": str(fake)}
    monkeypatch.setenv("STRATA_OVERLAY_DISABLE_IGZIP", "1")
    assert fscheck.host_status(home)["gzip"] == {"program": ""}
    monkeypatch.setenv("STRATA_OVERLAY_DISABLE_IGZIP", "0")
    assert fscheck.host_status(home)["gzip"] == {"program": str(fake)}
    monkeypatch.delenv("STRATA_OVERLAY_DISABLE_IGZIP")
    fake.unlink()
    assert fscheck.host_status(home)["gzip"] == {"program": ""}


def counting(monkeypatch, name):
    """Count the calls of fscheck.<name> (the driver and fscheck itself look it up there)."""
    calls = []
    real = getattr(fscheck, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(fscheck, name, wrapper)
    return calls


def test_host_status_reads_each_fact_once(home, monkeypatch):
    probes, backings = counting(monkeypatch, "dtype_without_writing"), counting(monkeypatch, "backing_fs")
    status = fscheck.host_status(home)
    assert (status["backing_fs"], status["d_type"], status["problems"]) == ("tmpfs", True, [])
    assert status["overlay_supported"] is True and status["home_exists"] is False
    assert status["kernel"] == os.uname().release
    assert len(probes) == 1 and len(backings) == 1


def test_a_missing_overlay_has_one_message(home, monkeypatch):
    monkeypatch.setattr(fscheck, "overlay_in_proc", lambda *args: False)
    monkeypatch.setattr(fscheck, "load_overlay_module", lambda: False)
    status = fscheck.host_status(home)
    assert status["overlay_supported"] is False
    assert status["problems"] == [fscheck.missing_overlay()]
    with pytest.raises(NotSupported) as raised:
        fscheck.require_overlay()
    assert raised.value.message == fscheck.missing_overlay()
    assert "has no overlay filesystem" in fscheck.missing_overlay()


def test_a_writer_probes_dtype_once_and_a_reader_not_at_all(home, monkeypatch):
    probes = counting(monkeypatch, "dtype_without_writing")
    open_driver(home).close()
    assert len(probes) == 1
    open_driver(home, writable=False).close()
    assert len(probes) == 1
