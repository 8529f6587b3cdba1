# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a layer tarball the way the applier does, into nothing.

Check mode must fail where the real run fails and report the diff_id the
real run would record, without writing a byte. The applier's own reading
(tar_apply.verify_archive) does the work; this adds the layer to its errors
and compares the digest, as the driver does before a layer becomes visible.
"""

from .errors import OverlayError


def verify_layer(raw, compression="auto", layer_id=None, expected_diff_id=None, uid_maps=None, gid_maps=None):
    """The applier's result (size, diff_id, entries, compression) for the tarball read from raw."""
    # imported here: the applier and its decompressors are only loaded by runs that read a tarball
    from .tar_apply import verify_archive  # pylint: disable=import-outside-toplevel

    try:
        verified = verify_archive(raw, compression, uid_maps, gid_maps)
    except OverlayError as e:
        raise OverlayError(e.cause, layer=layer_id, path=e.path)
    if expected_diff_id and verified.diff_id != expected_diff_id:
        raise OverlayError("diff_id mismatch: expected %s, the layer is %s" % (expected_diff_id, verified.diff_id),
                           layer=layer_id)
    return verified
