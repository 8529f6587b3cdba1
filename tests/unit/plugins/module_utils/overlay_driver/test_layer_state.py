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


def test_held_and_released_predict_the_mount():
    before = layer_state.changed(layer_state.new("app", "base", "/h/app/merged"), holders=["web"], stale=True)
    held = layer_state.held(before, {"web", "db"})
    assert held["mounted"] and held["holders"] == ["db", "web"] and not held["stale"]
    mounted = dict(held, options={"lowerdir": "/h/base/root"})
    assert layer_state.released(mounted, {"db"}, False)["options"] == {"lowerdir": "/h/base/root"}
    gone = layer_state.released(mounted, set(), True)
    assert not gone["mounted"] and gone["options"] == {} and not gone["stale"]
