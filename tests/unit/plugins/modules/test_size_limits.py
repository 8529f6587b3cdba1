"""Size limits: a small gzip that expands past max_layer_size (or an image past max_image_size) is refused before
those bytes are written, and a layer that cannot fit on the home's filesystem is refused before it is fetched.

Nothing is left behind: no layer, nothing in .strata/tmp; check mode refuses the same way and writes nothing.
"""

import gzip
import io
import os
import subprocess
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.modules import overlay_apply_diff, overlay_image

from imagetools import Image
from layertools import layer_names

MiB = 1 << 20


def zeros_tar(megabytes, name="big"):
    """A layer tar holding one file of zeros: its gzip is about a thousandth of its size."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = megabytes * MiB
        info.mtime = 0

        class Zeros:
            def __init__(self, n):
                self.left = n

            def read(self, n=-1):
                n = self.left if n < 0 else min(n, self.left)
                self.left -= n
                return bytes(n)
        tar.addfile(info, Zeros(info.size))
    return buf.getvalue()


def nothing_left(home):
    tmp = os.path.join(home, ".strata", "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_gzip_that_expands_past_max_layer_size_is_refused(run_module, home, scratch, check_mode):
    bomb = os.path.join(scratch, "bomb.tar.gz")
    with open(bomb, "wb") as f:
        f.write(gzip.compress(zeros_tar(64), 9))
    assert os.path.getsize(bomb) < MiB
    res = run_module(overlay_apply_diff, {"id": "app", "home": home, "src": bomb, "remote_src": True,
                                          "max_layer_size": 8 * MiB}, check_mode=check_mode)
    assert res["failed"] and "expands past max_layer_size (%d bytes uncompressed)" % (8 * MiB) in res["msg"]
    assert "'big'" in res["msg"] and "app" in res["msg"]
    assert layer_names(home) == []
    nothing_left(home)
    # within the bound, the same layer goes in
    res = run_module(overlay_apply_diff, {"id": "app", "home": home, "src": bomb, "remote_src": True,
                                          "max_layer_size": 65 * MiB}, check_mode=check_mode)
    assert res["changed"] and not res.get("failed")


def test_a_size_limit_that_is_not_positive_is_refused_before_the_home_is_touched(run_module, home, scratch):
    res = run_module(overlay_apply_diff, {"id": "app", "home": home, "src": "/nonexistent", "remote_src": True,
                                          "max_layer_size": 0})
    assert res["failed"] and "max_layer_size must be a positive number of bytes" in res["msg"]
    res = run_module(overlay_image, {"src": "oci:/nonexistent", "home": home, "remote_src": True,
                                     "max_image_size": -1})
    assert res["failed"] and "max_image_size must be a positive number of bytes" in res["msg"]
    assert not os.path.exists(home)


@pytest.mark.parametrize("limit", ["max_layer_size", "max_image_size"])
def test_an_image_past_its_size_limits_is_refused_at_that_layer(run_module, home, scratch, limit):
    """Two layers of 6 MiB each: the second passes a 10 MiB image bound, either passes a 4 MiB layer bound."""
    image = Image(tars=[zeros_tar(6, "one"), zeros_tar(6, "two")])
    layout = image.write_layout(os.path.join(scratch, "layout"))
    bound = {"max_layer_size": 4 * MiB} if limit == "max_layer_size" else {"max_image_size": 10 * MiB}
    res = run_module(overlay_image, dict(src="oci:%s:v1" % layout, home=home, remote_src=True, **bound))
    assert res["failed"] and "expands past %s" % limit in res["msg"]
    failed_layer = 1 if limit == "max_layer_size" else 2
    assert "layer %d of 2" % failed_layer in res["msg"]
    assert layer_names(home) == sorted(image.ids[:failed_layer - 1])
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []


@pytest.fixture
def small_home(scratch):
    """A home on a 4 MiB tmpfs of its own."""
    path = os.path.join(scratch, "small")
    os.mkdir(path)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", path], check=True)
    try:
        yield os.path.join(path, "home")
    finally:
        subprocess.run(["umount", "-l", path], check=False)


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_layer_larger_than_the_free_space_is_refused_before_it_is_fetched(
        run_module, small_home, scratch, check_mode):
    noise = os.urandom(6 * MiB)  # incompressible: 6 MiB of blob on a 4 MiB filesystem
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("noise")
        info.size = len(noise)
        tar.addfile(info, io.BytesIO(noise))
    tarball = os.path.join(scratch, "noise.tar")
    with open(tarball, "wb") as f:
        f.write(buf.getvalue())
    os.makedirs(small_home)
    res = run_module(overlay_apply_diff, {"id": "app", "home": small_home, "src": tarball, "remote_src": True},
                     check_mode=check_mode)
    assert res["failed"] and "not enough free space" in res["msg"] and "the home's filesystem has" in res["msg"]
    assert layer_names(small_home) == []
    image = Image(tars=[buf.getvalue()], compression="none")
    layout = image.write_layout(os.path.join(scratch, "layout"))
    res = run_module(overlay_image, {"src": "oci:%s:v1" % layout, "home": small_home, "remote_src": True},
                     check_mode=check_mode)
    assert res["failed"] and "layer 1 of 1" in res["msg"] and "not enough free space" in res["msg"]
    assert layer_names(small_home) == []


@pytest.mark.parametrize("size", ["8M", "8MiB", "8 MB", "0.0078125G", "8388608"])
def test_a_size_limit_may_be_written_as_a_human_size(run_module, home, scratch, size):
    bomb = os.path.join(scratch, "bomb.tar.gz")
    with open(bomb, "wb") as f:
        f.write(gzip.compress(zeros_tar(16), 9))
    res = run_module(overlay_apply_diff, {"id": "app", "home": home, "src": bomb, "remote_src": True,
                                          "max_layer_size": size})
    assert res["failed"] and "expands past max_layer_size (%d bytes uncompressed)" % (8 * MiB) in res["msg"]
    image = Image(tars=[zeros_tar(6, "one"), zeros_tar(6, "two")])
    layout = image.write_layout(os.path.join(scratch, "layout"))
    res = run_module(overlay_image, dict(src="oci:%s:v1" % layout, home=home, remote_src=True,
                                         max_layer_size="1.5GiB", max_image_size="10M"))
    assert res["failed"] and "expands past max_image_size" in res["msg"] and "layer 2 of 2" in res["msg"]


@pytest.mark.parametrize("size", ["10Q", "M", "ten", "-1M", "0M", [1]])
def test_a_size_limit_that_is_not_a_size_is_refused_naming_the_option(run_module, home, size):
    res = run_module(overlay_apply_diff, {"id": "app", "home": home, "src": "/nonexistent", "remote_src": True,
                                          "max_layer_size": size})
    assert res["failed"] and "max_layer_size must be a" in res["msg"]
    res = run_module(overlay_image, {"src": "oci:/nonexistent", "home": home, "remote_src": True,
                                     "max_image_size": size})
    assert res["failed"] and "max_image_size must be a" in res["msg"]
    assert not os.path.exists(home)


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_gzip_that_unpacks_past_the_free_space_fails_naming_max_layer_size(
        run_module, small_home, scratch, check_mode):
    """The free-space check before the apply sees only the small gzip: the run fails as the disk fills, the
    check run by the size it read. Both name max_layer_size, the option that bounds what a layer may unpack to."""
    bomb = os.path.join(scratch, "bomb.tar.gz")
    with open(bomb, "wb") as f:
        f.write(gzip.compress(zeros_tar(16), 9))  # 16 MiB of zeros on a 4 MiB filesystem
    os.makedirs(small_home)
    res = run_module(overlay_apply_diff, {"id": "app", "home": small_home, "src": bomb, "remote_src": True},
                     check_mode=check_mode)
    assert res["failed"] and "max_layer_size" in res["msg"], res
    assert ("no space left" if not check_mode else "not enough free space") in res["msg"]
    assert layer_names(small_home) == []
    nothing_left(small_home)
