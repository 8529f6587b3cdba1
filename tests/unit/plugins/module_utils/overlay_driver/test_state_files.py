"""The home's small files: read without following links or blocking, replaced whole."""

import os
import threading

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import state_files


def test_write_atomic_replaces_whole_and_leaves_no_temp(tmp_path, tmp_dir_fd):
    state_files.write_atomic(tmp_dir_fd, "a.json", b'{"v": 1}\n')
    state_files.write_atomic(tmp_dir_fd, "a.json", b'{"v": 2}\n', 0o640)
    assert state_files.read_json(tmp_dir_fd, "a.json") == {"v": 2}
    assert os.listdir(str(tmp_path)) == ["a.json"]
    assert os.stat(str(tmp_path / "a.json")).st_mode & 0o777 == 0o640


def test_write_atomic_replaces_a_planted_symlink_and_never_writes_through_it(tmp_path, tmp_dir_fd):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    os.symlink(str(victim), str(tmp_path / "a.json"))
    state_files.write_atomic(tmp_dir_fd, "a.json", b"{}\n")
    assert victim.read_bytes() == b"keep"
    assert not os.path.islink(str(tmp_path / "a.json"))


@pytest.mark.parametrize("contents", [False, True], ids=["empty", "with contents"])
def test_write_atomic_sets_aside_a_directory_under_the_name(tmp_path, tmp_dir_fd, contents):
    """Every bookkeeping file of .strata is written this way, so a directory the remapped root put under one's
    name (in a .strata an earlier version gave it) neither fails the write nor is walked."""
    (tmp_path / "a.json").mkdir()
    if contents:
        (tmp_path / "a.json" / "inside").write_text("x")
    state_files.write_atomic(tmp_dir_fd, "a.json", b'{"v": 3}\n')
    assert state_files.read_json(tmp_dir_fd, "a.json") == {"v": 3}
    left = sorted(os.listdir(str(tmp_path)))
    if contents:
        assert len(left) == 2 and left[0].startswith(".tmp-aside-")
        assert (tmp_path / left[0] / "inside").read_text() == "x"
    else:
        assert left == ["a.json"]


def test_open_regular_and_read_roots_own_take_a_directory_as_missing(tmp_path, tmp_dir_fd):
    """A directory put in place of a bookkeeping file is no file, not an IsADirectoryError out of fdopen."""
    os.mkdir(str(tmp_path / "planted"))
    assert state_files.open_regular(tmp_dir_fd, "planted") is None
    assert state_files.read_roots_own(tmp_dir_fd, "planted", 100) is None


def test_readers_refuse_a_symlink_and_do_not_block_on_a_fifo(tmp_path, tmp_dir_fd):
    (tmp_path / "real.json").write_bytes(b"{}")
    os.symlink("real.json", str(tmp_path / "link.json"))
    os.mkfifo(str(tmp_path / "fifo.json"))
    assert state_files.read_json(tmp_dir_fd, "missing.json") is None
    assert state_files.open_regular(tmp_dir_fd, "link.json") is None
    with pytest.raises(OSError):
        state_files.read_json(tmp_dir_fd, "link.json")
    done = []

    def read_fifo():
        assert state_files.open_regular(tmp_dir_fd, "fifo.json") is None
        with pytest.raises(ValueError, match="not a regular file"):
            state_files.read_json(tmp_dir_fd, "fifo.json")
        done.append(True)

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # unblock the reader so the test process can end
        os.close(os.open(str(tmp_path / "fifo.json"), os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO blocked")
    assert done == [True]


@pytest.mark.parametrize("kind", ["file", "symlink", "fifo", "empty directory"])
def test_remove_entry_removes_whatever_is_under_the_name_without_following_or_blocking(tmp_path, kind):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("kept")
    name = tmp_path / "d" / "entry"
    name.parent.mkdir()
    if kind == "file":
        name.write_text("x")
    elif kind == "symlink":
        os.symlink(target, name)
    elif kind == "fifo":
        os.mkfifo(name)
    else:
        name.mkdir()
    fd = os.open(name.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert state_files.remove_entry(fd, "entry") is True
        assert state_files.remove_entry(fd, "entry") is False  # missing: nothing to do
    finally:
        os.close(fd)
    assert not os.path.lexists(name)
    assert (target / "keep").read_text() == "kept"


def test_remove_entry_renames_a_directory_with_contents_aside_without_walking_it(tmp_path):
    """Its owner may still fill it by a descriptor it kept: a walk could never end. The name is free afterwards,
    and what was in it is untouched, under a .tmp- name no reader takes for a record."""
    (tmp_path / "entry").mkdir()
    (tmp_path / "entry" / "inside").write_text("x")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert state_files.remove_entry(fd, "entry") is True
    finally:
        os.close(fd)
    (aside,) = os.listdir(tmp_path)
    assert aside.startswith(".tmp-aside-") and (tmp_path / aside / "inside").read_text() == "x"


def test_read_json_of_a_directory_is_refused_without_leaking_its_descriptor(tmp_path):
    """fdopen refuses a directory without closing the fd it was given: every read of a record a directory had
    replaced leaked one."""
    (tmp_path / "record.json").mkdir()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        before = len(os.listdir("/proc/self/fd"))
        for _attempt in range(5):
            with pytest.raises(ValueError, match="not a regular file"):
                state_files.read_json(fd, "record.json")
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(fd)
