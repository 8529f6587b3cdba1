"""A layer named by a ChainID is the image's layer only if it holds that diff on that parent.

A ChainID names a stack of diffs. A layer made by hand under that id (empty,
with files of its own, or with the right diff on another parent) is not the
image's layer: staging refuses it, naming what it holds, and changes nothing.
"""

import gzip
import io
import os
import shutil

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import igzip
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image, store_has
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from imagetools import Image
from layertools import TarBuilder, layer_names, snapshot

IMAGE = Image(compression="none")
OTHER = TarBuilder().dir("other").file("other/file", "not the image's base\n").bytes()


def opener(data):
    return lambda: io.BytesIO(data)


def impostor(store, shape):
    """Make the image's top layer id by hand; returns the id."""
    top = IMAGE.ids[1]
    if shape == "same-diff-other-parent":
        store.apply_diff("other", "", opener(OTHER))
        store.apply_diff(top, "other", opener(IMAGE.tars[1]), IMAGE.diff_ids[1])
    elif shape == "no-diff-right-parent":
        store.apply_diff(IMAGE.ids[0], "", opener(IMAGE.tars[0]), IMAGE.diff_ids[0])
        store.ensure_present(top, IMAGE.ids[0])
    elif shape == "other-diff-right-parent":
        store.apply_diff(IMAGE.ids[0], "", opener(IMAGE.tars[0]), IMAGE.diff_ids[0])
        store.apply_diff(top, IMAGE.ids[0], opener(OTHER))
    return top


def home_view(home):
    return {n: snapshot(os.path.join(home, n)) for n in layer_names(home)}


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
@pytest.mark.parametrize("shape", ["same-diff-other-parent", "no-diff-right-parent", "other-diff-right-parent"])
def test_a_layer_made_by_hand_under_a_chain_id_is_refused(home, scratch, shape, check_mode):
    layout = IMAGE.write_layout(os.path.join(scratch, "layout"))
    store = LayerStore(home)
    with store.locked():
        top = impostor(store, shape)
    before = home_view(home)
    target = LayerStore.for_check_run(home) if check_mode else store
    with pytest.raises(ImageError) as e:
        stage_image(target, "oci:%s:v1" % layout, check_mode=check_mode)
    message = e.value.message
    assert "layer 2 of 2 (%s)" % top in message and "is not this image's layer" in message
    assert "diff %s on parent %s" % (IMAGE.diff_ids[1], IMAGE.ids[0]) in message
    after = home_view(home)
    if IMAGE.ids[0] not in before and not check_mode:
        after.pop(IMAGE.ids[0])  # the layers below the refused one are the image's, and stay
    assert after == before


def test_a_staged_layer_replaced_by_one_on_another_parent_is_not_trusted_again(home, scratch):
    """The home remembers the image's config; the replaced layer still fails the check that memory makes."""
    layout = IMAGE.write_layout(os.path.join(scratch, "layout"))
    store = LayerStore(home)
    stage_image(store, "oci:%s:v1" % layout)
    with store.locked():
        store.ensure_absent(IMAGE.ids[1])
        store.apply_diff("other", "", opener(OTHER))
        store.apply_diff(IMAGE.ids[1], "other", opener(IMAGE.tars[1]), IMAGE.diff_ids[1])
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s:v1" % layout)
    assert "holds diff %s on parent other" % IMAGE.diff_ids[1] in e.value.message


def tiny_layers(n):
    return [TarBuilder().file("layer-%03d" % i, str(i)).bytes() for i in range(n)]


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_an_image_deeper_than_dockers_125_layers_is_refused_before_anything_is_written(home, scratch, check_mode):
    """126 tiny layers would cost the seed's layout a copy of the whole tree per layer; Docker refuses them."""
    layout = Image(tars=tiny_layers(126), compression="none").write_layout(os.path.join(scratch, "deep"))
    store = LayerStore(home)
    before = sorted(os.listdir(home))
    target = LayerStore.for_check_run(home) if check_mode else store
    with pytest.raises(ImageError, match="the image has 126 layers; at most 125 are staged"):
        stage_image(target, "oci:%s:v1" % layout, check_mode=check_mode)
    assert sorted(os.listdir(home)) == before
    assert os.listdir(os.path.join(home, ".strata", "layers")) == []


def test_an_image_of_125_layers_is_staged(home, scratch):
    image = Image(tars=tiny_layers(125), compression="none")
    layout = image.write_layout(os.path.join(scratch, "deep"))
    staged = stage_image(LayerStore(home), "oci:%s:v1" % layout)
    assert len(staged.layers) == 125 and staged.top == image.ids[-1]


