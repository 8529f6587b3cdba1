"""<home>/l/: overlay2's short links, the link and lower files, the depth limit."""

import os
import stat

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import short_links
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.walk import DIR_FLAGS


@pytest.fixture
def home_fd(scratch):
    path = os.path.join(scratch, "home")
    os.mkdir(path, 0o700)
    fd = os.open(path, DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.fixture
def tmp_fd(home_fd):
    """Where l/ is made before it is renamed in (the home's .strata/tmp)."""
    os.mkdir("tmp", 0o700, dir_fd=home_fd)
    fd = os.open("tmp", DIR_FLAGS, dir_fd=home_fd)
    try:
        yield fd
    finally:
        os.close(fd)


@pytest.fixture
def link_fd(home_fd, tmp_fd):
    fd = short_links.open_link_dir(home_fd, create=True, tmp_fd=tmp_fd)
    try:
        yield fd
    finally:
        os.close(fd)


def layer(home_fd, layer_id):
    """<home>/<id>/diff made, and the layer directory opened."""
    os.makedirs("/proc/self/fd/%d/%s/diff" % (home_fd, layer_id))
    return os.open(layer_id, DIR_FLAGS, dir_fd=home_fd)


def test_link_ids_are_dockers_shape():
    ids = {short_links.new_link_id() for _attempt in range(200)}
    assert len(ids) == 200
    for link in ids:
        assert len(link) == 26 and short_links.validate_link_id(link) == link
        assert set(link) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")  # base32, as Docker's generateID


def test_a_link_points_at_the_layers_diff_and_resolves_back(home_fd, link_fd):
    st = os.fstat(link_fd)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0
    link = short_links.make_link(link_fd, "base")
    assert os.readlink(link, dir_fd=link_fd) == "../base/diff"
    assert short_links.resolve_link(link_fd, link) == "base"
    short_links.remove_link(link_fd, link)
    assert os.listdir(link_fd) == []


def test_a_planted_name_is_never_reused_or_followed(scratch, link_fd, monkeypatch):
    planted = "A" * 26
    outside = os.path.join(scratch, "outside")
    os.mkdir(outside)
    os.symlink(outside, planted, dir_fd=link_fd)
    names = iter([planted, "B" * 26])
    monkeypatch.setattr(short_links, "new_link_id", lambda: next(names))
    assert short_links.make_link(link_fd, "base") == "B" * 26
    assert os.readlink(planted, dir_fd=link_fd) == outside and os.listdir(outside) == []


def test_the_link_dir_is_refused_when_it_is_a_symlink(scratch, home_fd, tmp_fd):
    os.symlink(scratch, "l", dir_fd=home_fd)
    with pytest.raises(OverlayError, match="symlink or not a directory"):
        short_links.open_link_dir(home_fd, create=True, tmp_fd=tmp_fd)


@pytest.mark.parametrize("target", ["../../etc/diff", "/etc/diff", "../base/root", "../base/diff/..", "../-x/diff",
                                    "../l/diff", "base/diff"])
def test_a_link_pointing_anywhere_else_is_refused(link_fd, target):
    os.symlink(target, "C" * 26, dir_fd=link_fd)
    with pytest.raises(OverlayError, match="short link l/C{26}"):
        short_links.resolve_link(link_fd, "C" * 26)


def test_link_and_lower_files_round_trip(home_fd):
    fd = layer(home_fd, "child")
    try:
        short_links.write_link_file(fd, "D" * 26)
        short_links.write_lower(fd, ["E" * 26, "F" * 26])
        assert short_links.read_link_file(fd) == "D" * 26
        assert short_links.read_lower(fd) == ["E" * 26, "F" * 26]
        with open("/proc/self/fd/%d/lower" % fd) as f:
            assert f.read() == "l/%s:l/%s" % ("E" * 26, "F" * 26)
        assert stat.S_IMODE(os.stat("lower", dir_fd=fd).st_mode) == 0o644
        with pytest.raises(FileExistsError):  # never written through what is there
            short_links.write_lower(fd, ["E" * 26])
    finally:
        os.close(fd)
    base = layer(home_fd, "base")
    try:
        assert short_links.read_lower(base) == []  # a base layer has no lower file
        with pytest.raises(OverlayError, match="has no link file"):
            short_links.read_link_file(base)
    finally:
        os.close(base)


@pytest.mark.parametrize("plant", ["symlink", "fifo", "dir", "garbage", "absolute", "too-deep", "long"])
def test_a_hostile_lower_file_is_refused_without_following_or_blocking(scratch, home_fd, plant):
    fd = layer(home_fd, "victim")
    try:
        secret = os.path.join(scratch, "secret")
        with open(secret, "w") as f:
            f.write("l/" + "G" * 26)
        if plant == "symlink":
            os.symlink(secret, "lower", dir_fd=fd)
        elif plant == "fifo":
            os.mkfifo("lower", dir_fd=fd)
        elif plant == "dir":
            os.mkdir("lower", dir_fd=fd)
        else:
            text = {"garbage": "l/short", "absolute": "/etc/" + "G" * 26,
                    "too-deep": ":".join(["l/" + "G" * 26] * 129), "long": "x" * 100000}[plant]
            with open("/proc/self/fd/%d/lower" % fd, "w") as f:
                f.write(text)
        with pytest.raises(OverlayError):
            short_links.read_lower(fd)
    finally:
        os.close(fd)


def test_depth_is_dockers_128_and_refused_past_it():
    assert len(short_links.child_lower("H" * 26, ["I" * 26] * 127)) == 128
    with pytest.raises(OverlayError, match="stack 129 lower layers; an overlay2 mount stacks at most 128"):
        short_links.child_lower("H" * 26, ["I" * 26] * 128, layer_id="deep")
