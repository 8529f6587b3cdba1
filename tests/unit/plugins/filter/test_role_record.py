"""What the overlay_layers role records it staged: only layers it made (with their inode) and images it staged."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.strata.overlay.plugins.filter.role_record import role_record


def info(*layers):
    return [{"id": i, "inode": n} for i, n in layers]


PLAN = {"stage": [{"id": "base"}, {"id": "app", "parent": "base"}, {"id": "web", "image": "oci:/i:v1"}],
        "keep_mounted": [{"id": "app", "holder": "demo"}], "mounts": [], "layers": [], "images": []}


def test_only_layers_this_run_made_are_recorded_with_their_inode():
    before = info(("base", 10))  # there before the role declared it: never the role's to prune
    after = info(("base", 10), ("app", 11), ("web", 12))
    record = role_record({}, "/h", before, after, PLAN,
                         images=[{"id": "web", "image": "oci:/i:v1", "platform": "", "changed": True}])
    assert record == {"home": "/h", "layers": [{"id": "app", "inode": 11, "generation": None},
                                               {"id": "web", "inode": 12, "generation": None}],
                      "mounts": [{"id": "app", "holder": "demo"}],
                      "images": [{"id": "web", "image": "oci:/i:v1", "platform": ""}]}


def test_a_recorded_layer_made_again_since_or_removed_is_dropped():
    previous = {"layers": [{"id": "app", "inode": 11}, {"id": "gone", "inode": 13}, "legacy"], "mounts": [],
                "images": [{"id": "web", "image": "oci:/i:v1", "platform": ""}]}
    after = info(("base", 10), ("app", 99), ("legacy", 14))
    record = role_record(previous, "/h", info(("base", 10), ("app", 99), ("legacy", 14)), after,
                         dict(PLAN, images=[{"image": "oci:/i:v1", "platform": ""}]),
                         images=[{"id": "web", "image": "oci:/i:v1", "platform": "", "changed": False}])
    assert record["layers"] == [] and record["images"] == []


def test_a_recorded_layer_on_the_same_inode_number_with_another_generation_is_dropped():
    previous = {"layers": [{"id": "app", "inode": 11, "generation": 1}], "mounts": [], "images": []}
    after = [dict(layer, generation=2) for layer in info(("base", 10), ("app", 11))]
    record = role_record(previous, "/h", after, after, dict(PLAN, stage=[]))
    assert record["layers"] == []
    same = role_record(previous, "/h", after, [dict(after[0]), dict(after[1], generation=1)], dict(PLAN, stage=[]))
    assert same["layers"] == [{"id": "app", "inode": 11, "generation": 1}]


def test_an_image_already_staged_by_something_else_is_not_recorded():
    record = role_record({}, "/h", [], info(("web", 12)), PLAN,
                         images=[{"id": "web", "image": "oci:/i:v1", "platform": "", "changed": False}])
    assert record["images"] == []


def test_a_previous_record_of_the_wrong_shape_is_refused():
    with pytest.raises(AnsibleFilterError, match="not in the expected format"):
        role_record({"layers": {"app": 1}}, "/h", [], [], PLAN)
