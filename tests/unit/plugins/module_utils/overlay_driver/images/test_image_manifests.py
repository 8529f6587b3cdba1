"""Manifests, indexes and configs: what is accepted and what is refused by name."""

import json

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import manifests
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError

from imagetools import Image, mkimages, sha256

CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + "1" * 64, "size": 10}


def layer(media_type, n=2):
    return {"mediaType": media_type, "digest": "sha256:" + str(n) * 64, "size": 10}


def resolve_one(doc, declared=None, children=None, platform=("linux", "amd64", None)):
    data = json.dumps(doc).encode()
    children = children or {}

    def fetch(descriptor):
        return children[descriptor.digest]
    return manifests.resolve(fetch, data, declared, sha256(data), platform, "img")


def test_layer_types_map_to_compressions():
    doc = {"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": CONFIG,
           "layers": [layer(t, i + 2) for i, t in enumerate(sorted(manifests.LAYER_TYPES))]}
    resolved = resolve_one(doc)
    assert [d.compression for d in resolved.layers] == [manifests.LAYER_TYPES[t] for t in sorted(manifests.LAYER_TYPES)]


def test_docker_v2_manifest_without_own_media_type_uses_the_declared_one():
    doc = {"schemaVersion": 2, "config": dict(CONFIG, mediaType="application/vnd.docker.container.image.v1+json"),
           "layers": [layer("application/vnd.docker.image.rootfs.diff.tar.gzip")]}
    assert resolve_one(doc, manifests.DOCKER_MANIFEST).media_type == manifests.DOCKER_MANIFEST


