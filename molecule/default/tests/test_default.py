"""What a user of the default scenario's host sees, checked after a reboot: a home of each layout."""

import json

import pytest

# Each home, the directory that keeps a layer's own files and the unit that restores its mounts.
HOMES = {
    "overlay": {"home": "/var/lib/strata/overlay", "own": "upper", "base": "root",
                "unit": "strata-overlay-restore@var-lib-strata-overlay.service"},
    "overlay2": {"home": "/var/lib/strata/overlay2", "own": "diff", "base": "diff",
                 "unit": "strata-overlay-restore@var-lib-strata-overlay2.service"},
}


@pytest.fixture(params=sorted(HOMES))
def layout(request):
    return dict(HOMES[request.param], name=request.param)


def merged(layout):
    return layout["home"] + "/app/merged"


def test_overlay_was_loaded_and_persisted(host):
    assert "\toverlay\n" in host.file("/proc/filesystems").content_string
    assert host.file("/etc/modules-load.d/strata-overlay.conf").content_string.strip().endswith("overlay")


def test_each_home_is_in_its_layout(host, layout):
    record = json.loads(host.file(layout["home"] + "/.strata/layout.json").content_string)
    assert record["layout"] == layout["name"]
    assert host.file(layout["home"] + "/l").is_directory == (layout["name"] == "overlay2")


def test_the_holders_mount_is_back_after_the_reboot(host, layout):
    home = layout["home"]
    mount = host.mount_point(merged(layout))
    assert mount.exists
    assert mount.filesystem == "overlay"
    # The overlay names the directories by the fds the driver opened and checked, so its
    # source is the token the driver recorded for the layer, with the real directories.
    record = json.loads(host.file(home + "/.strata/mounts/app").content_string)
    assert mount.device == record["source"] and record["source"].startswith("strata-")
    # the seed's child holds the whole tree in root/; overlay2 stacks every lower layer's own diff/
    lower = [home + "/child/root"] if layout["name"] == "overlay" else [home + "/child/diff", home + "/base/diff"]
    assert record["lowerdir"] == ":".join(lower)
    assert record["upperdir"] == home + "/app/" + layout["own"]
    assert record["workdir"] == home + "/app/work"
    assert host.service(layout["unit"]).is_enabled


def test_merged_content_and_whiteouts(host, layout):
    home, path = layout["home"], merged(layout)
    assert host.file(path + "/etc/motd").content_string == "child\n"
    assert host.file(path + "/usr/bin/tool").mode == 0o755
    assert not host.file(path + "/etc/old.conf").exists  # whited out by the child
    assert host.file(home + "/base/" + layout["base"] + "/etc/old.conf").exists  # still in the base
    assert host.file(path + "/srv/b").exists
    assert not host.file(path + "/srv/a").exists  # hidden by the opaque directory
    assert host.file(home + "/base/" + layout["base"] + "/srv/a").exists


def test_store_reports_holders_and_nothing_stale(host, layout):
    home = layout["home"]
    records = json.loads(host.file(home + "/.strata/layers/app.json").content_string)
    assert records["holders"] == ["db", "web"]
    assert host.file(home).mode == 0o700


def test_overlay_info_reads_each_home_after_the_reboot(host, layout):
    """The module a user reads a home with, run on the host: every layer, app mounted for both holders,
    nothing stale; the child's kind is where the layouts differ (the seed's applied child is a whole root)."""
    info = host.ansible("strata.overlay.overlay_info", "home=%s" % layout["home"], check=False)
    assert not info.get("failed"), info
    assert [layer["id"] for layer in info["layers"]] == ["app", "base", "child"]
    app = next(layer for layer in info["layers"] if layer["id"] == "app")
    assert app["mounted"] and app["holders"] == ["db", "web"] and not app["stale"]
    assert info["stale"] == []
    child = next(layer for layer in info["layers"] if layer["id"] == "child")
    assert child["kind"] == ("root" if layout["name"] == "overlay" else "overlay")
