# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a driver or store operation did, or in check mode would do: one small type per operation.

The store alone knows what a real run would leave behind, so it returns the
layer's state after the operation (predicted in check mode) and callers
report that instead of guessing it again. Managers only translate these
into module results. Plain records with named fields: none unpacks like a tuple.
"""

import dataclasses
import typing


@dataclasses.dataclass
class ArchiveResult:
    """A layer tarball read to its end, applied or only verified: the bytes of its regular files (size as
    the seed counts it), its diff_id, its number of entries and the compression it came in.

    entries and compression are None when the tarball was not read (a layer that already had it).
    """

    size: int
    diff_id: str
    entries: typing.Optional[int] = None
    compression: typing.Optional[str] = None


@dataclasses.dataclass
class ApplyDiffResult(ArchiveResult):
    """Driver.apply_diff: the tarball read, and whether the naive fallback applied it (the seed's
    ErrApplyDiffFallback); fallback is None when nothing was applied."""

    fallback: typing.Optional[bool] = None


@dataclasses.dataclass
class DiffResult:
    """Driver.diff: the tarball's diff_id and bytes, the changes it holds and their size (diff_size)."""

    diff_id: str
    tar_size: int
    changes: list
    size: int


@dataclasses.dataclass
class Outcome:
    """ensure_present, ensure_absent, ensure_mounted, ensure_unmounted: changed, and the layer's
    state (as LayerStore.state returns it) before and after."""

    changed: bool
    before: dict
    after: dict


@dataclasses.dataclass
class ApplyOutcome(Outcome):
    """apply_diff: also the diff the layer holds after it.

    Its diff_id and size are the layer's whatever happened: applied, computed
    by a check run, or recorded when the diff was already there.
    """

    diff: ApplyDiffResult


@dataclasses.dataclass
class ExportOutcome:
    """export_diff: changed when dest did not hold this tarball yet; the diff written,
    the parent it is taken against and dest's path."""

    changed: bool
    diff: DiffResult
    parent: typing.Optional[str]
    dest: str


@dataclasses.dataclass
class StagedLayer:
    """One layer of a staged image: id, its name in the store (the ChainID's hex); its diff_id; digest,
    the blob's (its diff_id when the source names none); size, the blob's compressed bytes (None when a
    docker archive lacks the blob); the blob's media_type; present, when the store held it already;
    changed, when this run staged it (a check run: would stage it)."""

    id: str
    diff_id: str
    digest: str
    size: typing.Optional[int]
    media_type: str
    present: bool = False
    changed: bool = False


@dataclasses.dataclass
class StagedImage:
    """stage_image (images/stage.py): changed when any layer was (would be) staged; top, the last layer's
    id; layers, StagedLayer bottom first; the manifest's digest (None for a docker archive) and the
    config's; config, the run settings it holds; bytes, the compressed bytes fetched;
    elapsed, the seconds it took."""

    changed: bool
    top: str
    layers: typing.List[StagedLayer]
    manifest_digest: typing.Optional[str]
    config_digest: str
    config: dict
    bytes: int
    elapsed: float