@pytest.mark.parametrize("doc, declared, fragment", [
    ({"schemaVersion": 1, "name": "x", "fsLayers": []}, None, "schema 1"),
    ({"schemaVersion": 2, "config": CONFIG, "layers": []}, manifests.SCHEMA1[1], "schema 1"),
    ({"schemaVersion": 3, "config": CONFIG, "layers": []}, None, "schemaVersion 3"),
    ({"schemaVersion": 2, "mediaType": "application/vnd.example+json", "config": CONFIG, "layers": []}, None,
     "unsupported media type"),
    ({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": CONFIG,
      "layers": [layer("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")]}, None,
     "foreign (non-distributable)"),
    ({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": CONFIG,
      "layers": [layer("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")]}, None, "foreign"),
    ({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": CONFIG,
      "layers": [layer("application/vnd.oci.image.layer.v1.tar+bzip2")]}, None, "unsupported media type"),
    ({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST,
      "config": dict(CONFIG, mediaType="application/vnd.cncf.helm.config.v1+json"), "layers": []}, None,
     "an artifact"),
    ({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": CONFIG,
      "layers": [dict(layer(manifests.OCI_MANIFEST), size=-1)]}, None, "no valid size"),
    ({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": CONFIG,
      "layers": [dict(layer("application/vnd.oci.image.layer.v1.tar"), digest="sha256:../../etc")]}, None,
     "not a digest"),
    ({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": CONFIG, "layers": {}}, None,
     "no layers list"),
])
def test_refused(doc, declared, fragment):
    with pytest.raises(ImageError) as e:
        resolve_one(doc, declared)
    assert fragment in e.value.message
    assert "image img" in e.value.message


def test_a_manifest_larger_than_the_limit():
    doc = {"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": CONFIG, "layers": [],
           "annotations": {"pad": "x" * (manifests.MAX_MANIFEST + 1)}}
    with pytest.raises(ImageError) as e:
        resolve_one(doc)
    assert "larger than the 4194304 bytes" in e.value.message


def _index(entries):
    return {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": entries}


def _platform_entry(image, os_, arch, variant=None):
    entry = dict(image.manifest)
    entry["platform"] = {"os": os_, "architecture": arch}
    if variant:
        entry["platform"]["variant"] = variant
    return entry


def test_index_picks_the_platform():
    amd, arm, armv7 = Image(arch="amd64"), Image(arch="arm64"), Image(arch="arm")
    children = {i.manifest["digest"]: i.blobs.blobs[i.manifest["digest"]] for i in (amd, arm, armv7)}
    index = _index([_platform_entry(arm, "linux", "arm64", "v8"), _platform_entry(amd, "linux", "amd64"),
                    _platform_entry(armv7, "linux", "arm", "v7")])
    assert resolve_one(index, children=children).manifest_digest == amd.manifest["digest"]
    assert resolve_one(index, children=children, platform=("linux", "arm64", "v8")).manifest_digest == \
        arm.manifest["digest"]
    assert resolve_one(index, children=children, platform=("linux", "arm", "v7")).manifest_digest == \
        armv7.manifest["digest"]
    with pytest.raises(ImageError) as e:
        resolve_one(index, children=children, platform=("linux", "s390x", None))
    assert "no image for platform linux/s390x (it offers linux/amd64, linux/arm/v7, linux/arm64/v8)" in e.value.message


def test_an_index_that_points_to_itself():
    """An index cannot hold its own digest, so a server that answers a child with the index again is
    caught by the child's digest; the loop never starts."""
    amd = Image()
    index = _index([_platform_entry(amd, "linux", "amd64")])
    data = json.dumps(index).encode()
    fetched = []

    def fetch(descriptor):
        fetched.append(descriptor.digest)
        return data
    with pytest.raises(ImageError) as e:
        manifests.resolve(fetch, data, None, sha256(data), ("linux", "amd64", None), "img")
    assert "blob %s" % amd.manifest["digest"] in e.value.message
    assert "is %d bytes, its descriptor says" % len(data) in e.value.message or "content has digest" in e.value.message
    assert len(fetched) == 1


def test_indexes_nested_too_deep():
    amd = Image()
    children = {amd.manifest["digest"]: amd.blobs.blobs[amd.manifest["digest"]]}
    entry = _platform_entry(amd, "linux", "amd64")
    for _level in range(manifests.MAX_INDEX_DEPTH + 1):
        data = json.dumps(_index([entry])).encode()
        children[sha256(data)] = data
        entry = {"mediaType": manifests.OCI_INDEX, "digest": sha256(data), "size": len(data),
                 "platform": {"os": "linux", "architecture": "amd64"}}
    with pytest.raises(ImageError) as e:
        resolve_one(json.loads(children[entry["digest"]]), children=children)
    assert "nest deeper than 4" in e.value.message


def test_config_diff_ids_must_match_the_layer_count():
    image = Image()
    config = image.config_doc()
    data = json.dumps(config).encode()
    assert manifests.parse_config(data, "img", "d", 2)[0] == image.diff_ids
    for count in (1, 3):
        with pytest.raises(ImageError) as e:
            manifests.parse_config(data, "img", "sha256:cfg", count)
        assert "config sha256:cfg lists 2 diff_ids for the manifest's %d layers" % count in e.value.message
    config["rootfs"]["diff_ids"][0] = "md5:abc"
    with pytest.raises(ImageError):
        manifests.parse_config(json.dumps(config).encode(), "img", "d", 2)
    with pytest.raises(ImageError) as e:
        manifests.parse_config(b'{"rootfs": {"type": "layers", "diff_ids": []}}', "img", "d", 0)
    assert "no layers" in e.value.message


def test_platform_syntax():
    assert manifests.parse_platform("linux/arm/v7") == ("linux", "arm", "v7")
    assert manifests.parse_platform(None)[0] == "linux"
    for bad in ("linux", "linux/", "a/b/c/d"):
        with pytest.raises(ImageError):
            manifests.parse_platform(bad)


def test_mkimages_writes_what_the_parser_reads():
    assert mkimages.LAYER_TYPES["zstd"] in manifests.LAYER_TYPES


def test_machine_names():
    assert manifests.machine_platform("x86_64\n") == ("linux", "amd64", None)
    assert manifests.machine_platform("aarch64") == ("linux", "arm64", "v8")
    assert manifests.machine_platform("armv7l") == ("linux", "arm", "v7")
    assert manifests.machine_platform("mips64") == ("linux", "mips64", None)
