"""What an overlay_image run loads: under Ansible a module run compiles every module it imports (the
payload is a zip, with no bytecode cache), so re-staging an image that is present must not pay for the
signature policy, the other sources, image removal or the other layout's driver."""

import json
import os

from imagebuild import Image, write_oci_layout
from layertools import TarBuilder, run_isolated

UTILS = "ansible_collections.strata.overlay.plugins.module_utils."
DRIVER = UTILS + "overlay_driver."
IMAGES = DRIVER + "images."

# One module run in a fresh interpreter, as a host runs it: its arguments in a file, its modules listed at exit.
RUN = """
import atexit, json, sys
atexit.register(lambda: sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n"))
sys.argv = ["overlay_image", %r]
from ansible_collections.strata.overlay.plugins.modules.overlay_image import main
main()
"""


def run_image_module(args_path):
    done = run_isolated(RUN % args_path, timeout=120)
    result = json.loads(done.stdout)
    loaded = json.loads(done.stderr.rsplit("MODULES ", 1)[1])
    return result, set(loaded)


def test_restaging_a_present_image_loads_only_what_it_needs(home, layout, scratch):
    oci = os.path.join(scratch, "oci")
    os.mkdir(oci)
    write_oci_layout(oci, {"v1": Image([TarBuilder().file("a", "a\n").bytes(), TarBuilder().file("b", "b\n").bytes()])})
    args_path = os.path.join(scratch, "args.json")
    with open(args_path, "w", encoding="utf-8") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": {"home": home, "src": "oci:%s:v1" % oci, "remote_src": True,
                                           "platform": "linux/amd64", "layout": layout}}, f)
    staged, _loaded = run_image_module(args_path)
    assert staged.get("changed") is True, staged
    again, loaded = run_image_module(args_path)
    assert again.get("changed") is False, again
    assert IMAGES + "oci_layout" in loaded  # it did read its source
    other = {"overlay": DRIVER + "overlay2_driver", "overlay2": DRIVER + "driver"}[layout]
    unneeded = {IMAGES + "policy", IMAGES + "signatures", IMAGES + "simple_signing", IMAGES + "sigstore",
                IMAGES + "docker_archive", IMAGES + "registry", IMAGES + "prefetch", DRIVER + "image_removal",
                other}
    assert loaded & unneeded == set()
