# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a driver or store operation did, or in check mode would do: one small type per operation.

The store alone knows what a real run would leave behind, so it returns the
layer's state after the operation (predicted in check mode) and callers
report that instead of guessing it again. Managers only translate these
into module results. Plain records with named fields: none unpacks like a tuple.

The records are built by Record below rather than dataclasses: every driver
run imports this file, and dataclasses (with inspect, ast, dis and typing
behind it) cost a process that is not under Ansible more than its whole
change walk's per-directory work.
"""


class Record:
    """Fields named in FIELDS (a subclass's are its base's plus its own), given by position or
    keyword, those in DEFAULTS optional; equal when of the same type with equal fields."""

    FIELDS = ()
    DEFAULTS = {}

    def __init__(self, *args, **kwargs):
        fields = self.FIELDS
        if len(args) > len(fields):
            raise TypeError("%s takes %d fields, %d given" % (type(self).__name__, len(fields), len(args)))
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError("%s: unexpected or repeated field %r" % (type(self).__name__, name))
            values[name] = value
        for name in fields:
            if name not in values:
                if name not in self.DEFAULTS:
                    raise TypeError("%s: missing field %r" % (type(self).__name__, name))
                values[name] = self.DEFAULTS[name]
            setattr(self, name, values[name])

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.FIELDS)

    __hash__ = None  # mutable, as a dataclass is

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (name, getattr(self, name)) for name in self.FIELDS))


class ArchiveResult(Record):
    """A layer tarball read to its end, applied or only verified: the bytes of its regular files (size as
    the seed counts it), its diff_id, its number of entries and the compression it came in.

    entries and compression are None when the tarball was not read (a layer that already had it).
    """

    FIELDS = ("size", "diff_id", "entries", "compression")
    DEFAULTS = {"entries": None, "compression": None}


class ApplyDiffResult(ArchiveResult):
    """Driver.apply_diff: the tarball read, and whether the naive fallback applied it (the seed's
    ErrApplyDiffFallback); fallback is None when nothing was applied."""

    FIELDS = ArchiveResult.FIELDS + ("fallback",)
    DEFAULTS = dict(ArchiveResult.DEFAULTS, fallback=None)


class DiffResult(Record):
    """Driver.diff: the tarball's diff_id and bytes, the changes it holds and their size (diff_size)."""

    FIELDS = ("diff_id", "tar_size", "changes", "size")


class Outcome(Record):
    """ensure_present, ensure_absent, ensure_mounted, ensure_unmounted: changed, and the layer's
    state (as LayerStore.state returns it) before and after."""

    FIELDS = ("changed", "before", "after")


class ApplyOutcome(Outcome):
    """apply_diff: also the diff the layer holds after it.

    Its diff_id and size are the layer's whatever happened: applied, computed
    by a check run, or recorded when the diff was already there.
    """

    FIELDS = Outcome.FIELDS + ("diff",)


class ExportOutcome(Record):
    """export_diff: changed when dest did not hold this tarball yet; the diff written,
    the parent it is taken against and dest's path."""

    FIELDS = ("changed", "diff", "parent", "dest")


class StagedLayer(Record):
    """One layer of a staged image: id, its name in the store (the ChainID's hex); its diff_id; digest,
    the blob's (its diff_id when the source names none); size, the blob's compressed bytes (None when a
    docker archive lacks the blob); the blob's media_type; present, when the store held it already;
    changed, when this run staged it (a check run: would stage it)."""

    FIELDS = ("id", "diff_id", "digest", "size", "media_type", "present", "changed")
    DEFAULTS = {"present": False, "changed": False}


class StagedImage(Record):
    """stage_image (images/stage.py): changed when any layer was (would be) staged; top, the last layer's
    id; layers, StagedLayer bottom first; the manifest's digest (None for a docker archive) and the
    config's; config, the run settings it holds; bytes, the compressed bytes fetched;
    elapsed, the seconds it took."""

    FIELDS = ("changed", "top", "layers", "manifest_digest", "config_digest", "config", "bytes", "elapsed")
