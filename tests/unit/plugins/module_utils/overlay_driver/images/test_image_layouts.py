"""Staging from OCI layouts, OCI archives and docker save archives into a real store, and tampered copies."""

import gzip
import io
import json
import os
import shutil
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import manifests
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from imagetools import Image, mkimages, sha256
from layertools import layer_names, read_in_layer


@pytest.fixture
def store(home):
    return LayerStore(home)


def read(home, layer_id, name):
    return read_in_layer(home, layer_id, name, "rb")


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none", ["none", "zstd"]])
def test_oci_layout_stages_a_chain_and_again_reads_nothing(store, home, scratch, compression):
    image = Image(compression=compression)
    layout = image.write_layout(os.path.join(scratch, "layout"))
    result = stage_image(store, "oci:%s:v1" % layout)
    assert result.changed
    assert [layer.id for layer in result.layers] == image.ids
    assert result.top == image.ids[1]
    assert [layer.diff_id for layer in result.layers] == image.diff_ids
    assert result.manifest_digest == image.manifest["digest"]
    assert result.config["WorkingDir"] == "/app"
    assert result.bytes == sum(layer.size for layer in result.layers)
    assert read(home, image.ids[1], "app/run.sh") == b"#!/bin/sh\nexec /bin/hello\n"
    assert read(home, image.ids[1], "var/old") is None  # the whiteout
    assert read(home, image.ids[0], "var/old") == b"old\n"
    assert store.state(image.ids[1])["parent"] == image.ids[0]
    # Again, with the layer blobs gone: only manifest and config are read.
    for layer in image.doc["layers"]:
        os.unlink(image.blob_path(layout, layer["digest"]))
    again = stage_image(store, "oci:%s" % layout)
    assert not again.changed and again.bytes == 0
    assert [layer.changed for layer in again.layers] == [False, False]


def test_oci_archive_and_both_docker_archive_layouts(store, home, scratch):
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    mkimages.tar_directory(layout, os.path.join(scratch, "image.oci.tar"))
    result = stage_image(store, "oci-archive:%s/image.oci.tar:v1" % scratch)
    assert result.changed and result.top == image.ids[1]
    store.ensure_absent(image.ids[1])
    facts = mkimages.write_docker_archive(os.path.join(scratch, "legacy.tar"), image.tars)
    result = stage_image(store, "docker-archive:%s/legacy.tar:strata/test:1" % scratch)
    assert [layer.changed for layer in result.layers] == [False, True]
    assert result.manifest_digest is None
    assert result.config_digest == facts["config_digest"]
    assert result.layers[1].digest == image.diff_ids[1]
    store.ensure_absent(image.ids[1])
    mkimages.write_docker_archive(os.path.join(scratch, "d25.tar"), image.tars, oci_style=True)
    result = stage_image(store, "docker-archive:%s/d25.tar:docker.io/strata/test:1" % scratch)
    assert [layer.changed for layer in result.layers] == [False, True]
    assert read(home, image.ids[1], "app/run.sh").startswith(b"#!/bin/sh")
    with pytest.raises(ImageError) as e:
        stage_image(store, "docker-archive:%s/d25.tar:other/name:2" % scratch)
    assert "no image tagged other/name:2" in e.value.message


def test_check_mode_reads_manifest_and_config_only(home, scratch):
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    for layer in image.doc["layers"]:
        os.unlink(image.blob_path(layout, layer["digest"]))
    params = {"src": "oci:" + layout, "home": home, "uid_maps": [], "gid_maps": [], "platform": None,
              "registry_auth": None, "validate_certs": True, "ca_path": None}
    result = ImageManager(params, check_mode=True, diff=True).run()
    assert result["changed"] and [layer["changed"] for layer in result["layers"]] == [True, True]
    assert result["diff"] == {"before": {"image": "oci:" + layout, "layers": []},
                              "after": {"image": "oci:" + layout, "layers": image.ids}}
    assert not os.path.exists(home)


def tamper_blob(image, layout):
    path = image.blob_path(layout, image.layer_digest(1))
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


def tamper_recompressed(image, layout):
    """The same tar compressed with another header time: same size, a valid layer with the right diff_id,
    so only the blob's digest can tell."""
    path = image.blob_path(layout, image.layer_digest(1))
    data = gzip.compress(image.tars[1], mtime=12345)
    assert len(data) == os.path.getsize(path) and data != open(path, "rb").read()
    open(path, "wb").write(data)


def tamper_excess(image, layout):
    with open(image.blob_path(layout, image.layer_digest(1)), "ab") as f:
        f.write(b"\0" * 512)


def tamper_truncate(image, layout):
    path = image.blob_path(layout, image.layer_digest(1))
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-10])


def tamper_symlink(image, layout):
    path = image.blob_path(layout, image.layer_digest(1))
    shutil.move(path, path + ".real")
    os.symlink(os.path.basename(path) + ".real", path)


def tamper_fifo(image, layout):
    path = image.blob_path(layout, image.layer_digest(1))
    os.unlink(path)
    os.mkfifo(path)


