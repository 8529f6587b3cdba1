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
import select
import shutil
import signal
import subprocess
import time

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


class AnswerTooLong(Exception):
    """The helper wrote more than MAX_ANSWER bytes on stdout (it was killed; the rest was not read)."""


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _drain(fd, chunks, kept, bound):
    """Read what `fd` has now (it is non-blocking) into `chunks`, keeping at most `bound` + 1 bytes in all;
    (bytes kept, at end of file)."""
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return kept, False
        except InterruptedError:
            continue
        if not data:
            return kept, True
        if kept <= bound:
            data = data[:bound + 1 - kept]
            chunks.append(data)
            kept += len(data)


def _collect(proc, timeout):
    """(stdout, stderr) of `proc`, read until it has exited and its pipes hold nothing more, or raise
    subprocess.TimeoutExpired once `timeout` seconds have passed without its exit.

    The end is the helper's exit, not the end of its pipes: a helper may start a daemon in a session of
    its own (a keyring agent) that keeps its stdout open long after the answer; what the helper wrote
    before exiting is in the pipe, so it is read without waiting for that daemon. Reads are bounded:
    stdout past MAX_ANSWER + 1 bytes ends the wait (AnswerTooLong), stderr past that is read and dropped.
    Nothing here blocks past the deadline.
    """
    deadline = time.monotonic() + timeout
    streams = {proc.stdout.fileno(): [], proc.stderr.fileno(): []}
    kept = dict.fromkeys(streams, 0)
    open_fds = set(streams)
    for fd in streams:
        os.set_blocking(fd, False)
    try:
        exit_fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        exit_fd = None  # no pidfd: the exit is noticed at the next short tick
    poller = select.poll()
    for fd in open_fds:
        poller.register(fd, select.POLLIN)
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    try:
        while True:
            exited = proc.poll() is not None
            for fd in list(open_fds):
                kept[fd], eof = _drain(fd, streams[fd], kept[fd], MAX_ANSWER)
                if eof:
                    open_fds.discard(fd)
                    poller.unregister(fd)
            if kept[proc.stdout.fileno()] > MAX_ANSWER:
                raise AnswerTooLong()
            if exited:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            if exit_fd is None:
                remaining = min(remaining, 0.05)
            poller.poll(remaining * 1000)
    finally:
        if exit_fd is not None:
            os.close(exit_fd)
    return b"".join(streams[proc.stdout.fileno()]), b"".join(streams[proc.stderr.fileno()])


def _run(path, server, timeout, environ):
    """(exit status, stdout, stderr) of `path get` given `server` on stdin; raises subprocess.TimeoutExpired
    when it has not exited within `timeout` seconds, AnswerTooLong when its stdout passes MAX_ANSWER."""
    proc = subprocess.Popen([path, "get"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environ, close_fds=True, start_new_session=True)
    try:
        try:
            proc.stdin.write(server.encode("utf-8"))  # a host name: far less than a pipe holds, never blocks
            proc.stdin.close()
        except BrokenPipeError:
            pass  # a helper that does not read stdin still answers
        out, err = _collect(proc, timeout)
    except BaseException:
        # a timeout, an answer too long, or a signal while waiting: the helper and whatever it started go
        _kill(proc)
        try:
            proc.wait(timeout=1)  # SIGKILL of the helper itself: its exit is at once
        except subprocess.TimeoutExpired:
            pass
        raise
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
    return proc.returncode, out, err


def get(name, server, image, timeout=HELPER_TIMEOUT, environ=None, where=None):
    """(username, secret) the helper `name` gives for `server`, or None when it has none for it."""
    environ = dict(os.environ if environ is None else environ)
    path = program_path(name, image, environ, where)
    program = PREFIX + name
    try:
        status, out, err = _run(path, server, timeout, environ)
    except AnswerTooLong:
        raise ImageError("the credential helper %s answered more than %d bytes" % (program, MAX_ANSWER), image=image)
    except subprocess.TimeoutExpired:
        raise ImageError("the credential helper %s did not answer within %ss (waiting for a keyring to be unlocked?)"
                         % (program, timeout), image=image)
    except OSError as e:
        raise ImageError("cannot run the credential helper %s: %s" % (program, e.strerror), image=image)
    if status != 0:
        if NOT_FOUND in out.decode("utf-8", "replace").lower() or NOT_FOUND in err.decode("utf-8", "replace").lower():
            return None
        # its error output only: what it wrote to stdout may be its answer, Secret and all
        raise ImageError("the credential helper %s failed for %s (exit status %d): %s"
                         % (program, server, status, _short(err) or "no message on its error output"), image=image)
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
