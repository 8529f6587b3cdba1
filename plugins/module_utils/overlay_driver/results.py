# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a store operation did, or in check mode would do.

The store alone knows what a real run would leave behind, so it returns the
layer's state after the operation (predicted in check mode) and callers
report that instead of guessing it again.
"""


class Outcome:
    """changed, and the layer's state (as LayerStore.state returns it) before and after."""

    __slots__ = ("changed", "before", "after")

    def __init__(self, changed, before, after):
        self.changed = changed
        self.before = before
        self.after = after

    def __bool__(self):
        return bool(self.changed)


class ApplyOutcome(Outcome):
    """apply_diff: also what was (or would be) applied.

    Unpacks as the older (changed, applied, reason) triple; applied is the
    driver's ApplyDiffResult after a real apply, None otherwise. diff_id and
    size are the layer's whatever happened: computed by a check run, recorded
    when the diff was already there.
    """

    __slots__ = ("applied", "reason", "diff_id", "size", "fallback", "compression", "entries")

    def __init__(self, changed, before, after, applied=None, reason="", diff_id=None, size=None,
                 fallback=None, compression=None, entries=None):
        super(ApplyOutcome, self).__init__(changed, before, after)
        self.applied = applied
        self.reason = reason
        self.diff_id = diff_id
        self.size = size
        self.fallback = fallback
        self.compression = compression
        self.entries = entries

    def __iter__(self):
        return iter((self.changed, self.applied, self.reason))


class ExportOutcome(Outcome):
    """export_diff: the tarball's digest and sizes, the changes, and dest. Unpacks as (changed, info dict)."""

    __slots__ = ("info",)

    def __init__(self, changed, info):
        super(ExportOutcome, self).__init__(changed, None, None)
        self.info = info

    def __iter__(self):
        return iter((self.changed, self.info))


class ArchiveResult:
    """A layer tarball read to its end, applied or only verified: the bytes of its regular files (size as
    the seed counts it), its diff_id, its number of entries and the compression it came in."""

    __slots__ = ("size", "diff_id", "entries", "compression")

    def __init__(self, size, diff_id, entries, compression):
        self.size = size
        self.diff_id = diff_id
        self.entries = entries
        self.compression = compression
