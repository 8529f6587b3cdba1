"""overlay_image's fast path against what a writer's run would still do: remember a config the home forgot,
ask a failing registry within one retry budget, leave alone what no writer changes; and the docs' key names.

The harness is test_overlay_image_info_hostile.py's: the modules and the action run in-process against a
fake TLS registry.
"""

import glob
import os
import shutil
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.action.overlay_image import ActionModule
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import retry
from ansible_collections.strata.overlay.plugins.modules import overlay_image, overlay_image_info

from fake_registry import FakeRegistry, make_ca, status
from imagetools import Image

MODULES = {"strata.overlay.overlay_image": overlay_image, "strata.overlay.overlay_image_info": overlay_image_info}
INFO = "strata.overlay.overlay_image_info"
MODULE = "strata.overlay.overlay_image"
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


@pytest.fixture(scope="module")
def pki():
    directory = tempfile.mkdtemp(prefix="strata-pki-")
    yield make_ca(directory)
    shutil.rmtree(directory)


@pytest.fixture
def server(pki):
    registry = FakeRegistry(tls=(pki[1], pki[2])).start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def waits(monkeypatch):
    recorded = []
    monkeypatch.setattr(retry, "sleep", recorded.append)
    return recorded


@pytest.fixture
def pushed(server, pki):
    image = Image()
    server.push("strata/app", image, tag="v1")
    return image, {"src": "docker://%s/strata/app:v1" % server.netloc, "ca_path": pki[0]}


class _Task:
    def __init__(self, args, diff=False, check_mode=False):
        self.args = args
        self.action = MODULE
        self.diff = diff
        self.check_mode = check_mode


def _run(run_module, args, check_mode=False, diff=False):
    """overlay_image's action with the modules run in this process; (result, names of the modules it ran)."""
    action = object.__new__(ActionModule)
    action._task = _Task(args, diff, check_mode)  # pylint: disable=protected-access
    ran = []

    def execute(module_name, module_args, task_vars):
        del task_vars
        ran.append(module_name)
        return run_module(MODULES[module_name], module_args, check_mode=check_mode, diff=diff)
    action._execute_module = execute  # pylint: disable=protected-access
    result = action._run_with_src({}, dict(args), False, {})  # pylint: disable=protected-access
    return result, ran


def _gets(server, part):
    return len([p for p, _h in server.requests if part in p])


# -- 1. the config the home forgot is never remembered again: fetched on every re-run ------------------------

def test_a_config_the_home_no_longer_remembers_is_fetched_once_not_on_every_rerun(run_module, home, server, pushed):
    """overlay_image remembers the image's config in .strata/images when it had to fetch it, so a later run
    reads only the manifest. The fast path fetches it (the home does not remember it) but writes nothing, and
    the module, which would remember it, never runs again: every re-run from then on fetches the config blob."""
    image, args = pushed
    args = dict(args, home=home)
    _run(run_module, args)
    for path in glob.glob(os.path.join(home, ".strata", "images", "*.json")):
        os.unlink(path)
    config = image.doc["config"]["digest"]
    _run(run_module, args)
    before = _gets(server, "/blobs/" + config)
    again, ran = _run(run_module, args)
    assert not again.get("failed"), again
    assert _gets(server, "/blobs/" + config) == before, \
        "the config blob was fetched again by a later re-run (ran %s): nothing ever remembers it" % ran


# -- 2. the registry asked twice ------------------------------------------------------------------------------


def test_a_registry_whose_blobs_fail_is_asked_with_one_retry_budget_not_two(run_module, home, server, pushed, waits):
    """The config blob answers 503 every time: overlay_image_info spends all its retries (its failure is not
    tagged registry, the config being read after the home), then overlay_image spends them all again. The docs
    promise a registry that is down is asked once, not twice."""
    image, args = pushed
    args = dict(args, home=home, retries=2)
    config = image.doc["config"]["digest"]
    server.fail_first("/v2/strata/app/blobs/" + config, *[status(503)] * 50)
    result, ran = _run(run_module, args)
    assert result.get("failed"), result
    module_alone = 1 + 2
    assert _gets(server, "/blobs/" + config) == module_alone, \
        "ran %s; the config blob was asked %d times, the module alone asks %d (waits: %s)" % (
            ran, _gets(server, "/blobs/" + config), module_alone, waits)


# -- 3. docs -----------------------------------------------------------------------------------------------------

def _staging_again_section():
    with open(os.path.join(REPO_ROOT, "docs", "images.md")) as f:
        text = f.read()
    start = text.index("### Staging again")
    return text[start:text.index("\n## ", start)]


def test_the_docs_name_the_key_the_module_returns():
    """docs/images.md says the home is reported with `repairs_due` (overlay2's short links only); the module
    returns `upkeep_due`, which covers far more. An operator writing `when: info.home.repairs_due` gets an
    undefined-variable error."""
    section = _staging_again_section()
    assert "repairs_due" not in section and "upkeep_due" in section, section


# -- 4. a false positive that never clears: the fast path never applies again -------------------------------

def test_a_default_acl_on_layers_that_no_writer_removes_does_not_disable_the_fast_path_for_good(run_module, home,
                                                                                               pushed):
    """A root-owned 0700 .strata/layers with a default ACL (a site-wide `setfacl -d` for a backup agent): every
    writer accepts it as it is (home.py _check_private returns before _seal for root's 0700), so overlay_image
    never removes it; upkeep_due (image_presence._settled) calls it upkeep for ever. Every re-run then ships
    and runs both modules, and asks the registry twice."""
    import subprocess  # pylint: disable=import-outside-toplevel
    _image, args = pushed
    args = dict(args, home=home)
    _run(run_module, args)
    subprocess.check_call(["setfacl", "-d", "-m", "u:1:rwx", os.path.join(home, ".strata", "layers")])
    _run(run_module, args)  # the module ran: whatever upkeep a writer does is done
    again, ran = _run(run_module, args)
    assert not again.get("failed"), again
    assert ran == [INFO], "upkeep_due after a writer's run: %s" % run_module(overlay_image_info, args)["home"]
