"""Layer records are written atomically and read back exactly."""

import json
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.holders import (
    LayerRecord, load_record, save_record)


def test_round_trip_and_set_semantics(tmp_path):
    path = str(tmp_path / "l.json")
    rec = LayerRecord("l", parent="p", diff_id="sha256:" + "a" * 64, size=3, holders=["b", "a", "a"])
    save_record(path, rec)
    back = load_record(path, "l")
    assert back.holders == {"a", "b"} and back.parent == "p" and back.size == 3
    assert json.load(open(path))["holders"] == ["a", "b"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []


def test_empty_record_is_removed(tmp_path):
    path = str(tmp_path / "l.json")
    save_record(path, LayerRecord("l", holders=["a"]))
    save_record(path, LayerRecord("l"))
    assert not os.path.exists(path)
    assert load_record(path, "l").holders == set()


def test_corrupt_record_is_a_clear_error(tmp_path):
    path = tmp_path / "l.json"
    path.write_text("{not json")
    with pytest.raises(OverlayError, match="record cannot be read"):
        load_record(str(path), "l")
    path.write_text('{"holders": "x"}')
    with pytest.raises(OverlayError, match="expected format"):
        load_record(str(path), "l")
