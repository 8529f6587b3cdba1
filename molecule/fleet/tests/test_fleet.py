"""After the fleet playbooks: the good host holds app for db only; the btrfs host has no layers."""

import json

HOME = "/var/lib/strata/overlay"


def test_each_host(host):
    name = host.backend.get_hostname()
    if name == "strata-fleet-1":
        mount = host.mount_point(HOME + "/app/merged")
        assert mount.exists and mount.filesystem == "overlay"
        record = json.loads(host.file(HOME + "/.strata/layers/app.json").content_string)
        assert record["holders"] == ["db"]  # web was released, db still holds it
        assert host.file(HOME + "/app/merged/etc/motd").content_string == "child\n"
    else:
        assert host.mount_point("/var/lib/strata").filesystem == "btrfs"
        assert not host.file(HOME).exists
