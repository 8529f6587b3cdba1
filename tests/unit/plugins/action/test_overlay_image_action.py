"""The controller's side of overlay_image: what it sends of an OCI layout, for a layout someone else wrote."""

import json
import os
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.action.overlay_image import ActionModule
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.oci_layout import OciLayout
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference

from imagetools import Image, mkimages


@pytest.fixture
def oci_layout(scratch):
    image = Image()
    path = image.write_layout(os.path.join(scratch, "layout"))
    return image, path


def test_a_sound_blob_is_sent_from_where_it_is(oci_layout):
    image, path = oci_layout
    with OciLayout(parse_reference("oci:%s:v1" % path)) as source:
        sent = ActionModule._in_layout(source, path, image.layer_digest(0))  # pylint: disable=protected-access
    assert sent == image.blob_path(path, image.layer_digest(0))


@pytest.mark.parametrize("where", ["blob", "directory"])
def test_a_blob_that_is_a_symlink_is_never_sent(oci_layout, scratch, where):
    """A layout whose blob (or blobs/sha256) points at a controller file: the transfer would copy that file
    to the host before any digest check could refuse it."""
    image, path = oci_layout
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


# -- what a docker save archive names is a member, never a path on the host ---------------------------------

class _Shell:
    tmpdir = "/host/tmp/ansible-tmp-1"

    @staticmethod
    def join_path(*parts):
        return os.path.join(*parts)


class _Connection:
    _shell = _Shell()


class _Task:
    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.action = "strata.overlay.overlay_image"


def recording_action(local, check_mode):
    """An ActionModule whose host is a record: the commands run, the files sent and where, the modules run."""
    action = object.__new__(ActionModule)
    seen = {"commands": [], "sent": [], "modules": []}
    action._task = _Task(check_mode)  # pylint: disable=protected-access
    action._connection = _Connection()  # pylint: disable=protected-access
    action._find_needle = lambda _kind, _path: local  # pylint: disable=protected-access

    def execute(module_name, module_args, task_vars):
        del task_vars
        seen["modules"].append((module_name, module_args))
        return {"layers": []} if module_name == "strata.overlay.overlay_info" else {"changed": True}

    def command(cmd, sudoable=False):
        del sudoable
        seen["commands"].append(cmd)
        return {"rc": 0, "stdout": "x86_64\n", "stderr": ""}

    def transfer(path, remote):
        assert os.path.isfile(path), "only files are sent"
        seen["sent"].append(remote)
        return remote

    action._execute_module = execute  # pylint: disable=protected-access
    action._low_level_execute_command = command  # pylint: disable=protected-access
    action._transfer_file = transfer  # pylint: disable=protected-access
    action._fixup_perms2 = lambda paths: None  # pylint: disable=protected-access
    action._remove_tmp_path = lambda path: None  # pylint: disable=protected-access
    return action, seen


def saved_directory(scratch, rename_config=None, rename_layer=None):
    """A docker save archive extracted to a directory; a name in manifest.json replaced, its file moved there."""
    archive = os.path.join(scratch, "saved.tar")
    mkimages.write_docker_archive(archive, Image().tars)
    directory = os.path.join(scratch, "saved")
    with tarfile.open(archive) as tar:
        tar.extractall(directory)  # the test's own archive
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as f:
        entries = json.load(f)

    def move(old, new):
        target = os.path.normpath(os.path.join(directory, new.lstrip("/")))
        if "\x00" not in new and target.startswith(directory + "/"):  # where a lenient reader finds it
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(os.path.join(directory, old), target)

    if rename_config is not None:
        move(entries[0]["Config"], rename_config)
        entries[0]["Config"] = rename_config
    if rename_layer is not None:
        move(entries[0]["Layers"][0], rename_layer)
        entries[0]["Layers"][0] = rename_layer
    with open(os.path.join(directory, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(entries, f)
    return directory


# The classes of names that are not members: absolute, leaving by .., hidden .. after a normal start, NUL.
HOSTILE_NAMES = ["/X/config.json", "/X/planted", "../x", "a/../../b", "X/\x00y", "//X/y"]


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
@pytest.mark.parametrize("what", ["Config", "Layers"])
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_docker_archive_naming_a_path_sends_nothing(scratch, check_mode, what, name):
    """manifest.json's names became paths on the host: `/X/config.json` was written at /X, in check mode too."""
    kwargs = {"rename_config": name} if what == "Config" else {"rename_layer": name}
    directory = saved_directory(scratch, **kwargs)
    action, seen = recording_action(directory, check_mode)
    result = action._run_with_src({}, {"src": "docker-archive:saved"}, False, {})  # pylint: disable=protected-access
    assert result.get("failed"), result
    assert "refusing the file name" in result["msg"]
    assert seen["sent"] == [] and seen["commands"] == []
    assert [m for m, _a in seen["modules"] if m != "strata.overlay.overlay_info"] == []


@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "run"])
def test_a_directory_docker_archive_is_sent_member_by_member_into_the_temp_dir(scratch, check_mode):
    """Names that only need normalizing (./, //) are sent under their normal name, each file inside the temp
    directory made on the host, and the module reads a docker-archive directory there."""
    directory = saved_directory(scratch, rename_config="./cfg//config.json")
    action, seen = recording_action(directory, check_mode)
    result = action._run_with_src({}, {"src": "docker-archive:saved"}, False, {})  # pylint: disable=protected-access
    assert not result.get("failed"), result
    root = os.path.join(_Shell.tmpdir, "image") + "/"
    assert seen["sent"] and all(r.startswith(root) and os.path.normpath(r) == r for r in seen["sent"])
    assert root + "cfg/config.json" in seen["sent"] and root + "manifest.json" in seen["sent"]
    assert (root + "image.tar" in seen["sent"]) is False
    layers_sent = [r for r in seen["sent"] if r.endswith("layer.tar")]
    assert len(layers_sent) == (0 if check_mode else len(Image().tars))
    module_args = [a for m, a in seen["modules"] if m == "strata.overlay.overlay_image"]
    assert module_args == [{"src": "docker-archive:" + root.rstrip("/"), "remote_src": True,
                            "record_as": "docker-archive:saved"}]  # recorded as the task named it


def test_absent_runs_the_module_with_the_task_args_and_sends_nothing(scratch):
    """state=absent finds the image by its record on the host: nothing is read on the controller, nothing sent."""
    action, seen = recording_action(os.path.join(scratch, "nothing-here"), False)
    args = {"src": "sha256:" + "ab" * 32, "state": "absent"}
    result = action._run_with_src({}, dict(args), False, {})  # pylint: disable=protected-access
    assert not result.get("failed"), result
    assert not seen["sent"] and seen["modules"] == [("strata.overlay.overlay_image", args)]


def test_name_is_read_as_src_on_the_controller_too(scratch):
    """overlay_image accepts name (community.docker's spelling) as an alias of src; the action read only src
    and so sent nothing and handed the host the controller's path."""
    directory = saved_directory(scratch)
    action, seen = recording_action(directory, False)
    result = action._run_with_src({}, {"name": "docker-archive:saved"}, False, {})  # pylint: disable=protected-access
    assert not result.get("failed"), result
    module_args = [a for m, a in seen["modules"] if m == "strata.overlay.overlay_image"]
    assert len(module_args) == 1 and "name" not in module_args[0]
    assert module_args[0]["src"].startswith("docker-archive:" + _Shell.tmpdir)
    both = action._run_with_src({}, {"name": "docker-archive:saved", "src": "docker-archive:saved"}, False, {})  # pylint: disable=protected-access
    assert both["failed"] and "not both" in both["msg"]
