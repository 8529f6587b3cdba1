# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a driver or store operation did, or in check mode would do: one small type per operation.

The store alone knows what a real run would leave behind, so it returns the
layer's state after the operation (predicted in check mode) and callers
report that instead of guessing it again. Managers only translate these
into module results.
"""


class ApplyDiffResult:
    """Driver.apply_diff: the diff's digest and size (as the seed's ApplyDiff returns it), whether the
    naive fallback applied it, how many entries it had and how it was compressed."""

    __slots__ = ("size", "diff_id", "fallback", "entries", "compression")

    def __init__(self, size, diff_id, fallback, entries=0, compression="none"):
        self.size = size
        self.diff_id = diff_id
        self.fallback = fallback
        self.entries = entries
        self.compression = compression


class DiffResult:
    """Driver.diff: the tarball's diff_id and bytes, the changes it holds and their size (diff_size)."""

    __slots__ = ("diff_id", "tar_size", "changes", "size")

    def __init__(self, diff_id, tar_size, changes, size):
        self.diff_id = diff_id
        self.tar_size = tar_size
        self.changes = changes
        self.size = size


class Outcome:
    """ensure_present, ensure_absent, ensure_mounted, ensure_unmounted: changed, and the layer's
    state (as LayerStore.state returns it) before and after."""

    __slots__ = ("changed", "before", "after")

    def __init__(self, changed, before, after):
        self.changed = changed
        self.before = before
        self.after = after


class ApplyOutcome(Outcome):
    """apply_diff: also the diff the layer holds after it.

    diff_id and size are the layer's whatever happened: applied, computed by a
    check run, or recorded when the diff was already there. fallback,
    compression and entries are known only when the diff was read (None otherwise).
    """

    __slots__ = ("diff_id", "size", "fallback", "compression", "entries")

    def __init__(self, changed, before, after, diff_id, size, fallback=None, compression=None, entries=None):
        super(ApplyOutcome, self).__init__(changed, before, after)
        self.diff_id = diff_id
        self.size = size
        self.fallback = fallback
        self.compression = compression
        self.entries = entries


class ExportOutcome:
    """export_diff: changed when dest did not hold this tarball yet; the diff written (a DiffResult),
    the parent it is taken against and dest's path."""

    __slots__ = ("changed", "diff", "parent", "dest")

    def __init__(self, changed, diff, parent, dest):
        self.changed = changed
        self.diff = diff
        self.parent = parent
        self.dest = dest
