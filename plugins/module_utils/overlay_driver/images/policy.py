# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The signature policy (containers-policy.json(5)): which images may be staged, as podman and skopeo decide.

A policy is `{"default": [requirements], "transports": {TRANSPORT: {SCOPE:
[requirements]}}}`. For an image, the most specific scope of its transport
decides; without one the transport's "" scope, then `default`. Every
requirement of that list must be met (AND). A policy whose lists do not
cover the image is refused, never taken as "anything goes".

Scopes of the `docker` transport, from the most specific: `HOST[:PORT]/REPO:TAG`
or `HOST[:PORT]/REPO@DIGEST` (the reference pulled), `HOST[:PORT]/REPO`, its
parent namespaces up to `HOST[:PORT]`, then `*.DOMAIN` wildcards of the host
name without its port (`*.example.com`, then `*.com`). Names are normalized
(`docker.io/library/debian`). The file transports (`oci`, `oci-archive`,
`docker-archive`) take "" and absolute paths (a path covers what is below it);
the policy's other transports are checked but never apply here.

Requirements: `insecureAcceptAnything`, `reject`, `signedBy` (GPG simple
signing, simple_signing.py) and any type registered in VERIFIERS (sigstore).
An unknown type or key is an error, so a policy is never half understood.

The policy is checked once the manifest's digest is known and before any
layer is fetched or written. Signatures are asked for (lazily, through the
`signatures` object) only when a requirement needs them: `simple_signatures()`
(the simple-signing blobs, bytes) and `sigstore_signatures()` (the
sigstore_attachments.Attachment of each layer of the `.sig` manifest). Image archives and layouts carry no
signatures: a requirement that needs them refuses such an image.
"""

import json
import os

from .errors import ImageError
from .reference import FILE_TRANSPORTS
from .signed_identity import PolicyFormatError, image_name, is_name_prefix, parse_docker_name
from .trusted_files import read_trusted

DEFAULT_POLICY = "/etc/containers/policy.json"
MAX_POLICY = 1 << 20
# what containers/image knows; a policy may name them all, only some apply to what is staged here
TRANSPORT_NAMES = ("docker", "docker-archive", "oci", "oci-archive", "dir", "containers-storage", "docker-daemon",
                   "atomic", "ostree", "sif", "tarball")

# Requirement types beyond the built-in ones: type -> parse(fields, where, image), returning a requirement (an
# object with `kind`, `needs_signatures` and `check(target)`, as the classes below). sigstore.py registers
# "sigstoreSigned" here.
VERIFIERS = {}


class PolicyDenied(Exception):
    """A requirement is not met; reason says why (the caller names the policy, the scope and the image)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class Target:
    """What a requirement judges: the Reference, its DockerName (docker:// only), the manifest digest the
    signatures must name (None without a registry manifest), and the lazy signatures."""

    __slots__ = ("reference", "name", "manifest_digest", "signatures")

    def __init__(self, reference, manifest_digest, signatures):
        self.reference = reference
        self.name = image_name(reference) if reference.transport == "docker" else None
        self.manifest_digest = manifest_digest
        self.signatures = signatures


class NoSignatures:
    """The signatures of an image archive or layout: there are none (skopeo keeps none there either)."""

    def __init__(self, reference):
        self.reference = reference

    def _none(self):
        raise PolicyDenied("a %s: image carries no signatures, and the policy requires a signature for it"
                           % self.reference.transport)

    def simple_signatures(self):
        self._none()

    def sigstore_signatures(self):
        self._none()


class InsecureAcceptAnything:
    kind = "insecureAcceptAnything"
    needs_signatures = False

    def check(self, target):
        del target


class Reject:
    kind = "reject"
    needs_signatures = False

    def check(self, target):
        del target
        raise PolicyDenied("the policy rejects every image of this scope (reject)")


def _plain(kind):
    def parse(fields, where, image):
        for key in fields:
            if key != "type":
                raise PolicyFormatError("%s: %s takes no key %r" % (where, kind.kind, key), image=image)
        return kind()
    return parse


def _signed_by(fields, where, image):
    # GPG verification brings a subprocess and temp files: loaded only when a policy names it
    from .simple_signing import parse_signed_by  # pylint: disable=import-outside-toplevel
    return parse_signed_by(fields, where, image)


