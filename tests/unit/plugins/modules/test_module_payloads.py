"""What each module ships to a host: its AnsiballZ payload, built by Ansible's own code.

A module's payload holds the module_utils it imports, found by Ansible's
scan of its imports. The image code (images/: registries, archives,
manifests) is for overlay_image alone: overlay_mount and overlay_info run on
every host of a fleet, and a common file importing too much would make
every one of those runs carry it.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

# Run in a child: installing Ansible's collection finder would change how this process imports
# ansible_collections for the other tests.
BUILD = r"""
import base64, io, json, re, sys, zipfile
from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
_AnsibleCollectionFinder(paths=[sys.argv[1]])._install()
from ansible.executor import module_common
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import module_loader
from ansible.template import Templar

templar = Templar(loader=DataLoader())
out = {}
for name in sys.argv[2:]:
    path = module_loader.find_plugin_with_context(name).plugin_resolved_path
    built = module_common.modify_module(module_name=name, module_path=path, module_args={}, templar=templar,
                                        task_vars={"ansible_python_interpreter": sys.executable},
                                        module_compression="ZIP_DEFLATED")
    data = built.b_module_data if hasattr(built, "b_module_data") else built[0]  # a tuple before 2.19
    zipped = (re.search(rb"zip_data='([A-Za-z0-9+/=]+)'", data)  # 2.19
              or re.search(rb"ZIPDATA = b?'([A-Za-z0-9+/=]+)'", data)  # 2.17, 2.18: the bytes' repr
              or re.search(rb'ZIPDATA = \"\"\"([A-Za-z0-9+/=\s]+)\"\"\"', data))
    files = zipfile.ZipFile(io.BytesIO(base64.b64decode(zipped.group(1)))).namelist()
    out[name] = {"bytes": len(data), "files": files}
print(json.dumps(out))
"""

MODULES = ("overlay_mount", "overlay_info", "overlay_image", "overlay_diff", "overlay_apply_diff", "overlay_image_info")
UTILS = "ansible_collections/strata/overlay/plugins/module_utils/"
IMAGES = UTILS + "overlay_driver/images/"


@pytest.fixture(scope="module")
def payloads(tmp_path_factory):
    root = tmp_path_factory.mktemp("collections")
    os.makedirs(root / "ansible_collections" / "strata")
    os.symlink(REPO, root / "ansible_collections" / "strata" / "overlay")
    names = ["ansible.builtin.stat"] + ["strata.overlay." + m for m in MODULES]
    done = subprocess.run([sys.executable, "-c", BUILD, str(root)] + names, capture_output=True, text=True,
                          check=False, cwd=str(root))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("module", ["overlay_mount", "overlay_info"])
def test_fleet_modules_do_not_ship_the_image_code(payloads, module):
    files = payloads["strata.overlay." + module]["files"]
    assert UTILS + "common.py" in files and UTILS + "overlay_driver/store.py" in files  # the scan found its imports
    assert [f for f in files if f.startswith(IMAGES)] == []


@pytest.mark.parametrize("module", ["overlay_mount", "overlay_info"])
def test_fleet_modules_ship_at_most_three_times_what_stat_does(payloads, module):
    """The target of docs/performance.md, in bytes of the payload (its content, not a time)."""
    assert payloads["strata.overlay." + module]["bytes"] <= 3 * payloads["ansible.builtin.stat"]["bytes"]


def test_overlay_image_ships_the_image_code(payloads):
    """The check above would pass for any payload that holds no module_utils at all: this one must hold them."""
    files = payloads["strata.overlay.overlay_image"]["files"]
    assert IMAGES + "stage.py" in files and IMAGES + "registry.py" in files


TAR_SPLIT = UTILS + "overlay_driver/tar_split.py"


@pytest.mark.parametrize("module, ships", [("overlay_mount", False), ("overlay_info", False), ("overlay_diff", True),
                                           ("overlay_apply_diff", True), ("overlay_image", True)])
def test_only_the_modules_that_apply_or_export_ship_the_tar_split_code(payloads, module, ships):
    """The store loads tar_split.py by name (records.tar_split_module): the modules that record or replay a layer's
    tarball must carry it, or they would silently do neither; the fleet modules need not."""
    assert (TAR_SPLIT in payloads["strata.overlay." + module]["files"]) is ships


TAR_EXPORT = UTILS + "overlay_driver/tar_export.py"


@pytest.mark.parametrize("module, ships", [("overlay_mount", False), ("overlay_info", False), ("overlay_diff", True)])
def test_only_the_module_that_exports_ships_the_exporter(payloads, module, ships):
    """The layout drivers load tar_export.py by name (graph_driver.exporter): overlay_diff, the one module that
    exports a layer, must carry it, or its export would fail; the fleet modules need not."""
    assert (TAR_EXPORT in payloads["strata.overlay." + module]["files"]) is ships


DRIVER = UTILS + "overlay_driver/"


def test_the_image_reader_ships_the_registry_client_and_not_the_stager_or_the_store(payloads):
    """overlay_image_info answers a re-staging that changes nothing (the overlay_image action asks it first): it
    carries the registry client and the home's reader, not what stages or writes (stage.py, the store, the layout
    drivers, the applier), which is most of overlay_image's payload."""
    files = payloads["strata.overlay.overlay_image_info"]["files"]
    assert IMAGES + "registry.py" in files and DRIVER + "image_presence.py" in files
    heavy = [DRIVER + name for name in ("store.py", "drivers.py", "graph_driver.py", "driver.py", "overlay2_driver.py",
                                        "tar_apply.py", "copy.py", "changes.py")] + [IMAGES + "stage.py"]
    assert [f for f in heavy if f in files] == []


def test_the_image_reader_ships_far_less_than_overlay_image(payloads):
    """What the split is for (docs/performance.md, re-staging): the payload a present image's re-run builds and
    sends, in bytes, not a time (0.54 of overlay_image's under ansible-core 2.19)."""
    assert payloads["strata.overlay.overlay_image_info"]["bytes"] <= 0.6 * payloads["strata.overlay.overlay_image"]["bytes"]
