# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which staged images each layer belongs to, for overlay_info: image layers are named by ChainIDs,
64 hex digits that tell an operator nothing; the image records overlay_image keeps say which
reference(s) brought each one."""

from .overlay_driver.errors import OverlayError
from .overlay_driver.image_records import ImageRecords


def read_records(dirs):
    """(the home's image records, None) or ([], why they cannot be read): a bad record does not hide the layers."""
    try:
        return ImageRecords(dirs).all(), None
    except OverlayError as e:
        return [], e.message


def annotate(layers, records):
    """Each layer dict gains images (the references of the records naming it, sorted); returns the images
    as overlay_info reports them: reference, digest, platform, layers and the bytes of those layers."""
    by_id = {layer["id"]: layer for layer in layers}
    for layer in layers:
        layer["images"] = []
    images = []
    for record in records:
        for layer_id in record.layers:
            if layer_id in by_id and record.reference not in by_id[layer_id]["images"]:
                by_id[layer_id]["images"].append(record.reference)
        sizes = [by_id[i].get("size") for i in record.layers if i in by_id]
        images.append({"reference": record.reference, "digest": record.digest, "platform": record.platform,
                       "layers": list(record.layers),
                       "present": all(i in by_id for i in record.layers),
                       "size": sum(s for s in sizes if isinstance(s, int))})
    for layer in layers:
        layer["images"].sort()
    return images
