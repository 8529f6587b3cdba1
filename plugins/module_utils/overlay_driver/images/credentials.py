# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which registry credentials a pull uses: the ones the host's other tools would, in skopeo's order.

1. `registry_auth` username/password (or the module's username/password), for the registry the image is
   named by (its `location` too), never for a registries.conf mirror (without_inline).
2. `registry_auth.auth_file` (or `auth_file`), or `$REGISTRY_AUTH_FILE`: that
   file alone, as `skopeo --authfile` reads it.
3. Otherwise the files `podman login` and `docker login` write, the first that
   has credentials for the registry winning:
   `$XDG_RUNTIME_DIR/containers/auth.json` (`/run/containers/UID/auth.json`
   without XDG_RUNTIME_DIR), `$XDG_CONFIG_HOME/containers/auth.json`
   (`~/.config/...`), `$DOCKER_CONFIG/config.json` (`~/.docker/config.json`).
   A missing file is skipped; one that cannot be read or parsed is an error.
In each file, as containers/image and Docker read it: the `credHelpers` entry
for the registry first, then the most specific `auths` entry, then
`credsStore` (Docker's single helper, whose `auths` entries are empty markers).
A helper (credential_helpers.py) with nothing for the registry, or an entry
without both a username and a password, passes on to the next file.

This runs on the managed host, as the user the module runs as: `~` is that
user's home, as for podman and docker there.
"""

import os
import pwd

from . import credential_helpers
from .auth import auths_entry, helper_for, inline_credentials, read_auth_document
from .reference import DOCKER_HUB

HUB_SERVER = "https://index.docker.io/v1/"  # the server Docker's helpers keep Docker Hub's credentials under


def _home(environ):
    home = environ.get("HOME")
    if home:
        return home
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return "/"


def default_auth_files(environ):
    """The auth files looked in when none is given, in order: podman's first, Docker's last."""
    home = _home(environ)
    runtime = environ.get("XDG_RUNTIME_DIR")
    files = [os.path.join(runtime, "containers", "auth.json") if runtime
             else "/run/containers/%d/auth.json" % os.geteuid()]
    files.append(os.path.join(environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "containers",
                              "auth.json"))
    files.append(os.path.join(environ.get("DOCKER_CONFIG") or os.path.join(home, ".docker"), "config.json"))
    return files


def helper_servers(host, origin):
    """The servers a helper is asked for, in order, until one has credentials: the registry's host, as
    containers/image asks (and as `podman login` stores through a credHelpers helper). For Docker Hub a
    credHelpers helper is then asked for Docker's old URL, under which `docker login` stores through the
    same helper; a credsStore is Docker's alone, so it is asked for that URL only."""
    if host != DOCKER_HUB:
        return (host,)
    return (DOCKER_HUB, HUB_SERVER) if origin == "credHelpers" else (HUB_SERVER,)


def _from_helper(name, origin, host, path, image, environ, timeout):
    """The Credentials the helper `name` has for host, or None when it has none."""
    for server in helper_servers(host, origin):
        found = credential_helpers.get(name, server, image, timeout, environ, "%s in %s" % (origin, path))
        if found is not None:
            return found
    return None


def from_file(path, host, repository, image, environ, timeout, missing_ok=False):
    """Credentials for host/repository from one auth file and the helpers it names, or None."""
    document = read_auth_document(path, image, missing_ok=missing_ok)
    if document is None:
        return None
    helper = helper_for(document, host, image, path)
    if helper is not None and helper[1] == "credHelpers":
        return _from_helper(helper[0], helper[1], host, path, image, environ, timeout)
    found = auths_entry(document, host, repository, image, path)
    if found is not None and found[1] is not None:
        return found[1]
    if helper is not None:
        return _from_helper(helper[0], helper[1], host, path, image, environ, timeout)
    return None


def without_inline(registry_auth):
    """registry_auth without its username and password (its auth_file kept): what a registries.conf mirror is
    pulled with, since the credentials given for the registry are not the mirror's host's to see."""
    return {k: v for k, v in (registry_auth or {}).items() if k not in ("username", "password")}


def credentials_for(registry_auth, host, repository, image, environ=None,
                    timeout=credential_helpers.HELPER_TIMEOUT):
    """The Credentials a pull of host/repository uses, or None for an anonymous pull."""
    environ = os.environ if environ is None else environ
    inline = inline_credentials(registry_auth, image)
    if inline is not None:
        return inline
    given = (registry_auth or {}).get("auth_file") or environ.get("REGISTRY_AUTH_FILE")
    if given:
        return from_file(given, host, repository, image, environ, timeout)
    for path in default_auth_files(environ):
        found = from_file(path, host, repository, image, environ, timeout, missing_ok=True)
        if found is not None:
            return found
    return None
