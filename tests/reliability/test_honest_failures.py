"""Failures of the host and of the home's own files end as a clear message, never "unexpected error".

Real module processes on real filesystems: a tmpfs that is full, an ext4 part of which turned
read-only while statvfs on the home still says writable (as after ext4's emergency remount,
which the home's check can only see later), a record edited by hand.

On both layouts (the `layout` fixture): the modules run in processes of their own, so the call that first
writes a home names the layout (later calls find it recorded).
"""

import json
import os
import subprocess
import tempfile

import pytest

import modules
from layertools import TarBuilder


def ok(module, args):
    rc, result, err = modules.run(module, args)
    assert rc == 0, (result, err)
    return result


def failed_clearly(module, args, *says):
    rc, result, err = modules.run(module, args)
    assert rc == 1 and result["failed"], (rc, result, err)
    assert "unexpected error" not in result["msg"] and "exception" not in result and "Traceback" not in err, result
    for text in says:
        assert text in result["msg"], result
    return result


@pytest.fixture
def small_tmpfs():
    """A 1 MB tmpfs of its own, to be filled."""
    path = tempfile.mkdtemp(prefix="strata-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        os.rmdir(path)


def fill(directory):
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28
    finally:
        os.close(fd)


def entries(home):
    """The home's layer directories, and in overlay2's layout its short links too (a layer that went, or
    was never made, leaves no link behind)."""
    links = os.path.join(home, "l")
    return sorted(os.listdir(home)), sorted(os.listdir(links)) if os.path.isdir(links) else None


def state_of(home):
    return entries(home), sorted(os.listdir(os.path.join(home, ".strata", "layers")))


@pytest.mark.parametrize("module,args", [
    ("overlay_layer", {"id": "app", "parent": "base"}),
    ("overlay_mount", {"id": "base", "holder": "web"}),
])
def test_no_space_outside_apply_names_the_errno_and_the_home(small_tmpfs, layout, module, args):
    home = os.path.join(small_tmpfs, "home")
    args = dict(args, layout=layout)
    ok("overlay_layer", {"id": "base", "home": home, "layout": layout})
    ok("overlay_mount", {"id": "base", "home": home, "layout": layout, "holder": "first"})  # a record to keep
    assert modules.recorded_layout(home) == layout
    before = state_of(home)
    fill(small_tmpfs)
    result = failed_clearly(module, dict(args, home=home), "ENOSPC", "free space on that filesystem")
    assert result["errno"] == "ENOSPC" and result["path"] == home and result["layer_id"] == args["id"]
    assert state_of(home) == before
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
    os.unlink(os.path.join(small_tmpfs, "filler"))
    ok(module, dict(args, home=home))
    ok("overlay_mount", {"id": "base", "home": home, "layout": layout, "force": True, "state": "unmounted"})


@pytest.mark.parametrize("part", ["layers", "tmp"])
def test_a_read_only_part_of_an_ext4_home_names_erofs(loopfs, layout, part):
    """statvfs on the home says writable, the write fails with EROFS: that is the message."""
    home = os.path.join(loopfs("ext4", 32), "home")
    ok("overlay_layer", {"id": "base", "home": home, "layout": layout})
    assert modules.recorded_layout(home) == layout
    before = entries(home)
    sub = os.path.join(home, ".strata", part)
    subprocess.run(["mount", "--bind", sub, sub], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", sub], check=True)
    try:
        assert not os.statvfs(home).f_flag & os.ST_RDONLY
        result = failed_clearly("overlay_layer", {"id": "app", "parent": "base", "home": home, "layout": layout},
                                "EROFS", "read-only", "layer app, path %s" % home)
        assert result["errno"] == "EROFS"
    finally:
        subprocess.run(["umount", sub], check=True)
    assert entries(home) == before
    ok("overlay_layer", {"id": "app", "parent": "base", "home": home, "layout": layout})


@pytest.mark.parametrize("record", [
    {"version": 1, "id": "app", "parent": {"id": "base"}, "holders": []},
    {"version": 1, "id": "app", "parent": "base", "holders": "web"},
    {"version": 1, "id": "app", "parent": "base", "holders": ["web\nbase (held by root)"]},
    {"version": 1, "id": "app", "parent": "base", "size": "3", "holders": []},
])
def test_a_damaged_record_is_that_layers_clear_problem(scratch, layout, record):
    home = os.path.join(scratch, "home")
    tar = os.path.join(scratch, "base.tar")
    with open(tar, "wb") as f:
        f.write(TarBuilder().file("etc/motd", "hi\n").bytes())
    ok("overlay_apply_diff", {"id": "base", "home": home, "layout": layout, "src": tar, "remote_src": True})
    ok("overlay_layer", {"id": "app", "parent": "base", "home": home, "layout": layout})
    assert modules.recorded_layout(home) == layout
    with open(os.path.join(home, ".strata", "layers", "app.json"), "w") as f:
        json.dump(record, f)
    info = ok("overlay_info", {"home": home})
    problems = {layer["id"]: layer.get("problem") for layer in info["layers"]}
    assert not problems["base"] and "record is not in the expected format" in problems["app"], info
    for module, args in (("overlay_mount", {"id": "app", "home": home}),
                         ("overlay_layer", {"id": "app", "parent": "base", "home": home})):
        failed_clearly(module, args, "layer app", "record is not in the expected format")
    ok("overlay_layer", {"id": "app", "home": home, "state": "absent", "force": True})
    assert ok("overlay_mount", {"id": "base", "home": home})["mounted"]
    ok("overlay_mount", {"id": "base", "home": home, "state": "unmounted"})


WRITER = """
import os, sys
os.chdir(sys.argv[1])
open(sys.argv[2], "w").close()
i = 0
while True:
    i += 1
    try:
        os.mkdir("d%d" % (i % 50))
    except OSError:
        pass
    try:
        with open("d%d/f%d" % (i % 50, i), "w") as f:
            f.write("x")
    except OSError:
        pass
"""


def test_removing_a_layer_still_written_through_a_lazily_detached_mount(scratch, layout):
    """A lazy unmount leaves the overlay alive for a process that writes into it; removing the layer then
    meets ENOTEMPTY. That is a clear failure; the layer and its record are gone from the home, later
    writers are not stopped by what is left, and once the process stopped a later run deletes it."""
    import sys  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    home = os.path.join(scratch, "home")
    ok("overlay_layer", {"id": "base", "home": home, "layout": layout})
    assert modules.recorded_layout(home) == layout
    before = entries(home)
    ok("overlay_layer", {"id": "app", "parent": "base", "home": home, "layout": layout})
    merged = ok("overlay_mount", {"id": "app", "home": home, "holder": "w"})["path"]
    started = os.path.join(scratch, "started")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, merged, started], stderr=subprocess.DEVNULL)
    try:
        while not os.path.exists(started):  # no timing: waits for the writer to be inside
            assert writer.poll() is None
            time.sleep(0.01)
        ok("overlay_mount", {"id": "app", "home": home, "holder": "w", "state": "unmounted", "lazy": True})
        tmp = os.path.join(home, ".strata", "tmp")
        # The writer adds entries to 50 directories without pause, so the removal nearly always meets one
        # it did not list; should it not, the removal simply succeeded. Each outcome is checked for what
        # must hold: never an unexpected error, the layer and its record gone from the home.
        rc, result, err = modules.run("overlay_layer", {"id": "app", "home": home, "state": "absent", "force": True})
        assert "unexpected error" not in str(result) and "Traceback" not in err, (result, err)
        if rc:
            for text in ("layer app", "ENOTEMPTY", "lazy unmount"):
                assert text in result["msg"], result
            assert result["path"].startswith(tmp + "/remove-app-")
        assert entries(home) == before
        assert not os.path.exists(os.path.join(home, ".strata", "layers", "app.json"))
        assert not ok("overlay_layer", {"id": "app", "home": home, "state": "absent"})["changed"]
        ok("overlay_layer", {"id": "other", "parent": "base", "home": home})  # its cleanup skips the leftover
        assert os.listdir(tmp) == ([os.path.basename(result["path"])] if rc else [])
    finally:
        writer.kill()
        writer.wait()
    ok("overlay_layer", {"id": "third", "parent": "base", "home": home})
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