# -- gzip layers through the igzip program, and zlib's second reading ----------

IGZIP = shutil.which("igzip")
needs_igzip = pytest.mark.skipif(IGZIP is None, reason="the igzip program (Debian's isal) is not installed")


@pytest.fixture
def igzip_runs(scratch, monkeypatch):
    """The igzip program staging runs, through a wrapper that counts its runs; a function giving that count."""
    log = os.path.join(scratch, "igzip-runs")
    wrapper = os.path.join(scratch, "igzip")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\necho run >> %s\nexec %s \"$@\"\n" % (log, IGZIP))
    os.chmod(wrapper, 0o755)
    monkeypatch.setattr(igzip, "igzip_program", lambda: wrapper)

    def runs():
        with open(log) if os.path.exists(log) else io.StringIO() as f:
            return len(f.read().split())
    return runs


def gzip_image(blob_of_first_layer):
    """IMAGE's layers gzip-compressed, the first one's blob made by blob_of_first_layer(tar)."""
    image = Image(tars=IMAGE.tars, compression="gzip")
    doc = dict(image.doc, layers=list(image.doc["layers"]))
    doc["layers"][0] = image.blobs.add(blob_of_first_layer(image.tars[0]), doc["layers"][0]["mediaType"])
    image.rewrite(doc)
    return image


@needs_igzip
# eStargz's shape is a member per file; NUL padding at the end zlib accepts and igzip stops at: read again
@pytest.mark.parametrize("shape", ["one member", "a member per 512 bytes", "NUL padding at the end"])
def test_a_gzip_layer_is_staged_through_igzip_or_read_again(home, scratch, igzip_runs, shape):
    def blob(tar):
        if shape == "one member":
            return gzip.compress(tar, mtime=0)
        if shape == "a member per 512 bytes":
            return b"".join(gzip.compress(tar[i:i + 512], mtime=0) for i in range(0, len(tar), 512))
        return gzip.compress(tar, mtime=0) + b"\x00" * 100
    image = gzip_image(blob)
    layout = image.write_layout(os.path.join(scratch, "layout"))
    # the second reading spends no more of the image's size than the first: exactly enough is enough
    staged = stage_image(LayerStore(home), "oci:%s:v1" % layout, max_image_size=sum(len(t) for t in image.tars))
    assert [layer.id for layer in staged.layers] == image.ids
    assert igzip_runs() == 2  # one run per layer, the second reading is zlib's
    store = LayerStore(home)
    assert all(store_has(store, lid, diff, parent)
               for lid, diff, parent in zip(image.ids, image.diff_ids, [""] + image.ids[:-1]))
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []


@needs_igzip
@pytest.mark.parametrize("tail", [b"junk", b"\x00" * 8 + gzip.compress(b"\x00" * 1024, mtime=0)],
                         ids=["junk", "member-after-padding"])
def test_a_gzip_layer_igzip_would_take_is_refused_by_zlib_and_leaves_nothing(home, scratch, igzip_runs, tail):
    image = gzip_image(lambda tar: gzip.compress(tar, mtime=0) + tail)
    layout = image.write_layout(os.path.join(scratch, "layout"))
    with pytest.raises(ImageError, match="trailing data after gzip stream 1") as e:
        stage_image(LayerStore(home), "oci:%s:v1" % layout)
    assert "layer 1 of 2" in e.value.message and "igzip" not in e.value.message
    assert igzip_runs() == 1
    assert layer_names(home) == [] and os.listdir(os.path.join(home, ".strata", "tmp")) == []


@needs_igzip
def test_a_layer_read_again_keeps_the_bytes_fetched_meanwhile(home, server, pki, igzip_runs, monkeypatch):
    """The second reading of a registry's layer must not take back the bytes of the blobs fetched ahead
    while its first reading ran: the result's bytes are every blob's."""
    import threading  # pylint: disable=import-outside-toplevel
    import time  # pylint: disable=import-outside-toplevel

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import stage
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network

    image = gzip_image(lambda tar: gzip.compress(tar, mtime=0) + b"\x00" * 100)  # read again through zlib
    server.push("strata/app", image)
    blobs = [len(server.blobs[image.layer_digest(i)]) for i in range(2)]
    first_reading = threading.Event()

    def second_blob(handler):  # fetched ahead once the first layer's first reading started
        assert first_reading.wait(30)
        del server.override[path]
        handler.do_GET()
    path = "/v2/strata/app/blobs/" + image.layer_digest(1)
    server.override[path] = second_blob
    real = stage._apply_attempt
    made = []

    class Progress(stage._Progress):
        def __init__(self):
            super().__init__()
            made.append(self)

    def attempt(*args):
        gzip_program = args[-1]
        if args[3].id != image.ids[0] or not gzip_program:
            return real(*args)
        first_reading.set()
        try:
            return real(*args)
        finally:
            deadline = time.monotonic() + 30
            while made[0].bytes < sum(blobs) and time.monotonic() < deadline:
                time.sleep(0.01)
    monkeypatch.setattr(stage, "_apply_attempt", attempt)
    monkeypatch.setattr(stage, "_Progress", Progress)
    result = stage_image(LayerStore(home), "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0],
                         network=Network(environ={}))
    assert [layer.id for layer in result.layers] == image.ids and igzip_runs() == 2
    assert result.bytes == sum(blobs)


