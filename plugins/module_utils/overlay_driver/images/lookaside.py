# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where simple signing signatures are: registries.d's lookaside, as skopeo and podman read it.

`/etc/containers/registries.d/*.yaml` (in name order; a scope defined twice,
in one file or across files, is an error, as for containers/image):

    default-docker:
      lookaside: https://sigs.example.com/sigs
    docker:
      registry.example.com/team:
        lookaside: file:///var/lib/containers/sigstore

The entry of the most specific scope that names a lookaside decides (the
policy's scope order, policy.docker_scopes), else default-docker's, else
containers/image's built-in one: `file:///var/lib/containers/sigstore` for
root (where `skopeo copy --sign-by` writes without a registries.d), and
`~/.local/share/containers/sigstore` for another user. The
older key names `sigstore` and `sigstore-staging` mean `lookaside` and
`lookaside-staging`; the staging keys (where signatures are written) and
`use-sigstore-attachments` are understood and not used here.

The signatures of manifest DIGEST of HOST/REPO are
`<lookaside>/REPO@sha256=<hex>/signature-1`, `-2`, ... up to the first that
is missing (a 404, or no such file). They are untrusted until verified: a
missing one is not an error, only fewer signatures; each is bounded in size
and their number too. An http(s) lookaside is read by lookaside_http.py, as
the task reaches its registry (proxy, ca_path, certs.d), for its own host.
"""

import errno
import os
import stat
import time
import urllib.parse

from .errors import ImageError
from .policy import docker_scopes
from .trusted_files import list_dir, read_trusted
from .yaml_subset import Mapping, YamlError, parse

DEFAULT_REGISTRIES_D = "/etc/containers/registries.d"
ROOT_LOOKASIDE = "file:///var/lib/containers/sigstore"
MAX_CONFIG = 1 << 20
MAX_SIGNATURE = 4 << 20  # containers/image's limit too
DEADLINE = 300  # seconds for all the signatures of one image, also without an image_deadline
MAX_SIGNATURES = 64
_NAMESPACE_KEYS = ("lookaside", "lookaside-staging", "sigstore", "sigstore-staging", "use-sigstore-attachments")
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class RegistriesD:
    def __init__(self):
        self.default = None  # (lookaside URL or None, FILE:LINE)
        self.docker = {}  # scope -> (lookaside URL or None, FILE:LINE)
        self.files = []


def _namespace(value, where, image):
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ImageError("registries.d %s: a namespace must be a mapping" % where, image=image)
    for key in value:
        if key not in _NAMESPACE_KEYS:
            raise ImageError("registries.d %s: unknown key %r (understood: %s)"
                             % (where, key, ", ".join(_NAMESPACE_KEYS)), image=image)
    if "lookaside" in value and "sigstore" in value:
        raise ImageError("registries.d %s: lookaside and sigstore (its old name) both given" % where, image=image)
    url = value.get("lookaside", value.get("sigstore"))
    if url is not None:
        parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("file", "http", "https") or \
                (parts.scheme == "file" and not parts.path.startswith("/")):
            raise ImageError("registries.d %s: lookaside %r is not a file://, http:// or https:// URL" % (where, url),
                             image=image)
    if not isinstance(value.get("use-sigstore-attachments", False), bool):
        raise ImageError("registries.d %s: use-sigstore-attachments must be true or false" % where, image=image)
    return url


def load_registries_d(directory=None, image=None):
    """The registries.d files merged; a directory that is missing holds none."""
    directory = directory or DEFAULT_REGISTRIES_D
    config = RegistriesD()
    for name in list_dir(directory, "registries.d", image):
        if not name.endswith(".yaml"):
            continue
        path = os.path.join(directory, name)
        data = read_trusted(path, "the registries.d file", MAX_CONFIG, image)
        try:
            document = parse(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ImageError("registries.d file is not UTF-8", image=image, path=path)
        except YamlError as e:
            raise ImageError("registries.d file: %s (only the part of YAML registries.d needs is read)" % e,
                             image=image, path=path)
        for key in document:
            if key not in ("default-docker", "docker"):
                raise ImageError("registries.d %s:%d: unknown key %r (understood: default-docker, docker)"
                                 % (path, document.lines[key], key), image=image)
        if "default-docker" in document:
            where = "%s:%d" % (path, document.lines["default-docker"])
            if config.default is not None:
                raise ImageError("registries.d %s: default-docker is also given at %s" % (where, config.default[1]),
                                 image=image)
            config.default = (_namespace(document["default-docker"], where, image), where)
        scopes = document.get("docker") or Mapping()
        if not isinstance(scopes, Mapping):
            raise ImageError("registries.d %s:%d: docker must be a mapping of scopes"
                             % (path, document.lines["docker"]), image=image)
        for scope, value in scopes.items():
            where = "%s:%d" % (path, scopes.lines[scope])
            if scope in config.docker:
                raise ImageError("registries.d %s: the scope %s is also given at %s"
                                 % (where, scope, config.docker[scope][1]), image=image)
            config.docker[scope] = (_namespace(value, where, image), where)
        config.files.append(path)
    return config


def builtin_lookaside():
    """containers/image's lookaside when registries.d names none (its builtinDefaultLookasideStorageDir)."""
    if os.geteuid() == 0:
        return ROOT_LOOKASIDE
    return "file://" + os.path.join(os.path.expanduser("~"), ".local/share/containers/sigstore")


def lookaside_for(config, reference):
    """(URL, where it is set) of the lookaside that holds reference's signatures."""
    for scope in docker_scopes(reference):
        entry = config.docker.get(scope)
        if entry is not None and entry[0]:
            return entry
    if config.default is not None and config.default[0]:
        return config.default
    return builtin_lookaside(), "the built-in default, as registries.d names none for it"


def signature_url(base, reference, digest, index):
    algorithm, _colon, hexdigest = digest.partition(":")
    return "%s/%s@%s=%s/signature-%d" % (base.rstrip("/"), reference.repository, algorithm, hexdigest, index)


def _read_file(url, image):
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise ImageError("cannot read the signature %s: %s" % (url, e.strerror), image=image)
    # the type is checked on the fd before fdopen, which raises EISDIR for a directory (and leaks the fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageError("the signature %s is not a regular file" % url, image=image)
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_SIGNATURE + 1)


def fetch_signatures(base, reference, digest, image=None, deadline=None, transport=None):
    """The signatures (bytes each) of digest in the lookaside at base, in order.

    deadline (time.monotonic()) bounds them all: the image's image_deadline when the caller has one, and
    at most DEADLINE seconds from now. transport (lookaside_http.LookasideTransport) is how an http(s)
    lookaside is reached: the task's proxy, ca_path, certs.d and validate_certs; None: directly, the
    system's CAs and the default certs.d directories.
    """
    deadline = min(deadline or float("inf"), time.monotonic() + DEADLINE)
    scheme = urllib.parse.urlsplit(base).scheme
    out = []
    for index in range(1, MAX_SIGNATURES + 1):
        url = signature_url(base, reference, digest, index)
        if scheme == "file":
            data = _read_file(url, image)
        else:
            # http.client and ssl only for an http(s) lookaside
            from .lookaside_http import read_signature  # pylint: disable=import-outside-toplevel
            data = read_signature(transport, url, image, deadline, DEADLINE, MAX_SIGNATURE)
        if data is None:
            break
        if len(data) > MAX_SIGNATURE:
            raise ImageError("the signature %s is larger than %d bytes" % (url, MAX_SIGNATURE), image=image)
        out.append(data)
    return out
