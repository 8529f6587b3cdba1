"""Run a module's main() in-process and capture what it returns or fails with."""

import contextlib
import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from imagetools import Image

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19
    @contextlib.contextmanager
    def patch_module_args(args):
        """What 2.19's patch_module_args does, the way earlier releases read module args."""
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result)
        self.result = result
        self.failed = failed


@pytest.fixture
def run_module(monkeypatch):
    # AnsibleModule.warn's messages, returned as `warnings` the way exit_json and fail_json return them (the
    # release's own store of warnings is process-wide, and differs between releases)
    warned = []

    def returned(self, kwargs):
        self.add_path_info(kwargs)
        if warned:
            kwargs["warnings"] = list(warned)
        return kwargs

    def exit_json(self, **kwargs):
        raise ModuleExit(returned(self, kwargs), False)

    def fail_json(self, **kwargs):
        kwargs = returned(self, kwargs)  # as AnsibleModule does for failures too
        kwargs["failed"] = True
        raise ModuleExit(kwargs, True)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, warning, **_kw: warned.append(warning))

    def run(module, args, check_mode=False, diff=False):
        del warned[:]
        args = dict(args)
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as exc:
                module.main()
        json.dumps(exc.value.result)  # what a module returns must serialise
        return exc.value.result

    return run


@pytest.fixture
def pushed(server, pki):
    """A two-layer image at strata/app:v1 on the fake registry, and the task's options to pull it."""
    image = Image()
    server.push("strata/app", image, tag="v1")
    return image, {"src": "docker://%s/strata/app:v1" % server.netloc, "ca_path": pki[0]}


class _Task:
    def __init__(self, args, diff=False, check_mode=False):
        self.args = args
        self.action = "strata.overlay.overlay_image"
        self.diff = diff
        self.check_mode = check_mode


@pytest.fixture
def image_action(run_module):
    """overlay_image's action with the modules it runs run in this process: run(args, check_mode, diff) gives
    (the task's result, the names of the modules it ran, in order)."""
    from ansible_collections.strata.overlay.plugins.action.overlay_image import ActionModule  # pylint: disable=import-outside-toplevel
    from ansible_collections.strata.overlay.plugins.modules import overlay_image, overlay_image_info  # pylint: disable=import-outside-toplevel
    modules = {"strata.overlay.overlay_image": overlay_image, "strata.overlay.overlay_image_info": overlay_image_info}

    def run(args, check_mode=False, diff=False):
        action = object.__new__(ActionModule)
        action._task = _Task(args, diff, check_mode)  # pylint: disable=protected-access
        ran = []

        def execute(module_name, module_args, task_vars):
            del task_vars
            ran.append(module_name)
            return run_module(modules[module_name], module_args, check_mode=check_mode, diff=diff)
        action._execute_module = execute  # pylint: disable=protected-access
        return action._run_with_src({}, dict(args), False, {}), ran  # pylint: disable=protected-access
    return run
