"""HomeView.upkeep_due: null on a home a writer left, and each thing a writer's run would do, seen.

overlay_image's action answers for the module only when upkeep_due is null, so a home that needs none
of it must read so (or re-staging would never be answered by the reader), and each kind of upkeep
must be seen (or a writer's run would never come to do it). Each case then checks that a writer's
locked run does clear it.
"""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.image_presence import HomeView
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, opener, sha256

BASE = TarBuilder().dir("etc").file("etc/hostname", "base\n").bytes()
CHILD = TarBuilder().file("etc/hostname", "child\n").bytes()


@pytest.fixture
def staged(home):
    store = LayerStore(home)
    with store.locked():
        store.apply_diff("base", "", opener(BASE), diff_id=sha256(BASE))
        store.apply_diff("app", "base", opener(CHILD), diff_id=sha256(CHILD))
    store.close()
    return home


def _upkeep(home):
    with HomeView(home) as view:
        return view.upkeep_due()


def _write(path, data=b"", mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def test_a_home_a_writer_left_needs_none(staged):
    assert _upkeep(staged) is None
    with HomeView(staged) as view:
        assert view.has_layer("app", sha256(CHILD), "base")
        assert not view.has_layer("app", sha256(CHILD), "")
        assert not view.has_layer("app", sha256(BASE), "base")
    assert _upkeep(staged) is None  # read twice, changed nothing


def test_a_missing_home_needs_its_bookkeeping(home):
    assert _upkeep(home) == "the home has no bookkeeping yet"
    assert not os.path.exists(home)


def _leftover_in_tmp(home, layout):
    del layout
    _write(os.path.join(home, ".strata", "tmp", "blob-0123"), b"half a blob")
    return "tmp/ holds"


def _record_of_a_gone_layer(home, layout):
    del layout
    _write(os.path.join(home, ".strata", "layers", "f" * 64 + ".json"), b"{}")
    return "of a layer that is gone"


def _record_temp_of_a_killed_write(home, layout):
    del layout
    _write(os.path.join(home, ".strata", "layers", ".tmp-abc"), b"{")
    return "a write a killed run left"


def _later_bookkeeping_opened_to_others(home, layout):
    del layout
    path = os.path.join(home, ".strata", "image-records")
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o777)
    return "image-records is not root's 0700"


def _maps_not_recorded(home, layout):
    del layout
    os.unlink(os.path.join(home, ".strata", "maps.json"))
    return "records no id maps"


def _killed_apply_of_the_seed_layout(home, layout):
    if layout != "overlay":
        pytest.skip("the seed's layout drops a killed apply's overlay parts")
    assert os.path.isdir(os.path.join(home, "app", "root"))  # an applied child: its own root/
    _write(os.path.join(home, "app", "lower-id"), b"base", 0o644)  # what a killed apply had not dropped yet
    return "holds both root/ and lower-id"


def _lost_short_link(home, layout):
    if layout != "overlay2":
        pytest.skip("short links are overlay2's")
    links = os.path.join(home, "l")
    lost = sorted(os.listdir(links))[0]
    os.unlink(os.path.join(links, lost))
    return "l/%s of layer" % lost


def _short_link_to_no_layer(home, layout):
    if layout != "overlay2":
        pytest.skip("short links are overlay2's")
    links = os.path.join(home, "l")
    name = sorted(os.listdir(links))[0]
    os.unlink(os.path.join(links, name))
    os.symlink("../" + "e" * 64 + "/diff", os.path.join(links, name))
    return "leads to no layer"


def _mark_of_a_gone_layer(home, layout):
    del layout
    marks = os.path.join(home, ".strata", "made-merged")
    if not os.path.isdir(marks):
        os.mkdir(marks, 0o700)
    _write(os.path.join(marks, "d" * 64))
    return "marks a layer that is gone"


@pytest.mark.parametrize("damage", [_leftover_in_tmp, _record_of_a_gone_layer, _record_temp_of_a_killed_write,
                                    _later_bookkeeping_opened_to_others, _maps_not_recorded,
                                    _killed_apply_of_the_seed_layout, _lost_short_link, _short_link_to_no_layer,
                                    _mark_of_a_gone_layer], ids=lambda f: f.__name__.strip("_"))
def test_each_upkeep_a_writer_would_do_is_seen_and_a_writer_does_it(staged, layout, damage):
    said = damage(staged, layout)
    due = _upkeep(staged)
    assert due is not None and said in due, due
    store = LayerStore(staged)
    try:
        with store.locked():
            pass
    finally:
        store.close()
    assert _upkeep(staged) is None


