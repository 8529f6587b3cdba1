# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a layer tarball into a target, or into nothing, and check what was read.

Check mode must fail where the real run fails and report the diff_id the
real run would record, without writing a byte. The applier's own reading
(tar_apply.verify_archive, or LayerApplier.apply for a real run) does the
work; read_layer adds the layer to its errors and compares the digest, for
the check run here and for the driver before a layer becomes visible.
"""

from .errors import OverlayError


def read_layer(read, layer_id=None, expected_diff_id=None):
    """The ArchiveResult of read(), with layer_id in its errors; a diff_id other than expected_diff_id is one."""
    try:
        result = read()
    except OverlayError as e:
        raise OverlayError(e.cause, layer=layer_id, path=e.path)
    if expected_diff_id and result.diff_id != expected_diff_id:
        raise OverlayError("diff_id mismatch: expected %s, the layer is %s" % (expected_diff_id, result.diff_id),
                           layer=layer_id)
    return result


def verify_layer(raw, compression="auto", layer_id=None, expected_diff_id=None, uid_maps=None, gid_maps=None,
                 limits=None):
    """The applier's result (size, diff_id, entries, compression) for the tarball read from raw, within limits."""
    # imported here: the applier and its decompressors are only loaded by runs that read a tarball
    from .tar_apply import verify_archive  # pylint: disable=import-outside-toplevel

    return read_layer(lambda: verify_archive(raw, compression, uid_maps, gid_maps, limits), layer_id, expected_diff_id)
