"""A layer that does not fit: a clear error, the store unchanged, the space given back."""

import os

from layertools import TarBuilder
import modules


def free_blocks(path):
    st = os.statvfs(path)
    return st.f_bfree


def test_layer_larger_than_the_disk(loopfs, scratch):
    small = loopfs("ext4", 24)
    home = os.path.join(small, "home")
    base = os.path.join(scratch, "base.tar")
    big = os.path.join(scratch, "big.tar")
    with open(base, "wb") as f:
        f.write(TarBuilder().dir("etc").file("etc/motd", "base\n").bytes())
    with open(big, "wb") as f:
        f.write(TarBuilder().dir("data").file("data/small", "x" * 1000)
                .file("data/blob", os.urandom(1 << 20) * 40).bytes())
    rc, result, err = modules.run("overlay_apply_diff", {"id": "base", "home": home, "src": base, "remote_src": True})
    assert rc == 0, err
    before_layers = sorted(os.listdir(home))
    before_free = free_blocks(small)

    for layer_id, parent in (("big", "base"), ("bigbase", "")):
        rc, result, err = modules.run("overlay_apply_diff", {"id": layer_id, "parent": parent, "home": home,
                                                             "src": big, "remote_src": True})
        assert rc == 1 and result["failed"], (result, err)
        assert "no space left" in result["msg"] and "layer %s" % layer_id in result["msg"]
        assert "Traceback" not in result["msg"]
        assert sorted(os.listdir(home)) == before_layers
        assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
        assert abs(free_blocks(small) - before_free) <= 8  # the space is released
    rc, info, err = modules.run("overlay_info", {"home": home})
    assert [layer["id"] for layer in info["layers"]] == ["base"]