BUILT_IN = {"insecureAcceptAnything": _plain(InsecureAcceptAnything), "reject": _plain(Reject),
            "signedBy": _signed_by}


def _import_verifiers():
    """Let the verifiers this version has register themselves in VERIFIERS (an optional import: a version
    without them refuses their requirement type)."""
    try:
        from . import sigstore  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        pass


def _parser(kind, where, image):
    if kind in BUILT_IN:
        return BUILT_IN[kind]
    if kind not in VERIFIERS:
        _import_verifiers()
    if kind in VERIFIERS:
        return VERIFIERS[kind]
    if kind == "sigstoreSigned":
        raise PolicyFormatError("%s: the requirement type sigstoreSigned is not supported by this version" % where,
                                image=image)
    raise PolicyFormatError("%s: unknown requirement type %r (known: %s)"
                            % (where, kind, ", ".join(sorted(set(BUILT_IN) | set(VERIFIERS)))), image=image)


def _requirements(value, where, image):
    if not isinstance(value, list) or not value:
        raise PolicyFormatError("%s must be a non-empty list of requirements" % where, image=image)
    out = []
    for i, fields in enumerate(value):
        here = "%s[%d]" % (where, i)
        if not isinstance(fields, dict) or not isinstance(fields.get("type"), str):
            raise PolicyFormatError("%s must be an object with a type" % here, image=image)
        out.append(_parser(fields["type"], here, image)(fields, here, image))
    return out


def _check_docker_scope(scope, where, image):
    if scope == "":
        return
    if scope.startswith("*."):
        if is_name_prefix(scope[2:]) and "/" not in scope and ":" not in scope:
            return
        raise PolicyFormatError("%s: a wildcard scope is `*.DOMAIN` only" % where, image=image)
    if is_name_prefix(scope):
        name = scope
    else:
        parsed = parse_docker_name(scope, where)
        if parsed is None or (parsed.tag is None and parsed.digest is None):
            raise PolicyFormatError("%s: %r is not a scope (HOST[:PORT][/REPO][:TAG|@DIGEST] or *.DOMAIN)"
                                    % (where, scope), image=image)
        name = parsed.name
        if parsed.text != scope:
            raise PolicyFormatError("%s: write the scope %r in full, as %r" % (where, scope, parsed.text), image=image)
    first = name.split("/", 1)[0]
    if not ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        # Docker's rule for a registry host; "debian" or "library/debian" would never match a normalized name
        raise PolicyFormatError("%s: %r does not start with a registry host: write the name in full "
                                "(docker.io/library/debian, not debian)" % (where, scope), image=image)
    if name.startswith("docker.io/") and name.count("/") == 1:
        raise PolicyFormatError("%s: write Docker Hub's official images as docker.io/library/NAME" % where,
                                image=image)


def _check_path_scope(scope, where, image):
    if scope != "" and not (os.path.isabs(scope) and ":" not in scope):
        raise PolicyFormatError("%s: a scope of this transport is \"\" or an absolute path" % where, image=image)


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("the key %r appears twice in one object" % key)
        out[key] = value
    return out


class Policy:
    """A loaded policy; source names it in messages (its path, or "the given policy")."""

    def __init__(self, default, transports, source):
        self.default = default  # list of requirements, or None
        self.transports = transports  # transport -> {scope: list of requirements}
        self.source = source

    def requirements_for(self, reference, written=None):
        """(scope, requirements) deciding for the Reference; scope as the message names it. Refused when none.

        written is the file-transport Reference as the task wrote it when the image was sent from the
        controller (the module reads a copy in a temporary directory): its transport and path decide.
        """
        judged = written if written is not None else reference
        scopes = self.transports.get(judged.transport, {})
        for scope in candidate_scopes(judged, resolve=written is None):
            if scope in scopes:
                return 'transports.%s["%s"]' % (judged.transport, scope), scopes[scope]
        if self.default is not None:
            return "default", self.default
        raise ImageError("the signature policy %s has no scope for this image and no default: it is refused"
                         % self.source, image=reference.text)

    def needs_signatures(self, reference, written=None):
        return any(r.needs_signatures for r in self.requirements_for(reference, written)[1])

    def enforce(self, reference, manifest_digest, signatures, written=None):
        """None when the image may be staged; else an ImageError naming the policy, the scope and the reason."""
        scope, requirements = self.requirements_for(reference, written)
        target = Target(reference, manifest_digest, signatures)
        for requirement in requirements:
            try:
                requirement.check(target)
            except PolicyDenied as e:
                raise ImageError("the signature policy %s refuses the image (scope %s, %s): %s"
                                 % (self.source, scope, requirement.kind, e.reason), image=reference.text,
                                 blob=manifest_digest)


