"""Archives written by a real peer, skopeo: what it writes for docker-archive: and oci-archive: stages the same."""

import os
import shutil
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from imagetools import Image
from layertools import mounted

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


def skopeo_copy(src, dest):
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", src, dest], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def tree(root):
    out = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if os.path.isfile(path) and not os.path.islink(path) else None
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, data)
    return out


@pytest.mark.usefixtures("layout")  # both homes are new: in the layout of the run
@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_skopeo_archives_stage_the_same_layers(scratch, transport):
    image = Image(compression="gzip")  # docker-archive cannot carry zstd
    layout = image.write_layout(os.path.join(scratch, "layout"))
    archive = os.path.join(scratch, "image.tar")
    dest = "%s:%s:%s" % (transport, archive, "strata/test:1" if transport == "docker-archive" else "v1")
    skopeo_copy("oci:%s:v1" % layout, dest)
    first = LayerStore(os.path.join(scratch, "from-layout"))
    second = LayerStore(os.path.join(scratch, "from-archive"))
    want = stage_image(first, "oci:%s:v1" % layout)
    got = stage_image(second, dest)
    assert got.top == want.top == image.ids[-1]
    assert [layer.diff_id for layer in got.layers] == image.diff_ids
    with mounted(second.home, got.top) as seen, mounted(first.home, want.top) as wanted:
        assert tree(seen) == tree(wanted)
    assert not stage_image(second, dest).changed
