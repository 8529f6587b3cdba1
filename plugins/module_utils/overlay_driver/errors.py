# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One error family, so callers can turn any failure into a clean message; a subtype says what a caller can do."""

import errno
import os


class OverlayError(Exception):
    """A failure of the layer store, naming the layer, the path and the cause.

    Modules turn it into ``failed: true`` with ``msg``; anything else that
    escapes is a bug.
    """

    def __init__(self, cause, layer=None, path=None):
        self.cause = cause
        self.layer = layer
        self.path = path
        super(OverlayError, self).__init__(self.message)

    @property
    def message(self):
        parts = []
        if self.layer:
            parts.append("layer %s" % self.layer)
        if self.path:
            parts.append("path %s" % self.path)
        if parts:
            return "%s: %s" % (", ".join(parts), self.cause)
        return str(self.cause)


class NotSupported(OverlayError):
    """The host cannot run overlay at all (seed: graphdriver.ErrNotSupported)."""


class IncompatibleFS(OverlayError):
    """The layer home sits on a filesystem overlay cannot use (seed: ErrIncompatibleFS)."""


class LayerFormatError(OverlayError):
    """A layer tarball that is malformed or hostile."""


class NeedsSource(OverlayError):
    """overlay_apply_diff was asked without src and the layer does not have the diff yet.

    The module fails with needs_src: true, which tells the action plugin to send src and ask again.
    """


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived. A BaseException, like KeyboardInterrupt, so that no handler
    of ordinary errors swallows it; cleanup code (finally, except BaseException) still runs."""

    def __init__(self, signal_name):
        self.signal_name = signal_name
        super(Interrupted, self).__init__(signal_name)


# Errors of the host, not of the store: they can arrive from any write (a record, a temp dir, a
# mount point), so they are named where every failure is reported (common.run_module) instead
# of at each call. The advice says what the operator can do about each.
HOST_ERRORS = {
    errno.ENOSPC: "free space on that filesystem, then run again",
    errno.EDQUOT: "the disk quota of that filesystem is used up: free space or raise the quota, then run again",
    errno.EROFS: "the filesystem is read-only (ext4 remounts itself read-only after an error, which statvfs "
                 "may show only later): check the kernel log, repair it, remount it read-write, then run again",
    errno.EIO: "the device or filesystem failed: check the kernel log",
    errno.EMFILE: "the process ran out of file descriptors: raise the open files limit (ulimit -n)",
    errno.ENFILE: "the system ran out of file descriptors",
    errno.ENOMEM: "the kernel ran out of memory",
}


def host_error(error, layer=None, home=None):
    """An OverlayError for an OSError of the host (no space, read-only, I/O error), else None.

    It names the errno and the path: the error's own when it is absolute, else the home, with
    the name (relative to a directory fd of the home) the call was given.
    """
    if not isinstance(error, OSError) or error.errno not in HOST_ERRORS:
        return None
    names = [n for n in (error.filename, error.filename2) if n is not None]
    names = [os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in names]
    path = names[0] if names and os.path.isabs(names[0]) else home
    cause = "%s (%s)" % (errno.errorcode[error.errno], error.strerror or os.strerror(error.errno))
    relative = [n for n in names if n != path]
    if relative:
        cause += " at %s" % ", ".join(repr(n) for n in relative)
    result = OverlayError("%s: %s" % (cause, HOST_ERRORS[error.errno]), layer=layer, path=path)
    result.errno_name = errno.errorcode[error.errno]
    return result
