"""SIGTERM and SIGINT sent from outside to real module processes, stopped at a known point.

Each run waits at a crash point (STRATA_OVERLAY_FAULT_WAIT) until the test
signals it. The module must fail with JSON naming the signal (no traceback),
and leave nothing half-made: no temp dir or file, no mount nobody holds, no
empty layer from an interrupted apply. The next run then succeeds.
"""

import os
import signal
import time

import pytest

from layertools import TarBuilder
import modules

BASE = TarBuilder().dir("etc").file("etc/motd", "base\n").file("etc/old", "old\n").dir("srv").file("srv/a", "a").bytes()
CHILD = TarBuilder().file("etc/motd", "child\n").whiteout("etc/old").file("new", "1").file("new2", "2").bytes()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def ok(module, args):
    rc, result, err = modules.run(module, args)
    assert rc == 0, (result, err)
    return result


@pytest.fixture
def s(home, layout, scratch):
    """The test's home on each layout, and the tarballs."""
    return {"home": home, "layout": layout, "scratch": scratch,
            "base": write(os.path.join(scratch, "base.tar"), BASE),
            "child": write(os.path.join(scratch, "child.tar"), CHILD)}


@pytest.fixture
def starting(scratch):
    """A home that is never written: the module is stopped before it reads its options."""
    return {"home": os.path.join(scratch, "home"), "scratch": scratch}


def at(s, **args):
    """A module's args on the test's home, in its layout (a module process writing a new home takes the
    layout it is given)."""
    return dict(args, home=s["home"], layout=s["layout"])


def interrupted(s, module, args, fault, signum):
    """Run module until it reaches fault, send signum, return (rc, result, stderr)."""
    ready = os.path.join(s["scratch"], "ready")
    proc, argsfile = modules.start(module, args, fault=fault, env={"STRATA_OVERLAY_FAULT_WAIT": ready})
    deadline = time.monotonic() + 60
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            rc, result, err = modules.finish(proc, argsfile)
            raise AssertionError("the run never reached %s: %s %s %s" % (fault, rc, result, err))
        time.sleep(0.02)
    os.unlink(ready)
    proc.send_signal(signum)
    return modules.finish(proc, argsfile)


def nothing_half_made(s):
    home = s["home"]
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
    mounted = [line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(home + "/")]
    assert mounted == []
    assert [n for n in os.listdir(s["scratch"]) if n.startswith(".strata-diff-")] == []


def failed_cleanly(rc, result, err, signame):
    assert rc == 1, (rc, result, err)
    assert result["failed"] and "interrupted by %s" % signame in result["msg"], result
    assert "Traceback" not in err and "exception" not in result, (result, err)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_apply_of_a_new_layer_leaves_no_layer(s, signum):
    args = at(s, id="base", src=s["base"], remote_src=True)
    rc, result, err = interrupted(s, "overlay_apply_diff", args, "apply.entry:2", signum)
    failed_cleanly(rc, result, err, signal.Signals(signum).name)
    assert not os.path.exists(os.path.join(s["home"], "base"))
    assert ok("overlay_info", {"home": s["home"]})["layers"] == []
    nothing_half_made(s)
    assert ok("overlay_apply_diff", args)["changed"]


@pytest.mark.layout("overlay")  # the seed's naive path applies through a temp mount; overlay2 mounts nothing
def test_interrupted_apply_through_a_mount_unmounts_and_removes_the_layer(s):
    ok("overlay_apply_diff", at(s, id="base", src=s["base"], remote_src=True))
    ok("overlay_layer", at(s, id="init", parent="base"))
    args = at(s, id="child", parent="init", src=s["child"], remote_src=True)
    rc, result, err = interrupted(s, "overlay_apply_diff", args, "apply.mounted", signal.SIGTERM)
    failed_cleanly(rc, result, err, "SIGTERM")
    assert not os.path.exists(os.path.join(s["home"], "child"))
    nothing_half_made(s)
    assert ok("overlay_apply_diff", args)["changed"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_diff_leaves_no_temp_file_and_nothing_mounted(s, signum):
    ok("overlay_apply_diff", at(s, id="base", src=s["base"], remote_src=True))
    ok("overlay_layer", at(s, id="app", parent="base"))
    mounted = ok("overlay_mount", at(s, id="app", holder="w"))
    with open(os.path.join(mounted["path"], "written"), "w") as f:
        f.write("x")
    ok("overlay_mount", at(s, id="app", holder="w", state="unmounted"))
    dest = os.path.join(s["scratch"], "app.tar")
    args = at(s, id="app", dest=dest)
    rc, result, err = interrupted(s, "overlay_diff", args, "diff.written", signum)
    failed_cleanly(rc, result, err, signal.Signals(signum).name)
    assert not os.path.exists(dest)
    nothing_half_made(s)
    state = ok("overlay_info", {"home": s["home"], "id": "app"})["layer"]
    assert not state["mounted"] and state["holders"] == []
    assert ok("overlay_diff", args)["changed"]


def test_an_export_interrupted_while_its_tarball_is_replayed_stops_the_replay(s):
    """The replay's process is stopped with the export: nothing is left at dest, and the next run exports."""
    ok("overlay_apply_diff", at(s, id="base", src=s["base"], remote_src=True))
    dest = os.path.join(s["scratch"], "exported.tar")
    args = at(s, id="base", dest=dest)
    rc, result, err = interrupted(s, "overlay_diff", args, "diff.replaying", signal.SIGTERM)
    failed_cleanly(rc, result, err, "SIGTERM")
    assert not os.path.exists(dest)
    nothing_half_made(s)
    assert ok("overlay_diff", args)["changed"]
    with open(s["base"], "rb") as applied, open(dest, "rb") as exported:
        assert exported.read() == applied.read()


def test_interrupted_mount_leaves_no_mount_without_a_holder(s):
    ok("overlay_apply_diff", at(s, id="base", src=s["base"], remote_src=True))
    ok("overlay_layer", at(s, id="app", parent="base"))
    args = at(s, id="app", holder="web")
    rc, result, err = interrupted(s, "overlay_mount", args, "mount.mounted", signal.SIGTERM)
    failed_cleanly(rc, result, err, "SIGTERM")
    nothing_half_made(s)
    result = ok("overlay_mount", args)
    try:
        assert result["changed"] and result["mounted"] and result["holders"] == ["web"]
    finally:
        ok("overlay_mount", dict(args, state="unmounted"))


@pytest.mark.parametrize("module", ["overlay_layer", "overlay_mount", "overlay_apply_diff", "overlay_diff",
                                    "overlay_info", "overlay_image"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_module_starts_is_a_json_failure(starting, module, signum):
    """Stopped before Ansible and the store are imported (the first quarter second): JSON, not rc -15."""
    s = starting
    args = {"id": "app", "home": s["home"]}
    rc, result, err = interrupted(s, module, args, "module.start", signum)
    name = signal.Signals(signum).name
    assert rc == 1, (rc, result, err)
    assert result == {"failed": True, "changed": False, "interrupted": name,
                      "msg": "interrupted by %s while the module was starting; nothing was changed" % name}, err
    assert not os.path.exists(s["home"])
