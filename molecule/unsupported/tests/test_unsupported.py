"""Nothing was created or loaded on the host that failed preflight."""


def test_overlay_stays_unloaded(host):
    assert "\toverlay\n" not in host.file("/proc/filesystems").content_string


def test_no_home_was_created(host):
    for home in ("/var/lib/strata/overlay", "/mnt/btrfs/home", "/mnt/xfs/home"):
        assert not host.file(home).exists


def test_the_refused_filesystems_are_what_they_claim(host):
    assert host.mount_point("/mnt/btrfs").filesystem == "btrfs"
    assert host.mount_point("/mnt/xfs").filesystem == "xfs"
    assert "ftype=0" in host.check_output("xfs_info /mnt/xfs")
