"""overlay_image's fast path against what a writer's run would still do: remember a config the home forgot,
ask a failing registry within one retry budget, leave alone what no writer changes; and the docs' key names.

The modules and the action run in-process against a fake TLS registry (the image_action and pushed fixtures,
tests/unit/plugins/modules/conftest.py).
"""

import glob
import os

from ansible_collections.strata.overlay.plugins.modules import overlay_image_info

from fake_registry import status

INFO = "strata.overlay.overlay_image_info"
MODULE = "strata.overlay.overlay_image"
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))


def _gets(server, part):
    return len([p for p, _h in server.requests if part in p])


# -- a config the home forgot is fetched once and remembered again --------------------------------------------------

def test_a_config_the_home_no_longer_remembers_is_fetched_once_not_on_every_rerun(
        image_action, run_module, home, server, pushed):
    """overlay_image remembers the image's config in .strata/images when it had to fetch it, so a later run
    reads only the manifest. The fast path fetches it (the home does not remember it) but writes nothing, and
    the module, which would remember it, never runs again: every re-run from then on fetches the config blob."""
    image, args = pushed
    args = dict(args, home=home)
    image_action(args)
    for path in glob.glob(os.path.join(home, ".strata", "images", "*.json")):
        os.unlink(path)
    config = image.doc["config"]["digest"]
    image_action(args)
    before = _gets(server, "/blobs/" + config)
    again, ran = image_action(args)
    assert not again.get("failed"), again
    assert _gets(server, "/blobs/" + config) == before, \
        "the config blob was fetched again by a later re-run (ran %s): nothing ever remembers it" % ran


# -- a failing registry is asked within one retry budget ------------------------------------------------------------


def test_a_registry_whose_blobs_fail_is_asked_with_one_retry_budget_not_two(
        image_action, run_module, home, server, pushed, waits):
    """The config blob answers 503 every time: overlay_image_info spends all its retries (its failure is not
    tagged registry, the config being read after the home), then overlay_image spends them all again. The docs
    promise a registry that is down is asked once, not twice."""
    image, args = pushed
    args = dict(args, home=home, retries=2)
    config = image.doc["config"]["digest"]
    server.fail_first("/v2/strata/app/blobs/" + config, *[status(503)] * 50)
    result, ran = image_action(args)
    assert result.get("failed"), result
    module_alone = 1 + 2
    assert _gets(server, "/blobs/" + config) == module_alone, \
        "ran %s; the config blob was asked %d times, the module alone asks %d (waits: %s)" % (
            ran, _gets(server, "/blobs/" + config), module_alone, waits)


# -- the docs name what the module returns --------------------------------------------------------------------------

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


# -- what no writer changes does not turn the fast path off for good ------------------------------------------------

def test_a_default_acl_on_layers_that_no_writer_removes_does_not_disable_the_fast_path_for_good(
        image_action, run_module, home, pushed):
    """A root-owned 0700 .strata/layers with a default ACL (a site-wide `setfacl -d` for a backup agent): every
    writer accepts it as it is (home.py _check_private returns before _seal for root's 0700), so overlay_image
    never removes it; upkeep_due (image_presence._settled) calls it upkeep for ever. Every re-run then ships
    and runs both modules, and asks the registry twice."""
    import subprocess  # pylint: disable=import-outside-toplevel
    _image, args = pushed
    args = dict(args, home=home)
    image_action(args)
    subprocess.check_call(["setfacl", "-d", "-m", "u:1:rwx", os.path.join(home, ".strata", "layers")])
    image_action(args)  # the module ran: whatever upkeep a writer does is done
    again, ran = image_action(args)
    assert not again.get("failed"), again
    assert ran == [INFO], "upkeep_due after a writer's run: %s" % run_module(overlay_image_info, args)["home"]
