"""mountinfo parsing and live mount state."""

import os

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts, syscalls

LINE = ("36 35 98:0 / /mnt/with\\040space\\011tab rw,noatime master:1 - overlay overlay "
        "rw,lowerdir=/l,upperdir=/u\\134x,workdir=/w\n")


def test_parse_escapes_and_options(tmp_path):
    f = tmp_path / "mountinfo"
    f.write_text(LINE)
    (entry,) = mounts.read_mountinfo(str(f))
    assert entry.mount_point == "/mnt/with space\ttab"
    assert entry.fstype == "overlay"
    assert entry.options_dict() == {"rw": True, "lowerdir": "/l", "upperdir": "/u\\x", "workdir": "/w"}


def test_mount_at_sees_live_mounts_only(scratch):
    target = os.path.join(scratch, "m")
    os.mkdir(target)
    assert mounts.mount_at(target) is None
    syscalls.mount("tmpfs", target, "tmpfs", 0, "size=1m")
    try:
        assert mounts.mount_at(target).fstype == "tmpfs"
        assert [m.mount_point for m in mounts.mounts_below(scratch)] == [target]
    finally:
        syscalls.umount(target)
    assert mounts.mount_at(target) is None


def test_mount_label_format():
    assert mounts.format_mount_label("lowerdir=/a", "") == "lowerdir=/a"
    assert mounts.format_mount_label("lowerdir=/a", "system_u:object_r:container_file_t:s0:c1,c2") == \
        'lowerdir=/a,context="system_u:object_r:container_file_t:s0:c1,c2"'
    assert mounts.format_mount_label("", "x") == 'context="x"'


def test_overlay_options_refuse_separators():
    import pytest
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
    with pytest.raises(OverlayError, match="cannot take a path"):
        mounts.overlay_options("/a,b", "/u", "/w")


def test_129_directories_by_fd_mount_with_the_data_under_a_page(scratch):
    """Docker's depth (128 lowers, and a read-only mount's own diff/ on top of them) named by
    /proc/self/fd/N: the data fits a page, even at the longest descriptor numbers, and the kernel stacks them."""
    assert len(mounts.stacked_overlay_data([mounts.fd_path(10 ** 7)] * 129)) < os.sysconf("SC_PAGE_SIZE")
    fds = []
    merged = os.path.join(scratch, "merged")
    os.mkdir(merged)
    try:
        for i in range(129):
            path = os.path.join(scratch, "lower-%03d" % i)
            os.mkdir(path)
            with open(os.path.join(path, "from-%03d" % i), "w") as f:
                f.write(str(i))
            fds.append(os.open(path, syscalls.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        target = os.open(merged, syscalls.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        fds.append(target)
        mounts.mount_overlay_stack(target, fds[:129], flags=syscalls.MS_RDONLY)
        try:
            assert sorted(os.listdir(merged)) == ["from-%03d" % i for i in range(129)]
        finally:
            syscalls.umount(merged, syscalls.MNT_DETACH)
    finally:
        for fd in fds:
            os.close(fd)


def test_stacked_overlay_data_over_a_page_is_refused(monkeypatch):
    import pytest
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
    monkeypatch.setattr(mounts, "PAGE_SIZE", 512)
    with pytest.raises(OverlayError, match="over the kernel's page of 512"):
        mounts.stacked_overlay_data([mounts.fd_path(1000)] * 40, mounts.fd_path(1), mounts.fd_path(2))
