"""One state shape for every layer, present, absent or predicted by a check run."""

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import layer_state
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.records import LayerRecord


def test_absent_present_and_new_share_one_shape():
    record = LayerRecord("app")
    record.holders.update({"web", "db"})
    present = layer_state.present("app", "overlay", "base", {}, record, None, False, "/h/app/merged")
    assert set(present) == set(layer_state.absent("app")) == set(layer_state.new("app", "base", "/h/app/merged"))
    assert present["holders"] == ["db", "web"] and present["stale"] and not present["foreign_mount"]
    assert present["options"] == {} and present["path"] == "/h/app/merged"


def test_new_layers_kind_follows_its_parent():
    assert layer_state.new("base", "", "/h/base/merged")["kind"] == "root"
    assert layer_state.new("app", "base", "/h/app/merged", mounted=True)["kind"] == "overlay"


def test_changed_leaves_the_state_before_as_it_was():
    before = layer_state.absent("app")
    after = layer_state.changed(before, holders=["web"])
    assert before["holders"] == [] and after["holders"] == ["web"]
