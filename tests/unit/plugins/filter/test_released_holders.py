import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.strata.overlay.plugins.filter.released_holders import released_holders


def test_each_holder_a_forced_removal_dropped_once_per_layer():
    results = [{"overlay_removal": {"id": "top", "force": True}, "released": ["backup", "web"], "changed": True},
               {"overlay_removal": {"id": "mid", "force": False}, "released": [], "changed": True},
               {"overlay_removal": {"id": "base", "force": False}, "skipped": True},
               {"overlay_removal": {"id": "x"}, "msg": "would remove layer x"}]
    assert released_holders(results) == [{"id": "top", "holder": "backup"}, {"id": "top", "holder": "web"}]
    assert released_holders([]) == []
    with pytest.raises(AnsibleFilterError):
        released_holders({"results": []})
