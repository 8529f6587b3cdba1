"""Random plantings around and inside a home: every run either works or fails with OverlayError,
and nothing outside the home changes."""

import os
import random
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import snapshot

NOBODY = 65534
SPOTS = [".strata", ".strata/tmp", ".strata/layers", ".strata/lock", ".strata/maps.json",
         ".strata/layers/base.json", ".strata/layers/ghost.json", ".strata/tmp/apply-x-1", "base", "base/root",
         "base/lower-id", "app", "app/upper", "app/lower-id", "app/merged", "ghost", ".."]


def plant(rng, home, canary):
    spot = rng.choice(SPOTS)
    path = os.path.normpath(os.path.join(home, spot))
    if spot == "..":
        os.chmod(path, rng.choice([0o777, 0o775, 0o755]))
        os.chown(path, rng.choice([0, NOBODY]), rng.choice([0, NOBODY]))
        return spot
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", path], check=True)
    if not os.path.isdir(os.path.dirname(path)):
        return None
    kind = rng.choice(["link-dir", "link-file", "file", "dir", "dir-open"])
    if kind == "link-dir":
        os.symlink(os.path.join(canary, "etc"), path)
    elif kind == "link-file":
        os.symlink(os.path.join(canary, "etc", "passwd"), path)
    elif kind == "file":
        with open(path, "w") as f:
            f.write('{"holders": ["x"], "diff_id": "sha256:%s"}' % ("0" * 64))
    else:
        os.mkdir(path)
        if kind == "dir-open":
            os.chmod(path, 0o777)
    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    return "%s %s" % (kind, spot)


@pytest.mark.parametrize("seed", range(40))
def test_random_plantings_never_reach_outside(scratch, canary, seed):
    rng = random.Random(seed)
    parent = os.path.join(scratch, "parent")
    os.mkdir(parent)
    home = os.path.join(parent, "home")
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("base")
        store.ensure_present("app", "base")
        store.ensure_mounted("app", "web")
        store.ensure_unmounted("app", "web")
    store.close()
    before = snapshot(canary)
    planted = [plant(rng, home, canary) for _n in range(rng.randint(1, 3))]
    for read_only in (True, False):
        try:
            s = LayerStore(home, read_only=read_only)
            try:
                with s.locked():
                    s.layers()
                    s.ensure_present("new", "base", check_mode=read_only)
                    s.ensure_mounted("app", "w", check_mode=read_only)
                    s.ensure_unmounted("app", "w", check_mode=read_only)
                    s.ensure_absent("new", check_mode=read_only)
                    s.driver.changes("app", "base")
            finally:
                s.close()
        except OverlayError:
            pass
        assert snapshot(canary) == before, planted
    mounted = [line.split()[4] for line in open("/proc/self/mountinfo") if home in line.split()[4]]
    for point in mounted:
        subprocess.run(["umount", point], check=False)