@needs_igzip
def test_a_layer_read_again_counts_its_blob_once(home, scratch, igzip_runs):
    image = gzip_image(lambda tar: gzip.compress(tar, mtime=0) + b"\x00" * 100)
    layout = image.write_layout(os.path.join(scratch, "layout"))
    staged = stage_image(LayerStore(home), "oci:%s:v1" % layout)
    assert igzip_runs() == 2 and staged.bytes == sum(layer["size"] for layer in image.doc["layers"])


# a script whose interpreter is missing (ENOENT), a binary of another machine (ENOEXEC)
@pytest.mark.parametrize("program", ["#!/nonexistent/sh\n", "\x7fELF\x02\x01\x01 of another machine"],
                         ids=["missing-interpreter", "exec-format"])
def test_an_igzip_that_cannot_run_leaves_the_layer_to_zlib(home, scratch, monkeypatch, program):
    broken = os.path.join(scratch, "igzip")
    with open(broken, "w") as f:
        f.write(program)
    os.chmod(broken, 0o755)
    monkeypatch.setattr(igzip, "igzip_program", lambda: broken)
    image = Image(tars=IMAGE.tars, compression="gzip")
    layout = image.write_layout(os.path.join(scratch, "layout"))
    staged = stage_image(LayerStore(home), "oci:%s:v1" % layout)
    assert [layer.id for layer in staged.layers] == image.ids
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []


@needs_igzip
def test_a_layer_whose_last_member_header_is_left_open_is_refused_as_zlib_refuses_it(home, scratch, igzip_runs):
    # its FEXTRA field would hold exactly the sentinel member's header: igzip reads the sentinel as its member
    open_extra = b"\x1f\x8b\x08\x04" + b"\x00" * 4 + b"\x00\xff" + b"\x0a\x00"
    image = gzip_image(lambda tar: gzip.compress(tar, mtime=0) + open_extra)
    layout = image.write_layout(os.path.join(scratch, "layout"))
    with pytest.raises(ImageError, match="stream 2 ends before its end marker"):
        stage_image(LayerStore(home), "oci:%s:v1" % layout)
    assert layer_names(home) == [] and os.listdir(os.path.join(home, ".strata", "tmp")) == []


@needs_igzip
def test_an_apply_that_fails_before_igzips_answer_is_proven_gets_zlibs_verdict(home, scratch, monkeypatch):
    # a blob cut inside a deflate block has igzip decode the sentinel's bytes as more of it: what that makes can
    # fail the applier before igzip ends. Here an igzip that answers with a broken tar header and more than the
    # reader reads ahead (8 MiB), so that the failure comes first, then reads its input to the end.
    liar = os.path.join(scratch, "igzip-liar")
    with open(liar, "w") as f:
        f.write("#!/bin/sh\nhead -c 33554432 /dev/zero | tr '\\0' x\nexec cat >/dev/null\n")
    os.chmod(liar, 0o755)
    monkeypatch.setattr(igzip, "igzip_program", lambda: liar)
    image = gzip_image(lambda tar: gzip.compress(tar, mtime=0))
    layout = image.write_layout(os.path.join(scratch, "layout"))
    staged = stage_image(LayerStore(home), "oci:%s:v1" % layout)  # zlib reads the sound blob
    assert [layer.id for layer in staged.layers] == image.ids
    cut = gzip_image(lambda tar: gzip.compress(tar, mtime=0)[:-100])
    with pytest.raises(ImageError, match="ends before its end marker"):  # zlib's verdict, not the tar error
        stage_image(LayerStore(os.path.join(scratch, "home2")), "oci:%s:v1" % cut.write_layout(
            os.path.join(scratch, "cut")))
