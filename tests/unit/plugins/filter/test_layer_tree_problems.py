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


def test_image_entries_are_parents_and_take_no_parent_or_src():
    tree = [{"id": "web", "image": "oci:/srv/images/web:1"}, {"id": "cfg", "parent": "web"}]
    assert layer_tree_problems(tree) == []
    assert layer_tree_problems([{"id": "web", "image": "oci:x", "parent": "base", "src": "a.tar"}],
                               existing=["base"]) == [
        "overlay_layers[0]: layer web is an image entry: parent cannot be given (the layer is made on the "
        "image's top layer)",
        "overlay_layers[0]: layer web is an image entry: src cannot be given (the layer is made on the "
        "image's top layer)",
    ]


def test_absent_entries_need_only_an_id_and_parent_nothing():
    tree = [{"id": "old", "state": "absent"}, {"id": "base"}, {"id": "app", "parent": "old"},
            {"id": "base", "state": "absent"}, {"id": "x", "state": "gone"}]
    assert layer_tree_problems(tree, existing=["old"]) == [
        "overlay_layers[2]: parent old of layer app is declared absent",
        "overlay_layers[3]: layer base is declared twice",
        "overlay_layers[4]: layer x has state 'gone' (present or absent)",
    ]
