"""Layer records are written atomically, read back exactly, and only through the records dir fd."""

import json
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.records import (
    LayerRecord, delete_record, load_record, save_record)


@pytest.fixture
def records(tmp_dir_fd):
    return tmp_dir_fd


def test_round_trip_and_set_semantics(tmp_path, records):
    path = str(tmp_path / "l.json")
    rec = LayerRecord("l", parent="p", diff_id="sha256:" + "a" * 64, size=3, holders=["b", "a", "a"])
    save_record(records, rec)
    back = load_record(records, "l")
    assert back.holders == {"a", "b"} and back.parent == "p" and back.size == 3
    assert json.load(open(path))["holders"] == ["a", "b"]
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".tmp-")] == []


def test_empty_record_is_removed(tmp_path, records):
    path = str(tmp_path / "l.json")
    save_record(records, LayerRecord("l", holders=["a"]))
    save_record(records, LayerRecord("l"))
    assert not os.path.exists(path)
    assert load_record(records, "l").holders == set()


def test_corrupt_record_is_a_clear_error(tmp_path, records):
    path = tmp_path / "l.json"
    path.write_text("{not json")
    with pytest.raises(OverlayError, match="record cannot be read"):
        load_record(records, "l")
    path.write_text('{"holders": "x"}')
    with pytest.raises(OverlayError, match="expected format"):
        load_record(records, "l")


def test_a_symlinked_record_is_never_followed(tmp_path, records):
    """A record replaced by a symlink: not read through, not written through, the link itself deleted."""
    outside = tmp_path / "outside.json"
    outside.write_text('{"holders": ["planted"]}')
    os.symlink(str(outside), str(tmp_path / "l.json"))
    with pytest.raises(OverlayError, match="record cannot be read"):
        load_record(records, "l")
    save_record(records, LayerRecord("l", holders=["a"]))
    assert outside.read_text() == '{"holders": ["planted"]}'
    assert not os.path.islink(str(tmp_path / "l.json"))
    os.unlink(str(tmp_path / "l.json"))
    os.symlink(str(outside), str(tmp_path / "l.json"))
    delete_record(records, "l")
    assert outside.exists() and not os.path.lexists(str(tmp_path / "l.json"))


@pytest.mark.parametrize("field,value,says", [
    ("parent", {"id": "p"}, "parent: invalid parent id"),
    ("parent", "../etc", "parent: invalid parent id"),
    ("parent", 7, "parent: invalid parent id"),
    ("diff_id", ["sha256:" + "a" * 64], "diff_id must be"),
    ("diff_id", "sha256:xyz", "diff_id must be"),
    ("size", "12", "size must be a non-negative integer"),
    ("size", -1, "size must be a non-negative integer"),
    ("size", True, "size must be a non-negative integer"),
    ("holders", {"a": 1}, "holders must be a list"),
    ("holders", [["a"]], "holder must be a non-empty string"),
    ("holders", ["web\nlayer forged"], "control or non-printable"),
    ("holders", [""], "holder must be a non-empty string"),
    ("version", 2, "version 2 is not 1"),
    ("version", "1", "version '1' is not 1"),
    ("id", "other", "it names layer 'other'"),
])
def test_a_record_of_the_wrong_shape_names_the_layer_and_the_field(tmp_path, records, field, value, says):
    """Each field is checked for its type and shape: a damaged record is a clear error, never a TypeError later."""
    data = {"version": 1, "id": "l", "parent": "p", "diff_id": "sha256:" + "a" * 64, "size": 3, "holders": ["a"]}
    data[field] = value
    (tmp_path / "l.json").write_text(json.dumps(data))
    with pytest.raises(OverlayError, match="expected format") as raised:
        load_record(records, "l", "/home/.strata/layers")
    assert says in raised.value.message
    assert raised.value.layer == "l" and raised.value.path == "/home/.strata/layers/l.json"


def test_a_record_as_written_before_every_field_was_kept_still_loads(tmp_path, records):
    (tmp_path / "l.json").write_text('{"holders": ["web"], "parent": ""}')
    back = load_record(records, "l")
    assert back.holders == {"web"} and not back.parent and back.size is None


@pytest.mark.parametrize("owner, mode", [(100000, 0o600), (0, 0o620), (0, 0o602)], ids=["users", "group-w", "other-w"])
def test_a_record_not_roots_own_is_not_believed(tmp_path, records, owner, mode):
    """Root writes every record (0600). One of another uid's, or one others can write, was not root's: a .strata an
    earlier version gave the remapped root is read as it is until a writer takes it back, and that user could put
    a record of its own there (holders, diff_id and parent of its choosing) for readers to report."""
    path = tmp_path / "l.json"
    save_record(records, LayerRecord("l", holders=["root's"]))
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    with pytest.raises(OverlayError, match="must be root's and writable by root only"):
        load_record(records, "l")
    os.chown(path, 0, 0)
    os.chmod(path, 0o644)  # root's, readable by others: believed
    assert load_record(records, "l").holders == {"root's"}
