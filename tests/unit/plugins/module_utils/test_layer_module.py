"""A layer's path and its diff's size are returned as the manager made them."""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.strata.overlay.plugins.module_utils.layer_module import LayerModule


def test_a_returned_path_adds_no_file_stats(tmp_path):
    result = {"path": str(tmp_path), "size": 6, "changed": True}
    assert LayerModule.add_path_info(None, dict(result)) == result
    assert issubclass(LayerModule, AnsibleModule) and AnsibleModule.add_path_info is not LayerModule.add_path_info
