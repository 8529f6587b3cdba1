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


class ImageError(OverlayError):
    """A reference, manifest, config or transport that cannot be used."""

    def __init__(self, cause, image=None, blob=None, layer=None, path=None):
        self.image = image
        self.blob = blob
        super(ImageError, self).__init__(cause, layer=layer, path=path)

    @property
    def message(self):
        """image, blob, layer, path: cause (the image first: it is what the task named)."""
        parts = []
        for label, value in (("image", self.image), ("blob", self.blob), ("layer", self.layer),
                             ("path", self.path)):
            if value:
                parts.append("%s %s" % (label, value))
        if parts:
            return "%s: %s" % (", ".join(parts), self.cause)
        return str(self.cause)

    def prefix(self, text):
        """Say where in the image it happened."""
        self.cause = text + self.cause
        self.args = (self.message,)
        return self


class BlobError(ImageError, LayerFormatError):
    """A blob whose bytes are not what its descriptor promised (digest, size) or that could not be read."""
