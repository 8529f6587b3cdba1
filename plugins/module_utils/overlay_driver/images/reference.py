# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references in the transport syntax of skopeo and podman (containers-transports(5)).

oci:PATH[:REF], oci-archive:PATH[:REF], docker-archive:PATH[:NAME:TAG|:@INDEX] and
docker://HOST[:PORT]/REPO[:TAG|@DIGEST]. Operators already write these, so the
same strings work here.
"""

import re

from .digests import parse_digest
from .errors import ImageError

TRANSPORTS = ("oci", "oci-archive", "docker-archive", "docker")
FILE_TRANSPORTS = ("oci", "oci-archive", "docker-archive")

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPO_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
# for the names other modules check (the signature policy's scopes and identities)
TAG_PATTERN, REPO_COMPONENT, HOST_PATTERN = _TAG, _REPO_COMPONENT, _HOST
# OCI annotation org.opencontainers.image.ref.name: a tag or a fuller name.
_OCI_REF = re.compile(r"^[A-Za-z0-9._:@/+-]{1,255}$")


class Reference:
    """A parsed reference; `text` is what the operator wrote, used in every error."""

    def __init__(self, transport, text, path=None, ref=None, host=None, repository=None, tag=None,
                 digest=None, index=None):
        self.transport = transport
        self.text = text
        self.path = path
        self.ref = ref
        self.host = host
        self.repository = repository
        self.tag = tag
        self.digest = digest
        self.index = index

    @property
    def is_file(self):
        return self.transport in FILE_TRANSPORTS

    def with_path(self, path):
        """The same reference to a copy of the file elsewhere (the action plugin's transfer)."""
        return Reference(self.transport, self.text, path, self.ref, self.host, self.repository, self.tag,
                         self.digest, self.index)

    def __repr__(self):
        return "Reference(%r)" % self.text


def parse_reference(text):
    if not isinstance(text, str) or not text:
        raise ImageError("src must be an image reference such as oci:PATH[:REF], oci-archive:PATH[:REF], "
                         "docker-archive:PATH[:NAME:TAG] or docker://HOST/REPO[:TAG|@DIGEST]")
    if "\x00" in text or "\n" in text:
        raise ImageError("src %r contains a NUL or newline" % text)
    transport, sep, rest = text.partition(":")
    if not sep or transport not in TRANSPORTS:
        raise ImageError("src %r: unknown transport %r (one of %s)%s" % (text, transport, ", ".join(
            t + ":" for t in TRANSPORTS), _image_name_hint(text, transport)))
    if transport == "docker":
        if not rest.startswith("//"):
            raise ImageError("src %r: write docker://HOST/REPO[:TAG|@DIGEST]%s" % (text, _image_name_hint(rest)))
        return _parse_docker(text, rest)
    if not rest:
        raise ImageError("src %r: a path is required after %s:" % (text, transport))
    if transport in ("oci", "oci-archive"):
        return _parse_oci(transport, text, rest)
    return _parse_docker_archive(text, rest)


# containers-transports(5) names this module does not read: a reference in one of them is no image name.
_OTHER_TRANSPORTS = ("containers-storage", "dir", "docker-daemon", "ostree", "sif", "tarball")


# what an image archive's file name ends with: app.tar, images/app.tar.gz read as file names, not as a
# Docker Hub repository "app.tar"
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".oci", ".oci.tar")


def _looks_like_a_file(text):
    return text.partition(":")[0].lower().endswith(_ARCHIVE_SUFFIXES)


def _image_name_hint(text, transport=None):
    """What to write when text reads as an image name given without docker:// (`debian:12`, `library/debian`,
    `ghcr.io/team/app:1`), else "". A name written without a registry host is a short name: it is given as
    docker://NAME too, where registries.conf's [aliases] or unqualified-search-registries resolve it (Docker
    Hub without a registries.conf), and as its Docker Hub full name, which needs neither."""
    if transport in _OTHER_TRANSPORTS:
        return " (containers-transports(5) has %s:, which this module does not read)" % transport
    if text.startswith(("/", "./", "../", "~")) or _looks_like_a_file(text):
        return ("; for a file write oci:%s (an OCI layout directory), oci-archive:%s or docker-archive:%s (docker save)"
                % (text, text, text))
    try:
        reference = _parse_docker("docker://" + text, "//" + text)
    except ImageError:
        return ""
    full = "docker://%s/%s%s%s" % (reference.host, reference.repository,
                                   ":" + reference.tag if reference.tag else "",
                                   "@" + reference.digest if reference.digest else "")
    short = written_short_name(reference)
    if short is None:
        return "; for a registry image write %s" % full
    return ("; for a registry image write %s (Docker Hub), or docker://%s to have the host's registries.conf resolve "
            "the short name %r (an [aliases] entry for it, or its unqualified-search-registries; Docker Hub when the "
            "host has no registries.conf)" % (full, text, short))


