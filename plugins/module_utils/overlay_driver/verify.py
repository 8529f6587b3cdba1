# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a layer tarball the way the applier does, into nothing.

Check mode must fail where the real run fails and report the diff_id the
real run would record, without writing a byte: the stream is decompressed
and hashed, every header parsed, every name and whiteout checked as the
applier checks them, and the data read to the end of the archive.
"""

from .errors import LayerFormatError, OverlayError
from .tar_apply import WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, clean_name
from .tar_stream import DIRECTORY, HARDLINK, REGULAR, HashingReader, Limits, iter_entries


class VerifiedLayer:
    __slots__ = ("size", "diff_id", "entries", "compression")

    def __init__(self, size, diff_id, entries, compression):
        self.size = size
        self.diff_id = diff_id
        self.entries = entries
        self.compression = compression


def _check_entry(entry, parts, limits):
    if entry.kind == HARDLINK:
        clean_name(entry.linkname, limits, "link target of %r" % entry.name)
    if not parts:
        if entry.kind != DIRECTORY:
            raise LayerFormatError("entry %r would replace the layer root" % entry.name)
        return
    base = parts[-1]
    if base.startswith(WHITEOUT_PREFIX) and base != WHITEOUT_OPAQUE and not base.startswith(WHITEOUT_META_PREFIX):
        if base[len(WHITEOUT_PREFIX):] in ("", ".", ".."):
            raise LayerFormatError("invalid whiteout %r" % entry.name)


def verify_layer(raw, compression="auto", layer_id=None, expected_diff_id=None):
    """VerifiedLayer of the tarball read from raw; LayerFormatError naming the entry if it is bad."""
    limits = Limits()
    reader = HashingReader(raw, compression)
    size = count = 0
    try:
        for entry in iter_entries(reader, limits):
            count += 1
            parts = clean_name(entry.name, limits)
            if parts and parts[0].startswith(WHITEOUT_META_PREFIX) and len(parts) > 1:
                continue
            _check_entry(entry, parts, limits)
            if entry.kind == REGULAR and not parts[-1].startswith(WHITEOUT_PREFIX):
                size += entry.size
    except ValueError as e:
        raise LayerFormatError("invalid entry: %s" % e, layer=layer_id)
    except OverlayError as e:
        raise OverlayError(e.cause, layer=layer_id, path=e.path)
    finally:
        reader.close()
    diff_id = reader.digest()
    if expected_diff_id and diff_id != expected_diff_id:
        raise OverlayError("diff_id mismatch: expected %s, the layer is %s" % (expected_diff_id, diff_id),
                           layer=layer_id)
    return VerifiedLayer(size, diff_id, count, reader.compression)
