"""overlay_mount's documented `options` are what a real mount returns, in each layout.

ansible-doc showed only the seed layout's options; an operator on an overlay2 home saw a lowerdir
of chained diff/ directories that the documentation did not describe. The layers here are mounted
for real and what the module returns is compared with what RETURN says, the home's path written as
the default home.
"""

import os

import pytest
import yaml

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import DEFAULT_HOME
from ansible_collections.strata.overlay.plugins.modules import overlay_layer, overlay_mount


def _documented():
    options = yaml.safe_load(overlay_mount.RETURN)["options"]
    return " ".join(" ".join(options["description"]).split()), options["sample"]


@pytest.fixture
def mounted_layers(run_module, home, layout):
    """base <- mid <- web-1, web-1 mounted (and mid, which has a child, too); unmounted afterwards."""
    for layer_id, parent in (("base", ""), ("mid", "base"), ("web-1", "mid")):
        assert not run_module(overlay_layer, {"id": layer_id, "parent": parent, "home": home,
                                              "layout": layout}).get("failed")
    results = {}
    try:
        for layer_id in ("web-1", "mid"):
            results[layer_id] = run_module(overlay_mount, {"id": layer_id, "holder": "doc", "home": home})
            assert results[layer_id]["mounted"], results[layer_id]
        yield {k: {key: value.replace(home, DEFAULT_HOME) for key, value in r["options"].items()
                   if key in ("lowerdir", "upperdir", "workdir")} for k, r in results.items()}
    finally:
        for layer_id in results:
            run_module(overlay_mount, {"id": layer_id, "holder": "doc", "home": home, "state": "unmounted"})


@pytest.mark.layout("overlay2")  # the overlay2 layout's diff/ chain, as RETURN spells it out
def test_an_overlay2_mount_returns_the_options_the_documentation_shows(mounted_layers):
    text, _sample = _documented()
    web = mounted_layers["web-1"]
    assert web["lowerdir"] == "%s/mid/diff:%s/base/diff" % (DEFAULT_HOME, DEFAULT_HOME), web
    assert ("for C(web-1) on C(mid) on C(base) that is C(lowerdir) = C(%s), C(upperdir) = C(%s), C(workdir) = C(%s)."
            % (web["lowerdir"], web["upperdir"], web["workdir"])) in text
    mid = mounted_layers["mid"]  # read-only: it has a child
    assert mid == {"lowerdir": "%s/mid/diff:%s/base/diff" % (DEFAULT_HOME, DEFAULT_HOME)}, mid
    assert "has its own C(diff/) first in C(lowerdir) and no C(upperdir) nor C(workdir)" in text


@pytest.mark.layout("overlay")  # the seed layout's root/ and upper/, the documented sample
def test_a_seed_layout_mount_returns_the_documented_sample(run_module, home):
    for layer_id, parent in (("base", ""), ("web-1", "base")):
        assert not run_module(overlay_layer, {"id": layer_id, "parent": parent, "home": home}).get("failed")
    res = run_module(overlay_mount, {"id": "web-1", "holder": "doc", "home": home})
    try:
        assert res["mounted"], res
        shown = {key: res["options"][key].replace(home, DEFAULT_HOME) for key in ("lowerdir", "upperdir", "workdir")}
        assert shown == _documented()[1]
    finally:
        run_module(overlay_mount, {"id": "web-1", "holder": "doc", "home": home, "state": "unmounted"})
    assert not os.path.ismount(os.path.join(home, "web-1", "merged"))
