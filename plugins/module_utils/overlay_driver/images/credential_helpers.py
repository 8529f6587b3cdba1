# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credential helpers: the `docker-credential-NAME` programs `credHelpers` and `credsStore` name.

The protocol is Docker's (docker-credential-helpers): `docker-credential-NAME
get` reads the server on stdin and writes {"ServerURL", "Username", "Secret"}
as JSON; a server it has nothing for is exit status 1 with "credentials not
found in native keychain". The helper runs in a session of its own and is
killed with everything it started when it does not answer in time, since a
helper waiting for a keyring unlock would otherwise hold the task forever.
A helper that is missing, fails or answers nonsense is an error naming the
program; its Secret never appears in a message.
"""

import json
import os
import re
import shutil
import signal
import subprocess

from .auth import Credentials
from .errors import ImageError

HELPER_TIMEOUT = 30
MAX_ANSWER = 1 << 16
PREFIX = "docker-credential-"
NOT_FOUND = "credentials not found in native keychain"
IDENTITY_TOKEN_USER = "<token>"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _short(data):
    text = data.decode("utf-8", "replace").strip().replace("\n", " ")
    return text[:200] + ("..." if len(text) > 200 else "")


def program_path(name, image, environ=None, where=None):
    """The helper program of `name` on the PATH, or an error naming it."""
    environ = os.environ if environ is None else environ
    origin = " (named by %s)" % where if where else ""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ImageError("the credential helper name %r%s is not a plain program suffix" % (name, origin), image=image)
    program = PREFIX + name
    path = shutil.which(program, path=environ.get("PATH", os.defpath))
    if path is None:
        raise ImageError("the credential helper %s%s is not installed: no such program on PATH" % (program, origin),
                         image=image)
    return path


def _run(path, server, timeout, environ):
    proc = subprocess.Popen([path, "get"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environ, close_fds=True, start_new_session=True)
    try:
        out, err = proc.communicate(server.encode("utf-8"), timeout=timeout)
    except BaseException:
        # a timeout, or a signal while waiting: the helper and whatever it started go with it
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        raise
    return proc.returncode, out, err


def get(name, server, image, timeout=HELPER_TIMEOUT, environ=None, where=None):
    """(username, secret) the helper `name` gives for `server`, or None when it has none for it."""
    environ = dict(os.environ if environ is None else environ)
    path = program_path(name, image, environ, where)
    program = PREFIX + name
    try:
        status, out, err = _run(path, server, timeout, environ)
    except subprocess.TimeoutExpired:
        raise ImageError("the credential helper %s did not answer within %ss (waiting for a keyring to be unlocked?)"
                         % (program, timeout), image=image)
    except OSError as e:
        raise ImageError("cannot run the credential helper %s: %s" % (program, e.strerror), image=image)
    if status != 0:
        if NOT_FOUND in out.decode("utf-8", "replace").lower() or NOT_FOUND in err.decode("utf-8", "replace").lower():
            return None
        raise ImageError("the credential helper %s failed for %s (exit status %d): %s"
                         % (program, server, status, _short(err or out) or "no message"), image=image)
    if len(out) > MAX_ANSWER:
        raise ImageError("the credential helper %s answered more than %d bytes" % (program, MAX_ANSWER), image=image)
    try:
        answer = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ImageError("the credential helper %s did not answer JSON" % program, image=image)
    username = answer.get("Username") if isinstance(answer, dict) else None
    secret = answer.get("Secret") if isinstance(answer, dict) else None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise ImageError("the credential helper %s answered without a Username and Secret" % program, image=image)
    if username == IDENTITY_TOKEN_USER:
        raise ImageError("the credential helper %s gives an identity token (OAuth refresh) for %s, which is not "
                         "supported" % (program, server), image=image)
    if not username or not secret:
        return None
    return Credentials(username, secret)