def candidate_scopes(reference, resolve=True):
    """The scopes that may decide for reference, most specific first, the transport's "" last.

    A file path is resolved as containers/image resolves it (every symlink of the path on this host, as
    ResolvePathToFullyExplicit does), so a link into a rejected directory is judged by that directory;
    resolve=False keeps it as written (a path of the controller, which this host cannot resolve).
    """
    if reference.transport == "docker":
        return docker_scopes(reference) + [""]
    if reference.transport in FILE_TRANSPORTS:
        from .reference import parse_reference  # pylint: disable=import-outside-toplevel
        path = parse_reference(reference.text).path
        path = os.path.realpath(path) if resolve else os.path.abspath(path)
        out = []
        while True:
            out.append(path)
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
        return out + [""]
    return [""]


def docker_scopes(reference):
    """containers/image's order for a docker:// reference: the reference, the repository, its namespaces,
    the registry, then *.DOMAIN wildcards of the host name."""
    name = image_name(reference)
    # NAME:TAG@DIGEST pulls the digest's manifest, whatever the tag: its scope is NAME@DIGEST, as podman judges
    # it, so a scope written for that digest decides and the tag cannot lead past it to the repository's
    text = "%s@%s" % (name.name, name.digest) if name.digest else name.text
    out = [text] if text != name.name else []
    path = name.name
    while True:
        out.append(path)
        if "/" not in path:
            break
        path = path.rsplit("/", 1)[0]
    host = path
    if host.startswith("["):
        return out
    host = host.split(":", 1)[0]
    while "." in host:
        host = host.split(".", 1)[1]
        out.append("*." + host)
    return out


def load_policy(path_or_data, image=None):
    """A Policy from a path on this host ("host": /etc/containers/policy.json), from the file's bytes, or
    from its parsed object. Everything is checked now, before anything is pulled."""
    if isinstance(path_or_data, dict):
        document, source = path_or_data, "(given inline)"
    else:
        if isinstance(path_or_data, (bytes, bytearray)):
            data, source = bytes(path_or_data), "(given inline)"
        else:
            source = DEFAULT_POLICY if path_or_data == "host" else path_or_data
            data = read_trusted(source, "the signature policy", MAX_POLICY, image)
        try:
            document = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise PolicyFormatError("the signature policy %s is not valid JSON: %s" % (source, e), image=image,
                                    path=None if source.startswith("(") else source)
    where = "the signature policy %s" % source
    if not isinstance(document, dict):
        raise PolicyFormatError("%s is not a JSON object" % where, image=image)
    for key in document:
        if key not in ("default", "transports"):
            raise PolicyFormatError("%s: unknown key %r (known: default, transports)" % (where, key), image=image)
    default = _requirements(document["default"], where + ": default", image) if "default" in document else None
    transports = {}
    raw = document.get("transports", {})
    if not isinstance(raw, dict):
        raise PolicyFormatError("%s: transports must be an object" % where, image=image)
    for transport, scopes in raw.items():
        if transport not in TRANSPORT_NAMES:
            raise PolicyFormatError("%s: unknown transport %r (known: %s)" % (where, transport,
                                                                              ", ".join(TRANSPORT_NAMES)), image=image)
        if not isinstance(scopes, dict):
            raise PolicyFormatError("%s: transports.%s must be an object of scopes" % (where, transport), image=image)
        transports[transport] = {}
        for scope, value in scopes.items():
            here = '%s: transports.%s["%s"]' % (where, transport, scope)
            if transport == "docker":
                _check_docker_scope(scope, here, image)
            elif transport in FILE_TRANSPORTS:
                _check_path_scope(scope, here, image)
            transports[transport][scope] = _requirements(value, here, image)
    return Policy(default, transports, source)
