"""A layer that does not fit: a clear error, the store unchanged, the space given back.

On both layouts (the `layout` fixture): the modules run in processes of their own, so the call that first
writes a home names the layout (later calls find it recorded).
"""

import gzip
import os
import random

import pytest

from layertools import TarBuilder
import modules


def entries(home):
    """The home's layer directories, and in overlay2's layout its short links too (a failed apply must
    leave no link behind)."""
    links = os.path.join(home, "l")
    return sorted(os.listdir(home)), sorted(os.listdir(links)) if os.path.isdir(links) else None


def free_blocks(path):
    st = os.statvfs(path)
    return st.f_bfree


# A plain tarball's size is known before it is read: the free-space check refuses it first. A
# gzip one is small until it is read, so the disk fills while it is applied (ENOSPC).
REFUSALS = {"plain": "not enough free space", "gzip": "no space left"}


@pytest.mark.parametrize("compression", sorted(REFUSALS))
def test_layer_larger_than_the_disk(loopfs, scratch, layout, compression):
    small = loopfs("ext4", 24)
    home = os.path.join(small, "home")
    base = os.path.join(scratch, "base.tar")
    big = os.path.join(scratch, "big.tar")
    with open(base, "wb") as f:
        f.write(TarBuilder().dir("etc").file("etc/motd", "base\n").bytes())
    block = random.Random(7).randbytes(8192)  # repeats inside gzip's window: 40 MiB of it packs small
    data = TarBuilder().dir("data").file("data/small", "x" * 1000).file("data/blob", block * 5120).bytes()
    with open(big, "wb") as f:
        f.write(gzip.compress(data) if compression == "gzip" else data)
    rc, result, err = modules.run("overlay_apply_diff", {"id": "base", "home": home, "layout": layout, "src": base,
                                                         "remote_src": True})
    assert rc == 0, err
    assert modules.recorded_layout(home) == layout
    before_layers = entries(home)
    before_free = free_blocks(small)

    for layer_id, parent in (("big", "base"), ("bigbase", "")):
        rc, result, err = modules.run("overlay_apply_diff", {"id": layer_id, "parent": parent, "home": home,
                                                             "layout": layout, "src": big, "remote_src": True})
        assert rc == 1 and result["failed"], (result, err)
        assert REFUSALS[compression] in result["msg"] and "layer %s" % layer_id in result["msg"]
        assert "Traceback" not in result["msg"]
        assert entries(home) == before_layers
        assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
        assert abs(free_blocks(small) - before_free) <= 8  # the space is released
    rc, info, err = modules.run("overlay_info", {"home": home, "layout": layout})
    assert [layer["id"] for layer in info["layers"]] == ["base"]
