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