def _parse_oci(transport, text, rest):
    # As skopeo: the path ends at the first ':'; what follows is the ref (may itself hold ':').
    path, sep, ref = rest.partition(":")
    if not path:
        raise ImageError("src %r: a path is required after %s:" % (text, transport))
    if sep and not ref:
        raise ImageError("src %r: empty reference after the path" % text)
    if ref and not _OCI_REF.match(ref):
        raise ImageError("src %r: invalid reference %r" % (text, ref))
    return Reference(transport, text, path=path, ref=ref or None)


def _parse_docker_archive(text, rest):
    path, sep, ref = rest.partition(":")
    if not path:
        raise ImageError("src %r: a path is required after docker-archive:" % text)
    if not sep:
        return Reference("docker-archive", text, path=path)
    if ref.startswith("@"):
        if not ref[1:].isdigit():
            raise ImageError("src %r: @INDEX must be a number" % text)
        return Reference("docker-archive", text, path=path, index=int(ref[1:]))
    name, tag = _split_tag(ref)
    if not name or tag is None:
        raise ImageError("src %r: after the path comes NAME:TAG or @INDEX" % text)
    if not _TAG.match(tag):
        raise ImageError("src %r: invalid tag %r" % (text, tag))
    return Reference("docker-archive", text, path=path, ref="%s:%s" % (name, tag))


def _split_tag(name):
    """Split REPO:TAG where REPO may hold HOST:PORT (a ':' after the last '/' is the tag's)."""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, None


def _parse_docker(text, rest):
    if not rest.startswith("//"):
        raise ImageError("src %r: write docker://HOST/REPO[:TAG|@DIGEST]" % text)
    name = rest[2:]
    digest = None
    if "@" in name:
        name, digest = name.split("@", 1)
        parse_digest(digest, image=text, what="the reference's digest")
    name, tag = _split_tag(name)
    if tag is not None and not _TAG.match(tag):
        raise ImageError("src %r: invalid tag %r" % (text, tag))
    first, slash, remainder = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        host, repository = first, remainder
    else:
        host, repository = DOCKER_HUB, name
    if not _HOST.match(host):
        raise ImageError("src %r: invalid registry host %r" % (text, host))
    if host in (DOCKER_HUB, "index.docker.io"):
        host = DOCKER_HUB
        if "/" not in repository:
            repository = "library/" + repository
    components = repository.split("/")
    if not repository or len(repository) > 255 or not all(_REPO_COMPONENT.match(c) for c in components):
        raise ImageError("src %r: invalid repository name %r (lowercase components separated by '/')"
                         % (text, repository))
    if tag is None and digest is None:
        tag = "latest"
    return Reference("docker", text, host=host, repository=repository, tag=tag, digest=digest)


def registry_name(text, name, tag=None, digest=None):
    """The registry Reference for NAME (HOST[:PORT]/REPO, its first component always the host, as
    registries.conf writes locations and aliases), with tag or digest; errors name `text`, what the
    operator wrote."""
    host, slash, repository = name.partition("/")
    if not slash or not _HOST.match(host):
        raise ImageError("src %r: %r is not HOST[:PORT]/REPOSITORY" % (text, name))
    if host in (DOCKER_HUB, "index.docker.io"):
        host = DOCKER_HUB
        if "/" not in repository:
            repository = "library/" + repository
    if not repository or len(repository) > 255 or not all(_REPO_COMPONENT.match(c) for c in repository.split("/")):
        raise ImageError("src %r: invalid repository name %r (lowercase components separated by '/')"
                         % (text, repository))
    if tag is None and digest is None:
        tag = "latest"
    return Reference("docker", text, host=host, repository=repository, tag=tag, digest=digest)


def written_short_name(reference):
    """The name as written in a docker:// reference without a registry host (`debian`, `team/app`), else None."""
    if reference.transport != "docker" or not reference.text.startswith("docker://"):
        return None
    name = reference.text[len("docker://"):].split("@", 1)[0]
    name = _split_tag(name)[0]
    first, slash, _rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        return None
    return name


def api_host(host):
    """Where the registry's API answers (Docker Hub's name is not its API host)."""
    return DOCKER_HUB_API if host == DOCKER_HUB else host
