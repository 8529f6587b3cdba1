"""The overlay_image action on the controller: loading it for a task whose host pulls (the usual case, and
every re-staging) must not load what only sending a file image or pulling on the controller uses."""

from layertools import run_isolated

IMAGES = "ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images."

CODE = """
import sys
import ansible.plugins.action
import ansible_collections.strata.overlay.plugins.action.overlay_image
print(" ".join(sorted(sys.modules)))
"""


def test_the_action_loads_no_stager_policy_network_or_cache_until_it_needs_them():
    done = run_isolated(CODE, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert IMAGES + "reference" in loaded  # what every task uses is there
    assert loaded & {IMAGES + name for name in ("stage", "policy", "blob_cache", "network", "registry",
                                                "download")} == set()
