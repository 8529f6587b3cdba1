"""An image archive's index: streamed and bounded, whatever the number of members.

tarfile's getmembers() keeps a TarInfo per member: an archive of 1.5 million
empty members (14 MB) cost 900 MB of memory before anything was refused.
The index keeps three numbers per member name and refuses an archive of
more than MAX_ARCHIVE_MEMBERS members, which no image archive comes near.
"""

import io
import os
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import files
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from imagetools import Image
from layertools import layer_names


def oci_archive(scratch, junk):
    """An oci-archive of a test image with `junk` empty members appended (names no lookup uses)."""
    layout = Image().write_layout(os.path.join(scratch, "layout"))
    path = os.path.join(scratch, "image.tar")
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for root, dirs, names in os.walk(layout):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(root, name)
                tar.add(full, os.path.relpath(full, layout))
        info = tarfile.TarInfo()
        for i in range(junk):
            info.name = "junk/%d" % i
            tar.addfile(info, io.BytesIO(b""))
    return path


def test_an_archive_of_too_many_members_is_refused_before_anything_is_staged(scratch, home):
    archive = oci_archive(scratch, files.MAX_ARCHIVE_MEMBERS)
    with pytest.raises(ImageError) as e:
        stage_image(LayerStore(home), "oci-archive:%s:v1" % archive)
    assert "the archive has more than %d members" % files.MAX_ARCHIVE_MEMBERS in e.value.message
    assert archive in e.value.message
    assert layer_names(home) == []


def test_the_index_keeps_three_numbers_per_name_and_no_tarinfo(scratch, home):
    """What memory the index holds is bounded by the members' names, not tarfile's objects per member."""
    archive = oci_archive(scratch, 5000)
    tar_files = files.TarFiles(archive, "oci-archive:" + archive)
    try:
        assert tar_files._handle.members == []  # pylint: disable=protected-access
        index = tar_files._members  # pylint: disable=protected-access
        assert all(isinstance(v, tuple) and len(v) == 3 for v in index.values())
        assert len(index) <= files.MAX_ARCHIVE_MEMBERS
        f, size = tar_files.open("oci-layout")
        with f:
            assert len(f.read()) == size > 0
        assert tar_files.exists("junk/4999") and not tar_files.exists("junk")
    finally:
        tar_files.close()
    result = stage_image(LayerStore(home), "oci-archive:%s:v1" % archive)
    assert result.changed and len(result.layers) == 2
