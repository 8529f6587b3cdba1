# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image errors name the image and the blob, so an operator knows which pull failed and why.

Both are OverlayErrors, so modules turn them into failed/msg like any store error.
BlobError is an ImageError and also a LayerFormatError: raised from inside a
layer's stream, the applier treats it as a bad layer and nothing of that layer
becomes visible.
"""

from ..errors import LayerFormatError, OverlayError


def _message(image, blob, cause):
    parts = []
    if image:
        parts.append("image %s" % image)
    if blob:
        parts.append("blob %s" % blob)
    if parts:
        return "%s: %s" % (", ".join(parts), cause)
    return cause


class ImageError(OverlayError):
    """A reference, manifest, config or transport that cannot be used."""

    def __init__(self, cause, image=None, blob=None, layer=None, path=None):
        self.image = image
        self.blob = blob
        self.reason = cause
        super(ImageError, self).__init__(_message(image, blob, cause), layer=layer, path=path)

    def prefix(self, text):
        """Say where in the image it happened, keeping image and blob first."""
        self.reason = text + self.reason
        self.cause = _message(self.image, self.blob, self.reason)
        self.args = (self.message,)
        return self


class BlobError(ImageError, LayerFormatError):
    """A blob whose bytes are not what its descriptor promised (digest, size) or that could not be read."""
