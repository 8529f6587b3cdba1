"""What a user of the default scenario's host sees, checked after a reboot."""

import json

HOME = "/var/lib/strata/overlay"
MERGED = HOME + "/app/merged"


def test_overlay_was_loaded_and_persisted(host):
    assert "\toverlay\n" in host.file("/proc/filesystems").content_string
    assert host.file("/etc/modules-load.d/strata-overlay.conf").content_string.strip().endswith("overlay")


def test_the_holders_mount_is_back_after_the_reboot(host):
    mount = host.mount_point(MERGED)
    assert mount.exists
    assert mount.filesystem == "overlay"
    # The overlay names the directories by the fds the driver opened and checked, so its
    # source is the token the driver recorded for the layer, with the real directories.
    record = json.loads(host.file(HOME + "/.strata/mounts/app").content_string)
    assert mount.device == record["source"] and record["source"].startswith("strata-")
    assert record["lowerdir"] == HOME + "/child/root"
    assert record["upperdir"] == HOME + "/app/upper"
    assert record["workdir"] == HOME + "/app/work"
    unit = host.service("strata-overlay-restore@var-lib-strata-overlay.service")
    assert unit.is_enabled


def test_merged_content_and_whiteouts(host):
    assert host.file(MERGED + "/etc/motd").content_string == "child\n"
    assert host.file(MERGED + "/usr/bin/tool").mode == 0o755
    assert not host.file(MERGED + "/etc/old.conf").exists  # whited out by the child
    assert host.file(HOME + "/base/root/etc/old.conf").exists  # still in the base
    assert host.file(MERGED + "/srv/b").exists
    assert not host.file(MERGED + "/srv/a").exists  # hidden by the opaque directory
    assert host.file(HOME + "/base/root/srv/a").exists


def test_store_reports_holders_and_nothing_stale(host):
    records = json.loads(host.file(HOME + "/.strata/layers/app.json").content_string)
    assert records["holders"] == ["db", "web"]
    assert host.file(HOME).mode == 0o700
