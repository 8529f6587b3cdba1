"""Hostile image metadata: JSON nesting deep enough to exhaust Python's parser, names that leave the image.

json.loads raises RecursionError (not ValueError) on a document nesting some
thousand levels, which fits easily in a 4 MiB manifest or an 8 MiB config.
Each must be a clear error naming the image, never an 'unexpected error' with
a traceback, and nothing of the image may be staged.
"""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import config_cache
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from imagetools import Image, mkimages
from layertools import layer_names

DEEP = b"[" * 100000 + b"]" * 100000


def refused(home, src, fragment, **kw):
    with pytest.raises(ImageError) as e:
        stage_image(LayerStore(home), src, **kw)
    assert fragment in e.value.message
    assert e.value.message.startswith("image %s" % src)
    assert layer_names(home) == []
    return e.value.message


def test_a_config_nesting_deeply(home, scratch):
    image = Image()
    config = json.dumps(image.config_doc()).encode()[:-1] + b', "x": ' + DEEP + b"}"
    image.rewrite(dict(image.doc, config=image.blobs.add(config, mkimages.OCI_CONFIG)))
    layout = image.write_layout(os.path.join(scratch, "layout"))
    refused(home, "oci:%s:v1" % layout, "nests its JSON too deeply")


@pytest.mark.parametrize("which", ["index.json", "manifest"])
def test_an_index_or_manifest_nesting_deeply(home, scratch, which):
    image = Image()
    if which == "manifest":
        image.manifest = image.blobs.add(json.dumps(image.doc).encode()[:-1] + b', "x": ' + DEEP + b"}",
                                         mkimages.OCI_MANIFEST)
    layout = image.write_layout(os.path.join(scratch, "layout"))
    if which == "index.json":
        with open(os.path.join(layout, "index.json"), "wb") as f:
            f.write(b'{"schemaVersion": 2, "manifests": [], "x": ' + DEEP + b"}")
    refused(home, "oci:%s:v1" % layout, "nests its JSON too deeply")


def saved_image(scratch):
    """(archive, the directory it is extracted to, its member names) of a `docker save` of a test image."""
    archive = os.path.join(scratch, "saved.tar")
    mkimages.write_docker_archive(archive, Image().tars)
    directory = os.path.join(scratch, "saved")
    with tarfile.open(archive) as tar:
        tar.extractall(directory)  # the test's own archive
        return archive, directory, tar.getnames()


def test_a_docker_archive_manifest_nesting_deeply(home, scratch):
    _archive, directory, _names = saved_image(scratch)
    with open(os.path.join(directory, "manifest.json"), "wb") as f:
        f.write(DEEP)
    refused(home, "docker-archive:%s" % directory, "manifest.json nests its JSON too deeply")


def test_an_auth_file_nesting_deeply(home, scratch):
    auth_file = os.path.join(scratch, "auth.json")
    with open(auth_file, "wb") as f:
        f.write(b'{"auths": ' + DEEP + b"}")
    refused(home, "docker://127.0.0.1:9/strata/app:v1", "auth_file is not valid JSON",
            registry_auth={"auth_file": auth_file})


def test_a_remembered_config_nesting_deeply_is_ignored(home, scratch):
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    store = LayerStore(home)
    stage_image(store, "oci:%s:v1" % layout)
    entry = os.path.join(home, ".strata", config_cache.CACHE_DIR, image.doc["config"]["digest"][7:] + ".json")
    with open(entry, "wb") as f:
        f.write(DEEP)
    again = stage_image(store, "oci:%s:v1" % layout)
    assert not again.changed and again.config["WorkingDir"] == "/app"
    with open(entry, "rb") as f:
        assert json.load(f)["config_digest"] == image.doc["config"]["digest"], "rewritten"


# -- names that leave the image: a docker save manifest.json naming ../, a layout's blobs/ outside it ----------

# Each class of name that is not a member: leaving by .., absolute, .. after a normal start, NUL, a backslash.
OUTSIDE = {"dotdot": "../", "absolute": "/", "double-slash": "//", "hidden-dotdot": "a/../../", "nul": "\x00/"}


@pytest.mark.parametrize("what", ["Config", "Layers"])
@pytest.mark.parametrize("shape", ["tar", "directory"])
@pytest.mark.parametrize("prefix", list(OUTSIDE.values()), ids=list(OUTSIDE))
def test_a_docker_archive_naming_paths_outside_it(home, scratch, what, shape, prefix):
    archive, directory, names = saved_image(scratch)
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as f:
        entries = json.load(f)
    # a file beside the archive that a ../ name would reach
    outside = os.path.join(scratch, "outside.json")
    with open(outside, "w", encoding="utf-8") as f:
        f.write("{}")
    if what == "Config":
        entries[0]["Config"] = prefix + "outside.json"
    else:
        entries[0]["Layers"][0] = prefix + entries[0]["Layers"][0]
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(entries, f)
    if shape == "tar":
        with tarfile.open(archive, "w") as tar:
            for name in names:
                tar.add(os.path.join(directory, name), name, recursive=False)
        src = "docker-archive:%s" % archive
    else:
        src = "docker-archive:%s" % directory
    refused(home, src, "refusing the file name")


def test_a_layout_whose_blobs_directory_is_a_symlink_elsewhere(home, scratch):
    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    os.rename(os.path.join(layout, "blobs"), os.path.join(scratch, "elsewhere"))
    os.symlink(os.path.join(scratch, "elsewhere"), os.path.join(layout, "blobs"))
    refused(home, "oci:%s:v1" % layout, "blobs is a symlink or not a directory")


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd program")
def test_a_zstd_layer_asking_for_a_2_gib_window(home, scratch):
    """A memory bomb: a few bytes whose frame header demands a 2 GiB decoding window. Refused by the
    decompressor's memory limit, as a clear error; the layer is not created, nothing is left in tmp/."""
    image = Image(compression="none")
    bomb = subprocess.run(["zstd", "--long=31", "-c"], input=image.tars[0], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, check=True).stdout
    doc = json.loads(json.dumps(image.doc))
    doc["layers"][0] = image.blobs.add(bomb, "application/vnd.oci.image.layer.v1.tar+zstd")
    image.rewrite(doc)
    layout = image.write_layout(os.path.join(scratch, "layout"))
    message = refused(home, "oci:%s:v1" % layout, "zstd stream is corrupt or truncated")
    assert "layer 1 of 2" in message and "Window size larger than maximum" in message
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