def tamper_missing(image, layout):
    os.unlink(image.blob_path(layout, image.layer_digest(1)))


def tamper_diff_id(image, layout):
    config = image.config_doc()
    config["rootfs"]["diff_ids"][1] = sha256(b"something else")
    image.replace_config(config)
    image.write_layout(layout)


def _rewrite_layers(image, layout, change):
    doc = json.loads(json.dumps(image.doc))
    change(doc)
    image.rewrite(doc)
    image.write_layout(layout)


def tamper_foreign(image, layout):
    def change(doc):
        doc["layers"][1]["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    _rewrite_layers(image, layout, change)


def tamper_unknown_type(image, layout):
    def change(doc):
        doc["layers"][1]["mediaType"] = "application/x-squashfs"
    _rewrite_layers(image, layout, change)


def tamper_schema1(image, layout):
    data = json.dumps({"schemaVersion": 1, "name": "x", "tag": "v1", "fsLayers": [], "history": []}).encode()
    image.manifest = image.blobs.add(data, manifests.SCHEMA1[1])
    image.write_layout(layout)


def tamper_more_diff_ids(image, layout):
    config = image.config_doc()
    config["rootfs"]["diff_ids"].append(sha256(b"extra"))
    image.replace_config(config)
    image.write_layout(layout)


def tamper_fewer_diff_ids(image, layout):
    config = image.config_doc()
    config["rootfs"]["diff_ids"].pop()
    image.replace_config(config)
    image.write_layout(layout)


def tamper_huge_manifest(image, layout):
    doc = dict(image.doc, annotations={"pad": "x" * (manifests.MAX_MANIFEST + 10)})
    image.rewrite(doc)
    image.write_layout(layout)


def tamper_config_bytes(image, layout):
    path = image.blob_path(layout, image.doc["config"]["digest"])
    data = open(path, "rb").read()
    open(path, "wb").write(data.replace(b"/app", b"/xyz"))


# name -> (tamper, fragment of the message, whether the base layer is staged before the failure)
CASES = {
    "blob bytes do not match the digest": (tamper_blob, "content has digest", True),
    "blob recompressed: right content, wrong digest": (tamper_recompressed, "content has digest", True),
    "blob longer than its descriptor": (tamper_excess, "more bytes than the", True),
    "blob shorter than its descriptor": (tamper_truncate, "truncated", True),
    "blob is a symlink": (tamper_symlink, "Too many levels of symbolic links", True),
    "blob is a fifo": (tamper_fifo, "is not a regular file", True),
    "blob missing": (tamper_missing, "missing from the layout", True),
    "config diff_id does not match the layer": (tamper_diff_id, "diff_id mismatch", True),
    "foreign layer": (tamper_foreign, "foreign (non-distributable)", False),
    "unknown layer media type": (tamper_unknown_type, "unsupported media type 'application/x-squashfs'", False),
    "schema 1 manifest": (tamper_schema1, "schema 1", False),
    "more diff_ids than layers": (tamper_more_diff_ids, "lists 3 diff_ids for the manifest's 2 layers", False),
    "fewer diff_ids than layers": (tamper_fewer_diff_ids, "lists 1 diff_ids for the manifest's 2 layers", False),
    "manifest larger than the limit": (tamper_huge_manifest, "more than the 4194304 accepted", False),
    "config bytes do not match its digest": (tamper_config_bytes, "content has digest", False),
}


@pytest.mark.parametrize("top_compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_layouts_fail_clearly_and_stage_nothing_of_the_bad_layer(store, home, scratch, case,
                                                                          top_compression):
    tamper, fragment, base_staged = CASES[case]
    if tamper is tamper_recompressed and top_compression != "gzip":
        pytest.skip("recompressing keeps the size only with gzip")
    image = Image(compression=["gzip", top_compression])
    layout = image.write_layout(os.path.join(scratch, "layout"))
    ids = list(image.ids)
    tamper(image, layout)
    with pytest.raises(OverlayError) as e:
        stage_image(store, "oci:%s:v1" % layout)
    message = e.value.message
    fragments = [fragment]
    if top_compression == "none" and tamper is tamper_blob:
        # An uncompressed blob's digest is its diff_id: the applier's checks say it (here the flipped
        # byte lands in the archive's end padding).
        fragments = ["diff_id mismatch", "trailing data after the end of the tar archive"]
    assert any(f in message for f in fragments), message
    assert message.startswith("image oci:%s:v1" % layout)
    assert layer_names(home) == ([ids[0]] if base_staged else [])
    if base_staged:
        assert "blob " in message and "layer 2 of 2" in message
        assert read(home, ids[0], "etc/os-release") == b"ID=strata\n"
    assert not os.listdir(os.path.join(home, ".strata", "tmp")) if os.path.isdir(home) else True


def test_layout_ref_and_many_images(store, scratch):
    one, two = Image(), Image(tars=[mkimages.layer_tar([("x", b"x", 0o644)])])
    for digest, data in two.blobs.blobs.items():
        one.blobs.blobs[digest] = data
    entry = dict(two.manifest, annotations={"org.opencontainers.image.ref.name": "v2"})
    layout = one.write_layout(os.path.join(scratch, "layout"), extra_entries=[entry])
    assert stage_image(store, "oci:%s:v2" % layout).top == two.ids[0]
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s" % layout)
    assert "index.json lists 2 images; name one with oci:PATH:REF" in e.value.message
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s:v3" % layout)
    assert "no image named 'v3' in index.json (it has v1, v2)" in e.value.message


def test_docker_archive_with_two_images(store, scratch):
    """`docker save a b` writes one manifest.json entry per image; :NAME:TAG or :@INDEX picks one."""
    one, two = Image(), Image(tars=[mkimages.layer_tar([("two", b"2", 0o644)])])
    paths = [os.path.join(scratch, n) for n in ("one.tar", "two.tar")]
    mkimages.write_docker_archive(paths[0], one.tars, tag="example/one:1")
    mkimages.write_docker_archive(paths[1], two.tars, tag="example/two:2")
    members, entries = {}, []
    for path in paths:
        with tarfile.open(path) as tf:
            for member in tf.getmembers():
                data = tf.extractfile(member).read()
                if member.name == "manifest.json":
                    entries.extend(json.loads(data))
                else:
                    members[member.name] = data
    members["manifest.json"] = json.dumps(entries).encode()
    both = os.path.join(scratch, "both.tar")
    with tarfile.open(both, "w") as tf:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    assert stage_image(store, "docker-archive:%s:@1" % both, check_mode=True).top == two.ids[0]
    assert stage_image(store, "docker-archive:%s:example/one:1" % both).top == one.ids[1]
    for wrong, fragment in (("", "holds 2 images; name one"), (":@2", "there is no @2")):
        with pytest.raises(ImageError) as e:
            stage_image(store, "docker-archive:%s%s" % (both, wrong))
        assert fragment in e.value.message


def test_a_file_that_is_no_archive(store, scratch):
    path = os.path.join(scratch, "not.tar")
    with open(path, "wb") as f:
        f.write(b"this is not a tar archive at all" * 100)
    for transport in ("docker-archive", "oci-archive"):
        with pytest.raises(ImageError) as e:
            stage_image(store, "%s:%s" % (transport, path))
        assert "cannot read the archive" in e.value.message or "not in the archive" in e.value.message
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s" % path)
    assert "not a directory" in e.value.message


@pytest.mark.layout("overlay")  # the home is one of the seed's layout that Docker wrote
def test_check_mode_on_a_home_without_bookkeeping_writes_nothing(home, scratch):
    """A home Docker wrote (layer directories, no .strata/) stays as it is in check mode."""
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    os.makedirs(os.path.join(home, "some-docker-layer", "root"))
    params = {"src": "oci:" + layout, "home": home, "uid_maps": [], "gid_maps": [], "platform": None,
              "registry_auth": None, "validate_certs": True, "ca_path": None}
    result = ImageManager(params, check_mode=True).run()
    assert [layer["changed"] for layer in result["layers"]] == [True, True]
    assert os.listdir(home) == ["some-docker-layer"]


def test_check_mode_on_a_home_with_bookkeeping_changes_nothing(home, scratch):
    """A home with records, leftovers of a killed run, an orphan record and no recorded maps (written
    before maps were recorded): a check run leaves every one of them as it was."""
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("other", "")
    store.close()
    state = os.path.join(home, ".strata")
    os.unlink(os.path.join(state, "maps.json"))
    os.mkdir(os.path.join(state, "tmp", "leftover"))
    with open(os.path.join(state, "layers", "ghost.json"), "w") as f:
        f.write("{}")

    def listing():
        return sorted((top, sorted(dirs), sorted(files)) for top, dirs, files in os.walk(home))
    before = listing()
    params = {"src": "oci:" + layout, "home": home, "uid_maps": None, "gid_maps": None, "platform": None,
              "registry_auth": None, "validate_certs": True, "ca_path": None}
    result = ImageManager(params, check_mode=True).run()
    assert [layer["changed"] for layer in result["layers"]] == [True, True]
    assert listing() == before


def _open_fds():
    return sorted(int(fd) for fd in os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_staging_run_leaves_no_descriptor_of_the_home_open(home, scratch, check_mode):
    """A run closes the store it opened (the home, its bookkeeping and its lock): a process that stages
    many homes, as the controller's action does for a fleet, does not run out of descriptors."""
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    params = {"src": "oci:" + layout, "home": home, "uid_maps": None, "gid_maps": None, "platform": None,
              "registry_auth": None, "validate_certs": True, "ca_path": None}
    if check_mode:
        ImageManager(dict(params)).run()  # a check run with records to read opens a store too
    before = _open_fds()
    result = ImageManager(dict(params), check_mode=check_mode).run()
    assert result["top"] == image.ids[-1]
    assert _open_fds() == before
