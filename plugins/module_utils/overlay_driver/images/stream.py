# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A layer blob as the applier reads it: decompressed here, and proven before its end is seen.

The applier is handed plain tar bytes. EOF is only reported after the blob's
size and digest were checked, so a blob that lies fails inside the apply and
its layer never becomes visible. Decompressing here (not in the applier) keeps
that order for every compression: a decompressor that reads its input from a
thread (zstd) could otherwise swallow the blob's error and end cleanly.
"""

from ..errors import LayerFormatError
from ..tar_stream import open_decompressed
from .errors import BlobError


class _Quiet:
    """The verifier, with its errors turned into EOF; the verifier keeps them for CheckedStream."""

    def __init__(self, verifier):
        self._verifier = verifier

    def read(self, n=-1):
        try:
            return self._verifier.read(n)
        except BlobError:
            return b""


class CheckedStream:
    def __init__(self, verifier, compression, image=None):
        self._verifier = verifier
        self.image = image
        self._f, self.compression = open_decompressed(_Quiet(verifier), compression)

    def _blob_error(self):
        return self._verifier.error

    def read(self, n=-1):
        try:
            data = self._f.read(n)
        except Exception as e:  # pylint: disable=broad-except
            if self._verifier.error is not None:
                raise self._verifier.error
            if isinstance(e, LayerFormatError):
                raise
            raise BlobError("cannot decompress the layer (%s): %s" % (self.compression, e), image=self.image,
                            blob=self._verifier.digest or self._verifier.name)
        if not data:
            if self._verifier.error is not None:
                raise self._verifier.error
            self._verifier.finish()
        return data

    def close(self):
        try:
            self._f.close()
        except Exception:  # a half-read stream's close must not mask the real error  pylint: disable=broad-except
            pass
