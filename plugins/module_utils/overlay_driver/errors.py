# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One error family, so callers can turn any failure into a clean message; a subtype says what a caller can do."""


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
