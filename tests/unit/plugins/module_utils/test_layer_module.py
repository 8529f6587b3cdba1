"""A layer's path and its diff's size are returned as the manager made them."""

import json

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule

from layertools import run_isolated


def test_a_returned_path_adds_no_file_stats(tmp_path):
    result = {"path": str(tmp_path), "size": 6, "changed": True}
    assert LayerModule.add_path_info(None, dict(result)) == result
    assert issubclass(LayerModule, AnsibleModule) and AnsibleModule.add_path_info is not LayerModule.add_path_info


# A module run in a fresh interpreter, as a host runs it, that returns a warning in its result and one in
# its failure.
RUN = """
import sys
sys.argv = ["probe", %r]
from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule
module = LayerModule(argument_spec={"fail": {"type": "bool", "default": False}})
if module.params["fail"]:
    module.fail_json(msg="it failed", warnings=["the home holds a stray"])
module.exit_json(changed=False, warnings=["the home holds a stray"])
"""


@pytest.mark.parametrize("fail", [False, True], ids=["exit", "fail"])
def test_warnings_are_returned_without_a_deprecation(tmp_path, fail):
    """ansible-core 2.19 deprecates a `warnings` key passed to exit_json or fail_json (the managers return
    theirs so): the user sees each warning, and no deprecation about how it was passed."""
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"fail": fail}}))
    done = run_isolated(RUN % str(args), timeout=60)
    result = json.loads(done.stdout)
    assert bool(result.get("failed")) is fail
    # 2.19 returns each as a summary of the event the controller shows; earlier releases as its text
    assert [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]] == ["the home holds a stray"]
    assert "exit_json" not in json.dumps(result.get("deprecations", []))
