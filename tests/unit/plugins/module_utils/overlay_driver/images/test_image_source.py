"""What every image source shares: the image it names in messages, and the files it holds open until its block ends."""

import os
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.docker_archive import DockerArchive
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.files import DirFiles, TarFiles
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.oci_layout import OciLayout
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.source import ImageSource

from imagetools import Image


@pytest.fixture
def oci_layout(scratch):
    return Image().write_layout(os.path.join(scratch, "layout"))


@pytest.fixture
def archive(oci_layout, scratch):
    path = os.path.join(scratch, "layout.tar")
    with tarfile.open(path, "w") as tar:
        for name in sorted(os.listdir(oci_layout)):
            tar.add(os.path.join(oci_layout, name), arcname=name)
    return path


@pytest.mark.parametrize("text, files_class", [("oci:%s:v1", DirFiles), ("oci-archive:%s:v1", TarFiles)])
def test_a_file_source_holds_its_files_open_for_its_block_only(oci_layout, archive, text, files_class):
    path = oci_layout if files_class is DirFiles else archive
    with OciLayout(parse_reference(text % path)) as source:
        assert isinstance(source.files, files_class)
        assert source.image == text % path
        assert source.files.exists("index.json")
    assert source.files._handle is None  # pylint: disable=protected-access
    source.close()  # closing again is harmless


def test_a_docker_archive_directory_is_read_as_a_directory(oci_layout):
    with DockerArchive(parse_reference("docker-archive:%s" % oci_layout)) as source:
        assert isinstance(source.files, DirFiles)
    assert source.files._handle is None  # pylint: disable=protected-access


def test_a_source_without_files_has_nothing_to_close():
    reference = parse_reference("docker://registry.example.com/base/debian:12")
    with ImageSource(reference) as source:
        assert source.image == reference.text
    source.close()


def test_an_archive_that_is_a_fifo_is_refused_without_blocking(scratch):
    """remote_src reads the archive on the host, under the home's lock: a FIFO put there must not block."""
    from layertools import run_isolated

    fifo = os.path.join(scratch, "image.tar")
    os.mkfifo(fifo)
    code = """
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.files import TarFiles
try:
    TarFiles(%r, "docker-archive:x")
except ImageError as e:
    print("refused:", e.message)
""" % fifo
    done = run_isolated(code, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "it is a FIFO, not a regular file" in done.stdout, done.stdout
