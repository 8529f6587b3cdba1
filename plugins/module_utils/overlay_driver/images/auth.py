# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry credentials: given inline, or looked up in a containers auth.json / Docker config.json.

Both files map a registry (optionally host/namespace) to {"auth": base64(user:password)}.
The most specific key for the repository wins, as in containers-auth.json(5).
Which files are read, in which order, and the credential helpers they name,
are credentials.py's.
Nothing here ever puts a secret into an error message.
"""

import base64
import binascii
import errno
import json
import os

from .errors import ImageError
from .reference import DOCKER_HUB

MAX_AUTH_FILE = 1 << 20
_HUB_KEYS = ("index.docker.io", "registry-1.docker.io", DOCKER_HUB)


class Credentials:
    __slots__ = ("username", "password")

    def __init__(self, username, password):
        self.username = username
        self.password = password

    def __repr__(self):
        return "Credentials(%r, ****)" % self.username

    def basic(self):
        raw = ("%s:%s" % (self.username, self.password)).encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _normalize_key(key):
    """(the registry or host/namespace a key names, whether it names it literally).

    As containers/image reads keys (normalizeAuthFileKey): one with an http:// or https:// prefix is a URL
    that `docker login` wrote for a registry, cut to its host whatever its path (`/v1/`, or a path of a
    registry served under one); any other key is a registry or a repository scope as written, so
    `host/v2` is the namespace v2, not the host. Docker Hub's host names are all Docker Hub. A literal key
    wins over a URL or another Hub name for the same scope, as containers/image tries exact keys first.
    """
    literal = True
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme):].partition("/")[0]
            literal = False
            break
    key = key.rstrip("/")
    host, slash, rest = key.partition("/")
    if host in _HUB_KEYS and host != DOCKER_HUB:
        host = DOCKER_HUB
        literal = False
    return host + (slash + rest if rest else ""), literal


def _decode(entry, key, image, path):
    """The Credentials of an `auths` entry, or None when it has none to give.

    An entry holding an identity token is an error: Docker writes it with an `auth` of "USER:" (no
    password) beside the token, and that `auth` is not a login to send. An entry without both a username
    and a password (the empty marker Docker writes beside a credsStore, a stale "USER:") gives nothing, so
    that the lookup reads on rather than sending an empty password.
    """
    if not isinstance(entry, dict):
        raise ImageError("auth_file entry for %s is not an object" % key, image=image, path=path)
    if entry.get("identitytoken"):
        raise ImageError("auth_file entry for %s holds an identity token (OAuth refresh), which is not supported"
                         % key, image=image, path=path)
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError, TypeError):
            raise ImageError("auth_file entry for %s: 'auth' is not base64 of user:password" % key, image=image,
                             path=path)
        if not sep:
            raise ImageError("auth_file entry for %s: 'auth' is not base64 of user:password" % key, image=image,
                             path=path)
    else:
        user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(password, str) and user and password:
        return Credentials(user, password)
    return None


def read_auth_document(path, image, missing_ok=False):
    """The JSON object of an auth file; None when missing_ok and there is no file at path."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        if missing_ok and e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise ImageError("cannot read auth_file: %s" % e.strerror, image=image, path=path)
    with os.fdopen(fd, "rb") as f:
        if not os.path.isfile("/proc/self/fd/%d" % fd):
            raise ImageError("auth_file is not a regular file", image=image, path=path)
        data = f.read(MAX_AUTH_FILE + 1)
    if len(data) > MAX_AUTH_FILE:
        raise ImageError("auth_file is larger than %d bytes" % MAX_AUTH_FILE, image=image, path=path)
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ImageError("auth_file is not valid JSON", image=image, path=path)
    if not isinstance(document, dict):
        raise ImageError("auth_file is not a JSON object", image=image, path=path)
    return document


def auths_entry(document, host, repository, image, path):
    """The most specific `auths` entry for host/repository: (key, Credentials or None), or None without one.
    An entry without credentials is what Docker writes beside a credsStore."""
    auths = document.get("auths")
    if auths is None:
        return None
    if not isinstance(auths, dict):
        raise ImageError("auth_file: 'auths' is not an object", image=image, path=path)
    target = "%s/%s" % (host, repository)
    best = None
    for key, entry in auths.items():
        normalized, literal = _normalize_key(key)
        if normalized == host or target == normalized or target.startswith(normalized + "/"):
            rank = (len(normalized), literal)
            if best is None or rank > best[0]:
                best = (rank, key, entry)
    if best is None:
        return None
    return best[1], _decode(best[2], best[1], image, path)


def helper_for(document, host, image, path):
    """(helper name, where it is named) the file gives for host: its credHelpers entry, else its credsStore."""
    helpers = document.get("credHelpers")
    if helpers is not None:
        if not isinstance(helpers, dict):
            raise ImageError("auth_file: 'credHelpers' is not an object", image=image, path=path)
        for key, name in helpers.items():
            if _normalize_key(key)[0] == host:
                return name, "credHelpers"
    store = document.get("credsStore")
    if store:
        return store, "credsStore"
    return None


def inline_credentials(registry_auth, image):
    """username/password given to the module, or None."""
    registry_auth = registry_auth or {}
    username, password = registry_auth.get("username"), registry_auth.get("password")
    if username or password:
        if not username or password is None:
            raise ImageError("registry_auth needs both username and password", image=image)
        return Credentials(username, password)
    return None