@pytest.mark.parametrize("mode, owner", [(0o755, 0), (0o700, 100000)], ids=["opened to others", "another uid"])
def test_bookkeeping_a_writer_refuses_is_refused_by_the_reader_too(staged, mode, owner):
    """layers/ 0755, or tmp/ of a uid the home's maps do not name: no writer takes it back, every one refuses
    the home; the reader refuses it the same way, so the action leaves the task to the module's refusal."""
    path = os.path.join(staged, ".strata", "layers" if owner == 0 else "tmp")
    os.chmod(path, mode)
    os.chown(path, owner, owner)
    with pytest.raises(OverlayError) as read:
        HomeView(staged)
    with pytest.raises(OverlayError) as written:
        LayerStore(staged)
    assert read.value.message == written.value.message


def _default_acl_on_the_records(home, layout):
    """A default ACL on root's 0700 layers/: no writer removes it (it seals only what it takes back)."""
    del layout
    # version 2; user:: rwx; user:1000: rwx; group:: ---; mask:: rwx; other:: ---
    acl = bytes.fromhex("".join(("02000000", "01000700ffffffff", "02000700e8030000", "04000000ffffffff",
                                 "10000700ffffffff", "20000000ffffffff")))
    try:
        os.setxattr(os.path.join(home, ".strata", "layers"), "system.posix_acl_default", acl)
    except OSError as e:
        pytest.skip("no POSIX ACLs here: %s" % e)


def _foreign_record_of_a_present_layer(home, layout):
    """Not root's: never believed (the layer reads as not the image's), never removed."""
    del layout
    os.chown(os.path.join(home, ".strata", "layers", "app.json"), 1000, 1000)


def _directory_among_the_marks(home, layout):
    del layout
    os.makedirs(os.path.join(home, ".strata", "made-merged", "d" * 64), mode=0o700)
    os.chmod(os.path.join(home, ".strata", "made-merged"), 0o700)


def _odd_entry_in_l(home, layout):
    if layout != "overlay2":
        pytest.skip("short links are overlay2's")
    _write(os.path.join(home, "l", "NOTALINK"), b"x")


def _layer_without_a_link_file_and_its_link_lost(home, layout):
    if layout != "overlay2":
        pytest.skip("short links are overlay2's")
    link = open(os.path.join(home, "app", "link")).read().strip()
    os.unlink(os.path.join(home, "app", "link"))
    os.unlink(os.path.join(home, "l", link))


@pytest.mark.parametrize("oddity", [_default_acl_on_the_records, _foreign_record_of_a_present_layer,
                                    _directory_among_the_marks, _odd_entry_in_l,
                                    _layer_without_a_link_file_and_its_link_lost],
                         ids=lambda f: f.__name__.strip("_"))
def test_what_a_writer_leaves_as_it_is_is_no_upkeep(staged, layout, oddity):
    """Or the fast path would be off for that home for good: every run would go to the module, which changes
    none of it. Checked both ways: the reader says none, and a writer's locked run changes nothing it sees."""
    oddity(staged, layout)
    assert _upkeep(staged) is None
    before = _tree(staged)
    store = LayerStore(staged)
    try:
        with store.locked():
            pass
    finally:
        store.close()
    assert _tree(staged) == before


def _tree(path):
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            out[os.path.relpath(os.path.join(root, name), path)] = (st.st_mode, st.st_uid, st.st_size)
    return out


def test_a_layer_name_made_a_link_is_not_followed(staged, layout, scratch, monkeypatch):
    """In a remapped home the remapped root may put a link to anywhere in the place of a layer's directory,
    after the home was opened and its entries checked: the reader must neither tell what exists there nor
    read it (its messages reach the task's result)."""
    outside = os.path.join(scratch, "outside")
    os.makedirs(os.path.join(outside, "root"))
    os.mkdir(os.path.join(outside, "diff"))
    _write(os.path.join(outside, "lower-id"), b"base", 0o644)
    secret = "SECRETLINKNAMEOUTSIDEHOMEZ"
    _write(os.path.join(outside, "link"), secret.encode(), 0o644)
    if layout == "overlay2":  # l/ short of links: the reader then reads each layer's link file
        links = os.path.join(staged, "l")
        for name in os.listdir(links):
            os.unlink(os.path.join(links, name))
    with HomeView(staged) as view:
        listed = view.dirs.layer_ids

        def listed_then_swapped():  # the swap lands just after the layers were listed
            ids = listed()
            os.rename(os.path.join(staged, "app"), os.path.join(scratch, "app-away"))
            os.symlink(outside, os.path.join(staged, "app"))
            return ids
        monkeypatch.setattr(view.dirs, "layer_ids", listed_then_swapped)
        found = view.upkeep_due() or ""
    assert "holds both root/ and lower-id" not in found
    assert secret not in found
