"""The controller's side of overlay_image: what it sends of an OCI layout, for a layout someone else wrote."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.action.overlay_image import ActionModule
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.oci_layout import OciLayout
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference

from imagetools import Image


@pytest.fixture
def layout(scratch):
    image = Image()
    path = image.write_layout(os.path.join(scratch, "layout"))
    return image, path


def test_a_sound_blob_is_sent_from_where_it_is(layout):
    image, path = layout
    with OciLayout(parse_reference("oci:%s:v1" % path)) as source:
        sent = ActionModule._in_layout(source, path, image.layer_digest(0))  # pylint: disable=protected-access
    assert sent == image.blob_path(path, image.layer_digest(0))


@pytest.mark.parametrize("where", ["blob", "directory"])
def test_a_blob_that_is_a_symlink_is_never_sent(layout, scratch, where):
    """A layout whose blob (or blobs/sha256) points at a controller file: the transfer would copy that file
    to the host before any digest check could refuse it."""
    image, path = layout
    secret = os.path.join(scratch, "secret")
    with open(secret, "w", encoding="ascii") as f:
        f.write("controller secret\n")
    digest = image.layer_digest(0)
    blob = image.blob_path(path, digest)
    if where == "blob":
        os.unlink(blob)
        os.symlink(secret, blob)
    else:
        elsewhere = os.path.join(scratch, "elsewhere")
        os.rename(os.path.dirname(blob), elsewhere)
        os.unlink(os.path.join(elsewhere, os.path.basename(blob)))
        os.symlink(secret, os.path.join(elsewhere, os.path.basename(blob)))
        os.symlink(elsewhere, os.path.dirname(blob))
    with OciLayout(parse_reference("oci:%s:v1" % path)) as source:
        with pytest.raises(OverlayError) as e:
            ActionModule._in_layout(source, path, digest)  # pylint: disable=protected-access
    assert "cannot be sent" in e.value.message
    assert ("symbolic links" if where == "blob" else "blobs/sha256 is a symlink") in e.value.message
    assert digest in e.value.message


def test_a_host_whose_module_cannot_start_says_why():
    """What Ansible answers when the host's Python cannot run a module (seen with a stale pyenv shim): msg says
    only that the result was not JSON, the reason is on stderr, and the task's error must carry it."""
    action = object.__new__(ActionModule)
    answer = {"failed": True, "rc": 127, "module_stdout": "",
              "module_stderr": "pyenv: python3.13: command not found\n\nThe `python3.13' command exists in ...\n",
              "msg": "Module result deserialization failed: No start of json char found"}
    action._execute_module = lambda **_kw: answer  # pylint: disable=protected-access
    with pytest.raises(OverlayError) as e:
        action._held_layers({"home": "/srv/layers"}, {})  # pylint: disable=protected-access
    assert "cannot list the host's layers" in e.value.message
    assert "pyenv: python3.13: command not found" in e.value.message
