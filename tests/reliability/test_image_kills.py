"""kill -9 of a real overlay_image process while it stages a layer; no layer of that ChainID is left partial.

An image's layers are named by their ChainIDs, which promise their content:
a later run that finds a layer of that id trusts it. So a run killed at any
point of staging a layer must leave that layer complete or absent, never an
empty or half-applied layer; the next run converges to what an uninterrupted
run stages, and a third run changes nothing. On both layouts: the module processes are given the layout.
"""

import os

import pytest

from imagetools import Image
from layertools import snapshot
import modules

IMAGE = Image()
BASE_ENTRIES = 6  # members of the image's first layer (mkimages.default_layers)


def ok(module, args):
    rc, result, err = modules.run(module, args)
    assert rc == 0, (result, err)
    return result


def layer_view(home, layer_id):
    result = ok("overlay_mount", {"id": layer_id, "home": home, "holder": "view"})
    try:
        return snapshot(result["path"])  # without times: a whiteout sets its directory's mtime to the clock
    finally:
        ok("overlay_mount", {"id": layer_id, "home": home, "holder": "view", "state": "unmounted"})


def staged(home):
    """Each layer of the home: its record as overlay_info reports it and its content."""
    info = ok("overlay_info", {"home": home})
    return {layer["id"]: ({k: layer[k] for k in ("kind", "parent", "diff_id", "holders")},
                          layer_view(home, layer["id"])) for layer in info["layers"]}


# (fault point, which layer is being staged when it is reached: 0 base, 1 the layer on it)
CASES = [
    ("apply.entry:2", 0),
    ("apply.entry:%d" % (BASE_ENTRIES + 2), 1),
    ("apply.copied", 0),
    ("apply.copied:2", 1),
    ("create.before-rename", 0),
    ("create.before-rename:2", 1),
    ("record.written", 0),
]


@pytest.mark.parametrize("fault,killed_layer", CASES, ids=[c[0] for c in CASES])
def test_killed_staging_leaves_no_partial_layer(scratch, home, layout, fault, killed_layer):
    oci = IMAGE.write_layout(os.path.join(scratch, "layout"))
    args = {"src": "oci:%s:v1" % oci, "remote_src": True, "layout": layout}
    reference_home = os.path.join(scratch, "reference")
    ok("overlay_image", dict(args, home=reference_home))
    expected = staged(reference_home)

    rc, result, err = modules.run("overlay_image", dict(args, home=home), fault=fault)
    assert rc == -9, "the fault point %s was not reached: %s %s" % (fault, result, err)
    killed_id = IMAGE.ids[killed_layer]
    if os.path.isdir(os.path.join(home, killed_id)):  # only ever complete: the same as staged uninterrupted
        assert staged(home)[killed_id] == expected[killed_id], "a partial layer is visible"
    for below in IMAGE.ids[:killed_layer]:
        assert staged(home)[below] == expected[below]

    first = ok("overlay_image", dict(args, home=home))
    again = ok("overlay_image", dict(args, home=home))
    assert again["changed"] is False, (first, again)
    assert staged(home) == expected
    assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
