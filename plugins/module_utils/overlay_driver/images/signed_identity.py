# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""signedIdentity: which image names a signature may claim, as containers-policy.json(5) defines it.

A signature names the image it was made for (its docker-reference). A
signature of one image must not let another one in, so the policy says how
that name must relate to the name pulled:

- `matchRepoDigestOrExact` (the default): pulled by digest, the repositories
  are the same; pulled by tag, the names are the same, tag included; pulled
  by a tag and a digest (`HOST/REPO:TAG@DIGEST`), the names are the same, tag
  and digest included. A signature naming a bare repository (no tag, no
  digest) is never accepted. This is containers/image's
  matchRepoDigestOrExact exactly: a tagged reference is compared whole,
  digest included, and only a reference with a digest and no tag is compared
  by repository (its docker transport refuses a tag with a digest outright;
  podman and Docker drop the tag, which would let a signature of any tag of
  that digest pass: here the tag written is kept and must be the one signed);
- `matchExact`: the names are the same, tag or digest included;
- `matchRepository`: the repositories are the same, whatever the tag;
- `exactReference` with `dockerReference`: the signature names exactly that
  tagged or digested reference, whatever was pulled;
- `exactRepository` with `dockerRepository`: the signature names that
  repository;
- `remapIdentity` with `prefix` and `signedPrefix`: a name under `prefix` is
  compared (as matchRepoDigestOrExact) as though it were under
  `signedPrefix` (images signed under their upstream name, pulled from a
  mirror's).

Names are compared fully normalized (`docker.io/library/debian:12`).
"""

from .errors import ImageError
from .reference import HOST_PATTERN, REPO_COMPONENT, parse_reference

IDENTITY_TYPES = ("matchExact", "matchRepoDigestOrExact", "matchRepository", "exactReference", "exactRepository",
                  "remapIdentity")
_FIELDS = {"matchExact": (), "matchRepoDigestOrExact": (), "matchRepository": (),
           "exactReference": ("dockerReference",), "exactRepository": ("dockerRepository",),
           "remapIdentity": ("prefix", "signedPrefix")}


class PolicyFormatError(ImageError):
    """The policy (or something it names) is not what containers-policy.json(5) allows."""


class DockerName:
    """A normalized docker reference: name (HOST/REPO), tag, digest; text is how it is compared whole."""

    __slots__ = ("name", "tag", "digest")

    def __init__(self, name, tag=None, digest=None):
        self.name = name
        self.tag = tag
        self.digest = digest

    @property
    def text(self):
        return self.name + (":" + self.tag if self.tag else "") + ("@" + self.digest if self.digest else "")

    def __repr__(self):
        return "DockerName(%r)" % self.text


def parse_docker_name(text, what):
    """A DockerName of text (HOST/REPO[:TAG][@DIGEST], or a short name, normalized as Docker does), or None."""
    if not isinstance(text, str) or not text or "://" in text:
        return None
    try:
        ref = parse_reference("docker://" + text)
    except ImageError:
        return None
    del what
    written = text.split("@", 1)[0]
    has_tag = ":" in written.rsplit("/", 1)[-1]
    return DockerName("%s/%s" % (ref.host, ref.repository), ref.tag if has_tag else None, ref.digest)


def is_name_prefix(text):
    """HOST[:PORT] or HOST[:PORT]/PATH, with no tag or digest: a registry, a namespace or a repository."""
    if not isinstance(text, str) or not text:
        return False
    host, _slash, path = text.partition("/")
    if not HOST_PATTERN.match(host):
        return False
    return not _slash or all(REPO_COMPONENT.match(c) for c in path.split("/"))


def image_name(reference):
    """The DockerName a docker:// Reference pulls (its tag, its digest)."""
    return DockerName("%s/%s" % (reference.host, reference.repository), reference.tag, reference.digest)


def _under(name, prefix):
    return name == prefix or (name.startswith(prefix) and name[len(prefix)] in "/")


class SignedIdentity:
    """A parsed signedIdentity; matches(pulled, signed) says whether a signature naming `signed` is for `pulled`."""

    def __init__(self, kind, fields):
        self.kind = kind
        self.fields = fields

    def matches(self, pulled, signed):
        """pulled: the DockerName pulled; signed: the DockerName the signature claims. True or False."""
        kind = self.kind
        if kind == "remapIdentity":
            prefix, signed_prefix = self.fields["prefix"], self.fields["signedPrefix"]
            if _under(pulled.name, prefix):
                pulled = DockerName(signed_prefix + pulled.name[len(prefix):], pulled.tag, pulled.digest)
            kind = "matchRepoDigestOrExact"
        if kind == "matchExact":
            return (pulled.tag is not None or pulled.digest is not None) and pulled.text == signed.text
        if kind == "matchRepoDigestOrExact":
            if signed.tag is None and signed.digest is None:
                return False  # a bare repository names no image: never a match, whatever was pulled
            if pulled.tag is not None:  # a tag and a digest too: the whole name, as a tag alone
                return pulled.text == signed.text
            return pulled.digest is not None and pulled.name == signed.name
        if kind == "matchRepository":
            return pulled.name == signed.name
        if kind == "exactReference":
            return signed.text == self.fields["dockerReference"].text
        return signed.name == self.fields["dockerRepository"].name  # exactRepository

    def describe(self):
        if self.kind == "exactReference":
            return "exactReference %s" % self.fields["dockerReference"].text
        if self.kind == "exactRepository":
            return "exactRepository %s" % self.fields["dockerRepository"].name
        if self.kind == "remapIdentity":
            return "remapIdentity %s -> %s" % (self.fields["prefix"], self.fields["signedPrefix"])
        return self.kind


DEFAULT_IDENTITY = SignedIdentity("matchRepoDigestOrExact", {})


def claim_problem(identity, pulled, manifest_digest, signed_digest, signed_reference):
    """None when what a verified signature claims (the manifest digest and the docker-reference it signs) is the
    image pulled, under identity; else why not. The one check of that claim, for simple signing's and
    sigstore's payloads alike (pulled: the DockerName pulled, None when the image has no docker name)."""
    if signed_digest != manifest_digest:
        return "it signs manifest %s, not %s, the one pulled" % (signed_digest, manifest_digest)
    signed = parse_docker_name(signed_reference, "the signature")
    if signed is None:
        return "it names %r, which is not an image reference" % (signed_reference,)
    if pulled is not None and identity.matches(pulled, signed):
        return None
    hint = ""
    if pulled is not None and pulled.tag is not None and pulled.digest is not None and identity.kind in (
            "matchRepoDigestOrExact", "remapIdentity"):
        hint = (" (a reference with both a tag and a digest must be signed under that whole name, as "
                "containers/image compares it; pull by the digest alone to accept a signature of any tag of the "
                "repository, or by the tag alone)")
    return "it names %s, which signedIdentity %s does not accept for %s%s" % (
        signed.text, identity.describe(), pulled.text if pulled is not None else "this image", hint)


def parse_signed_identity(value, where, image=None):
    """The SignedIdentity of a requirement's signedIdentity value (None: the default); where names it."""
    if value is None:
        return DEFAULT_IDENTITY
    if not isinstance(value, dict):
        raise PolicyFormatError("%s: signedIdentity must be an object" % where, image=image)
    kind = value.get("type")
    if kind not in IDENTITY_TYPES:
        raise PolicyFormatError("%s: signedIdentity type %r is not one of %s" % (where, kind, ", ".join(IDENTITY_TYPES)),
                                image=image)
    allowed = ("type",) + _FIELDS[kind]
    for key in value:
        if key not in allowed:
            raise PolicyFormatError("%s: signedIdentity %s takes no key %r (it takes %s)"
                                    % (where, kind, key, ", ".join(allowed)), image=image)
    fields = {}
    for key in _FIELDS[kind]:
        if not isinstance(value.get(key), str) or not value[key]:
            raise PolicyFormatError("%s: signedIdentity %s needs %s, a string" % (where, kind, key), image=image)
    if kind == "exactReference":
        name = parse_docker_name(value["dockerReference"], where)
        if name is None or (name.tag is None and name.digest is None):
            raise PolicyFormatError("%s: dockerReference %r is not a reference with a tag or digest"
                                    % (where, value["dockerReference"]), image=image)
        fields["dockerReference"] = name
    elif kind == "exactRepository":
        name = parse_docker_name(value["dockerRepository"], where)
        if name is None or name.tag is not None or name.digest is not None:
            raise PolicyFormatError("%s: dockerRepository %r is not a repository name (no tag or digest)"
                                    % (where, value["dockerRepository"]), image=image)
        fields["dockerRepository"] = name
    elif kind == "remapIdentity":
        for key in ("prefix", "signedPrefix"):
            if not is_name_prefix(value[key]):
                raise PolicyFormatError("%s: remapIdentity's %s %r is not HOST[:PORT][/PATH] (wildcards are not "
                                        "supported here)" % (where, key, value[key]), image=image)
            fields[key] = value[key]
    return SignedIdentity(kind, fields)
