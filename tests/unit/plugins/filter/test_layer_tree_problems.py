"""The declared-tree check used by the overlay_layers role before it changes anything."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.strata.overlay.plugins.filter.layer_tree_problems import layer_tree_problems


def test_a_good_tree_has_no_problems():
    tree = [{"id": "base"}, {"id": "child", "parent": "base"}, {"id": "app", "parent": "child"}]
    assert layer_tree_problems(tree) == []
    assert layer_tree_problems([{"id": "app", "parent": "on-host"}], existing=["on-host"]) == []


def test_every_problem_is_named():
    tree = [
        {"id": "child", "parent": "base"},
        {"id": "base"},
        {"id": "base"},
        {"id": "../x"},
        {"id": "loop", "parent": "loop"},
        {"id": "lost", "parent": "nowhere"},
        {"id": "odd", "parent": "a/b"},
        "not a dict",
    ]
    assert layer_tree_problems(tree) == [
        "overlay_layers[0]: layer child comes before its parent base",
        "overlay_layers[2]: layer base is declared twice",
        "overlay_layers[3]: invalid layer id '../x'",
        "overlay_layers[4]: layer loop is its own parent",
        "overlay_layers[5]: parent nowhere of layer lost is neither declared before it nor on the host",
        "overlay_layers[6]: layer odd has an invalid parent id 'a/b'",
        "overlay_layers[7] is not a dict with an id",
    ]


def test_not_a_list():
    with pytest.raises(AnsibleFilterError):
        layer_tree_problems({"id": "x"})
