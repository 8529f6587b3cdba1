"""What the overlay_layers role removes: declared absent entries, and with prune only what it staged."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.strata.overlay.plugins.filter.layer_removals import layer_removals


def removals(*args, **kwargs):
    plan = layer_removals(*args, **kwargs)
    del plan["stage"], plan["keep_mounted"]
    assert plan.pop("images") == []
    return plan


def inode(layer_id):
    """The inode a layer's directory has in these tests' homes (its id's letters, summed)."""
    return sum(map(ord, layer_id))


def host(*layers):
    return [{"id": i, "parent": p, "holders": list(h), "inode": inode(i)} for i, p, h in layers]


def staged(*ids):
    """The role's record entries of layers it made."""
    return [{"id": i, "inode": inode(i)} for i in ids]


EXISTING = host(("base", None, ()), ("mid", "base", ()), ("top", "mid", ["web"]), ("keep", "base", ()),
                ("manual", None, ()))


def test_without_prune_only_absent_entries_go():
    plan = removals([{"id": "base"}, {"id": "keep", "parent": "base"}],
                    existing=EXISTING, record={"layers": staged("mid", "top")})
    assert plan == {"mounts": [], "layers": [], "kept": [], "problems": []}


def test_absent_entries_go_leaf_first_with_their_released_holders():
    plan = removals([{"id": "mid", "state": "absent"}, {"id": "top", "state": "absent"}],
                    mounts=[{"id": "top", "holder": "web", "state": "absent"}], existing=EXISTING)
    assert plan == {"mounts": [{"id": "top", "holder": "web"}],
                    "layers": [{"id": "top", "force": False}, {"id": "mid", "force": False}],
                    "kept": [], "problems": []}


def test_absent_layers_still_held_or_built_on_are_problems_unless_forced():
    plan = removals([{"id": "mid", "state": "absent"}, {"id": "top", "state": "absent"}], existing=EXISTING)
    assert plan["layers"] == [] and plan["problems"] == [
        "layer mid is declared absent but layer top is built on it (release its holders with state: absent mount "
        "entries or set force: true on the entry or overlay_force: true; declare the layers built on it absent too)",
        "layer top is declared absent but still held by web (release its holders with state: absent mount "
        "entries or set force: true on the entry or overlay_force: true; declare the layers built on it absent too)",
    ]
    forced = removals([{"id": "mid", "state": "absent"}, {"id": "top", "state": "absent", "force": True}],
                      existing=EXISTING)
    assert forced["problems"] == [] and forced["layers"] == [{"id": "top", "force": True},
                                                             {"id": "mid", "force": False}]


def test_prune_removes_what_the_role_staged_and_the_declaration_dropped():
    record = {"layers": staged("base", "mid", "top", "keep"), "mounts": [{"id": "top", "holder": "web"}]}
    plan = removals([{"id": "base"}, {"id": "keep", "parent": "base"}], existing=EXISTING,
                    record=record, prune=True)
    assert plan == {"mounts": [{"id": "top", "holder": "web"}],
                    "layers": [{"id": "top", "force": False}, {"id": "mid", "force": False}],
                    "kept": [], "problems": []}


def test_prune_leaves_what_the_role_did_not_stage():
    record = {"layers": staged("a", "b"), "mounts": [{"id": "a", "holder": "web"}]}
    existing = host(("a", None, ["web", "by-hand"]), ("b", "a", ()), ("c", "b", ()))
    plan = removals([], existing=existing, record=record, prune=True)
    assert plan["mounts"] == [{"id": "a", "holder": "web"}] and plan["layers"] == [] and plan["problems"] == []
    assert plan["kept"] == [{"id": "a", "reason": "still held by by-hand, which this role did not stage"},
                            {"id": "b", "reason": "layer c is built on it"}]


def test_prune_keeps_declared_mounts_and_ignores_what_is_gone():
    record = {"layers": staged("a", "vanished"), "mounts": [{"id": "a", "holder": "web"}, {"id": "a"}]}
    plan = removals([{"id": "a"}], mounts=[{"id": "a", "holder": "web"}],
                    existing=host(("a", None, ["web", "ansible"])), record=record, prune=True)
    assert plan == {"mounts": [{"id": "a", "holder": "ansible"}], "layers": [], "kept": [], "problems": []}


def test_bad_input_is_refused():
    with pytest.raises(AnsibleFilterError, match="record as a dict"):
        layer_removals([], record=["a"])
    with pytest.raises(AnsibleFilterError, match="lists of layer and mount entries"):
        layer_removals("a")


def test_present_entries_in_order_and_mounts_with_their_default_holder():
    plan = layer_removals([{"id": "b"}, {"id": "x", "state": "absent"}, {"id": "a", "state": "present"}],
                          mounts=[{"id": "a"}, {"id": "b", "holder": "web", "state": "absent"}])
    assert plan["stage"] == [{"id": "b"}, {"id": "a", "state": "present"}]
    assert plan["keep_mounted"] == [{"id": "a", "holder": "ansible"}]


def test_mount_entry_has_no_nulls_in_check_mode():
    from ansible_collections.strata.overlay.plugins.filter.mount_entry import mount_entry
    real = {"overlay_mount": {"id": "app", "holder": "web"}, "path": "/h/app/merged", "mounted": True,
            "changed": True, "layer": {"exists": True}}
    assert mount_entry(real, "/h") == {"id": "app", "holder": "web", "path": "/h/app/merged", "mounted": True}
    check = {"overlay_mount": {"id": "app", "holder": "web"}, "path": None, "mounted": False, "changed": True,
             "layer": {"exists": False}}
    assert mount_entry(check, "/h") == {"id": "app", "holder": "web", "path": "/h/app/merged", "mounted": True}
    with pytest.raises(AnsibleFilterError):
        mount_entry({"path": "/x"}, "/h")


def test_mount_entries_take_overlay_mounts_words_too():
    """overlay_mount says mounted/unmounted, the role's entries said present/absent and refused the module's words."""
    plan = layer_removals([], mounts=[{"id": "top", "holder": "web", "state": "unmounted"},
                                      {"id": "keep", "holder": "db", "state": "mounted"}], existing=EXISTING)
    assert plan["problems"] == []
    assert plan["mounts"] == [{"id": "top", "holder": "web"}]
    assert plan["keep_mounted"] == [{"id": "keep", "holder": "db"}]
    plan = layer_removals([], mounts=[{"id": "top", "state": "gone"}], existing=EXISTING)
    assert plan["problems"] == ["overlay_mounts[0]: state 'gone' (present or mounted, absent or unmounted)"]


def test_prune_keeps_a_layer_made_again_on_the_same_inode_number_with_another_generation():
    """ext4 gives a freed inode number out again at once: the generation tells the directories apart."""
    existing = host(("a", None, ()), ("b", None, ()), ("c", None, ()))
    for layer, generation in zip(existing, (2, 5, None)):
        layer["generation"] = generation
    record = {"layers": [{"id": "a", "inode": inode("a"), "generation": 1},
                         {"id": "b", "inode": inode("b"), "generation": 5},
                         {"id": "c", "inode": inode("c"), "generation": None}]}
    plan = removals([], existing=existing, record=record, prune=True)
    assert sorted(entry["id"] for entry in plan["layers"]) == ["b", "c"]
    assert [entry["id"] for entry in plan["kept"]] == ["a"] and "made again" in plan["kept"][0]["reason"]


def test_prune_keeps_a_layer_made_again_since_or_recorded_without_its_inode():
    existing = host(("a", None, ()), ("b", None, ()), ("c", None, ()))
    record = {"layers": [{"id": "a", "inode": inode("a")}, {"id": "b", "inode": 1}, "c"]}
    plan = removals([], existing=existing, record=record, prune=True)
    assert plan["layers"] == [{"id": "a", "force": False}]
    assert [k["id"] for k in plan["kept"]] == ["b", "c"]
    assert "made again since this role staged it" in plan["kept"][0]["reason"]
    assert "without its inode" in plan["kept"][1]["reason"]


@pytest.mark.parametrize("record,message", [
    ({"layers": "abc"}, "layers is not a list"),
    ({"layers": [{"id": "a"}]}, "not {id, inode, generation}"),
    ({"layers": [{"id": "a", "inode": True}]}, "not {id, inode, generation}"),
    ({"layers": [{"id": "a", "inode": 1, "generation": "x"}]}, "not {id, inode, generation}"),
    ({"mounts": ["a"]}, "not {id, holder}"),
    ({"images": [{"image": ""}]}, "not {id, image, platform}"),
], ids=["layers-string", "no-inode", "bool-inode", "string-generation", "mount-string", "empty-image"])
def test_a_record_of_the_wrong_shape_is_refused_not_iterated(record, message):
    with pytest.raises(AnsibleFilterError, match="not in the expected format") as error:
        layer_removals([], existing=host(("a", None, ())), record=record, prune=True)
    assert message in str(error.value)


def test_image_entries_declared_absent_or_pruned_remove_their_images():
    layers = [{"id": "web", "image": "oci:/i:v1", "state": "absent"}, {"id": "db", "image": "oci:/i:v2"}]
    record = {"images": [{"id": "old", "image": "oci:/i:v0", "platform": ""},
                         {"id": "db", "image": "oci:/i:v2", "platform": ""}]}
    plan = layer_removals(layers, existing=host(("web", None, ())), record=record, prune=True)
    assert plan["layers"] == [{"id": "web", "force": False}]
    assert plan["images"] == [{"image": "oci:/i:v1", "platform": ""}, {"image": "oci:/i:v0", "platform": ""}]
    assert layer_removals(layers, existing=[], record=record)["images"] == [{"image": "oci:/i:v1", "platform": ""}]


def test_declared_mount_options_are_passed_on_and_left_out_when_not_declared():
    plan = layer_removals([{"id": "a"}, {"id": "b"}],
                          mounts=[{"id": "a", "mount_options": []}, {"id": "b", "mount_options": ["noexec"]},
                                  {"id": "b", "holder": "db"}])
    assert plan["keep_mounted"] == [{"id": "a", "holder": "ansible", "mount_options": []},
                                    {"id": "b", "holder": "ansible", "mount_options": ["noexec"]},
                                    {"id": "b", "holder": "db"}]
