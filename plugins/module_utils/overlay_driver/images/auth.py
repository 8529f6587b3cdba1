# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Registry credentials: given inline, or looked up in a containers auth.json / Docker config.json.

Both files map a registry (optionally host/namespace) to {"auth": base64(user:password)}.
The most specific key for the repository wins, as in containers-auth.json(5).
Credential helpers (credsStore, credHelpers) run programs and are not consulted.
Nothing here ever puts a secret into an error message.
"""

import base64
import binascii
import json
import os

from .errors import ImageError
from .reference import DOCKER_HUB

MAX_AUTH_FILE = 1 << 20
_HUB_KEYS = ("index.docker.io/v1", "index.docker.io", "registry-1.docker.io", "docker.io")


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
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme):]
    key = key.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if key.endswith(suffix) and key.count("/") == 1:
            key = key[:-len(suffix)]
    host, slash, rest = key.partition("/")
    if host in _HUB_KEYS or key in _HUB_KEYS:
        host = DOCKER_HUB
    return host + (slash + rest if rest else "")


def _decode(entry, key, image, path):
    if not isinstance(entry, dict):
        raise ImageError("auth_file entry for %s is not an object" % key, image=image, path=path)
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError, TypeError):
            raise ImageError("auth_file entry for %s: 'auth' is not base64 of user:password" % key, image=image,
                             path=path)
        if not sep or not user:
            raise ImageError("auth_file entry for %s: 'auth' is not base64 of user:password" % key, image=image,
                             path=path)
        return Credentials(user, password)
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"])
    if entry.get("identitytoken"):
        raise ImageError("auth_file entry for %s holds an identity token (OAuth refresh), which is not supported"
                         % key, image=image, path=path)
    return None


def from_auth_file(path, host, repository, image):
    """The credentials for host/repository, or None when the file has no entry for it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
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
    auths = document.get("auths") if isinstance(document, dict) else None
    if auths is None:
        return None
    if not isinstance(auths, dict):
        raise ImageError("auth_file: 'auths' is not an object", image=image, path=path)
    target = "%s/%s" % (host, repository)
    best = None
    for key, entry in auths.items():
        normalized = _normalize_key(key)
        if normalized == host or target == normalized or target.startswith(normalized + "/"):
            if best is None or len(normalized) > len(best[0]):
                best = (normalized, key, entry)
    if best is None:
        return None
    return _decode(best[2], best[1], image, path)


def credentials_for(registry_auth, host, repository, image):
    """From the module's registry_auth: username/password first, else auth_file, else none."""
    registry_auth = registry_auth or {}
    username, password = registry_auth.get("username"), registry_auth.get("password")
    if username or password:
        if not username or password is None:
            raise ImageError("registry_auth needs both username and password", image=image)
        return Credentials(username, password)
    if registry_auth.get("auth_file"):
        return from_auth_file(registry_auth["auth_file"], host, repository, image)
    return None
