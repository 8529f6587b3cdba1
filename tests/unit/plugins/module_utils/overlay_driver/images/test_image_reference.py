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


@pytest.mark.parametrize("text, hint", [
    ("debian:12", "write docker://docker.io/library/debian:12 (Docker Hub), or docker://debian:12 to have the host's "
                  "registries.conf resolve the short name 'debian' (an [aliases] entry for it, or its "
                  "unqualified-search-registries; Docker Hub when the host has no registries.conf)"),
    ("library/debian", "write docker://docker.io/library/debian:latest (Docker Hub), or docker://library/debian "),
    ("docker:debian:12", "write docker://docker.io/library/debian:12 (Docker Hub)"),
    ("ghcr.io/team/app:1", "; for a registry image write docker://ghcr.io/team/app:1"),
    ("localhost:5000/app@" + DIGEST, "; for a registry image write docker://localhost:5000/app@" + DIGEST),
    ("/srv/image.tar", "; for a file write oci:/srv/image.tar (an OCI layout directory), "
                       "oci-archive:/srv/image.tar or docker-archive:/srv/image.tar (docker save)"),
    ("containers-storage:x", "(containers-transports(5) has containers-storage:, which this module does not read)"),
    # a file name given without ./ reads as a Docker Hub repository too; named like an archive, it is a file
    ("app.tar", "; for a file write oci:app.tar (an OCI layout directory), oci-archive:app.tar or "
                "docker-archive:app.tar (docker save)"),
    ("images/app.tar.gz", "; for a file write oci:images/app.tar.gz "),
    ("build/image.oci:v1", "; for a file write oci:build/image.oci:v1 "),
])
def test_an_image_name_without_its_transport_is_told_what_to_write(text, hint):
    with pytest.raises(ImageError) as e:
        parse_reference(text)
    assert hint in e.value.message, e.value.message


def test_a_short_name_hint_names_what_is_written_not_what_registries_conf_would_make_of_it():
    with pytest.raises(ImageError) as e:
        parse_reference("ghcr.io/team/app:1")
    assert "short name" not in e.value.message and "registries.conf" not in e.value.message
