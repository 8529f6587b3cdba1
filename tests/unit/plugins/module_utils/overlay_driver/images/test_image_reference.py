"""Image references in skopeo's transport syntax."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, fields", [
    ("oci:/srv/layout", dict(transport="oci", path="/srv/layout", ref=None)),
    ("oci:/srv/layout:v1", dict(transport="oci", path="/srv/layout", ref="v1")),
    ("oci:layout:example.com/app:1.0", dict(path="layout", ref="example.com/app:1.0")),
    ("oci-archive:/tmp/a.tar", dict(transport="oci-archive", path="/tmp/a.tar", ref=None)),
    ("docker-archive:/tmp/a.tar", dict(transport="docker-archive", path="/tmp/a.tar", ref=None, index=None)),
    ("docker-archive:/tmp/a.tar:app:1", dict(ref="app:1")),
    ("docker-archive:/tmp/a.tar:localhost:5000/app:1", dict(ref="localhost:5000/app:1")),
    ("docker-archive:/tmp/a.tar:@2", dict(index=2, ref=None)),
    ("docker://registry.example.com:5000/team/app:1.2",
     dict(transport="docker", host="registry.example.com:5000", repository="team/app", tag="1.2", digest=None)),
    ("docker://127.0.0.1:5000/app", dict(host="127.0.0.1:5000", repository="app", tag="latest")),
    ("docker://localhost/app@" + DIGEST, dict(host="localhost", repository="app", tag=None, digest=DIGEST)),
    ("docker://debian:12", dict(host="docker.io", repository="library/debian", tag="12")),
    ("docker://bitnami/redis", dict(host="docker.io", repository="bitnami/redis", tag="latest")),
    ("docker://docker.io/debian", dict(host="docker.io", repository="library/debian")),
    ("docker://ghcr.io/a/b/c:t@" + DIGEST, dict(host="ghcr.io", repository="a/b/c", tag="t", digest=DIGEST)),
])
def test_valid(text, fields):
    ref = parse_reference(text)
    assert ref.text == text
    for key, value in fields.items():
        assert getattr(ref, key) == value, key


@pytest.mark.parametrize("text, fragment", [
    ("", "image reference"),
    ("layout", "unknown transport"),
    ("containers-storage:x", "unknown transport"),
    ("oci:", "a path is required"),
    ("oci:/x:", "empty reference"),
    ("docker-archive:/x:noTag", "NAME:TAG"),
    ("docker-archive:/x:@one", "@INDEX"),
    ("docker:registry/app", "docker://"),
    ("docker://registry.example.com/App", "invalid repository"),
    ("docker://registry.example.com/app:bad tag", "invalid tag"),
    ("docker://registry.example.com/app@sha256:abc", "sha256:<64"),
    ("docker://registry.example.com/app@md5:" + "a" * 32, "only sha256"),
    ("docker://exa_mple.com/app", "invalid registry host"),
    ("oci:/x\n", "NUL or newline"),
])
def test_invalid(text, fragment):
    with pytest.raises(ImageError) as e:
        parse_reference(text)
    assert fragment in e.value.message
