"""An overlay2 home that lost l/ or a short link is repaired from the layers' link files, on real mounts; what is
there but wrong (a link pointing elsewhere, an l that is not a directory, a link file naming another layer's
link or no valid link) stays refused and untouched."""

import io
import os
import shutil

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.overlay2_driver import Overlay2Driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, snapshot

# the overlay2 layout's l/ and link files
pytestmark = pytest.mark.layout("overlay2")

BASE = TarBuilder().dir("etc").file("etc/a", "a").bytes()
CHILD = TarBuilder().dir("etc").file("etc/c", "c").bytes()


@pytest.fixture
def driver(overlay2_driver):
    return overlay2_driver


def chain(driver, depth=2):
    """layer0 (BASE), layer1 (CHILD) on it, and plain layers on top up to depth; their links by id."""
    driver.create_applied("layer0", "", io.BytesIO(BASE))
    driver.create_applied("layer1", "layer0", io.BytesIO(CHILD))
    for n in range(2, depth):
        driver.create("layer%d" % n, "layer%d" % (n - 1))
    return {layer_id: driver.own_link(layer_id) for layer_id in driver.layer_ids()}


def links_dir(home):
    """l/ as it is on disk: its owner and mode, and each link's owner and target."""
    path = os.path.join(home, "l")
    st = os.lstat(path)
    links = {}
    for name in os.listdir(path):
        link = os.lstat(os.path.join(path, name))
        links[name] = (link.st_uid, link.st_gid, os.readlink(os.path.join(path, name)))
    return (st.st_uid, st.st_gid, oct(st.st_mode)), links


def assert_mounts_chain(driver, layer_id="layer1"):
    merged = driver.get(layer_id)
    try:
        assert sorted(os.listdir(os.path.join(merged, "etc"))) == ["a", "c"]
    finally:
        driver.put(layer_id)


def test_l_renamed_away_is_made_again_on_mount(driver, scratch):
    chain(driver)
    before = links_dir(driver.home)
    os.rename(os.path.join(driver.home, "l"), os.path.join(scratch, "l-away"))
    assert_mounts_chain(driver)
    assert links_dir(driver.home) == before


def test_l_removed_is_made_again_by_the_next_writer_and_said(home):
    d = Overlay2Driver(home)
    try:
        chain(d, depth=3)
    finally:
        d.close()
    before = links_dir(home)
    shutil.rmtree(os.path.join(home, "l"))
    store = LayerStore(home)
    try:
        with store.locked():
            assert store.repaired == [os.path.join(home, "l")] + sorted(
                os.path.join(home, "l", link) for link in before[1])
            assert store.state("layer2")["problem"] is None
    finally:
        store.close()
    assert links_dir(home) == before


def test_one_link_deleted_is_made_again_on_mount(driver):
    links = chain(driver, depth=3)
    os.unlink(os.path.join(driver.home, "l", links["layer0"]))
    before_mount = sorted(os.listdir(os.path.join(driver.home, "l")))
    assert links["layer0"] not in before_mount
    merged = driver.get("layer2")
    try:
        assert sorted(os.listdir(os.path.join(merged, "etc"))) == ["a", "c"]
    finally:
        driver.put("layer2")
    assert os.readlink(os.path.join(driver.home, "l", links["layer0"])) == "../layer0/diff"


def test_a_link_swapped_for_another_target_is_still_refused_and_left(driver):
    links = chain(driver, depth=3)
    path = os.path.join(driver.home, "l", links["layer0"])
    os.unlink(path)
    os.symlink("../layer1/diff", path)
    with pytest.raises(OverlayError, match="whose own link is another one"):
        driver.get("layer2")
    assert os.readlink(path) == "../layer1/diff"
    assert "whose own link is another one" in driver.layer_problem("layer2")


def test_a_link_file_naming_another_layers_link_is_never_repaired(driver):
    """layer0's link is gone and layer1's link file names it too: which layer it points at cannot be known."""
    links = chain(driver, depth=3)
    os.unlink(os.path.join(driver.home, "l", links["layer0"]))
    link_file = os.path.join(driver.home, "layer1", "link")
    os.chmod(link_file, 0o644)
    with open(link_file, "w") as f:
        f.write(links["layer0"])
    with pytest.raises(OverlayError, match="cannot be read"):
        driver.get("layer1")
    assert not os.path.lexists(os.path.join(driver.home, "l", links["layer0"]))
    assert driver.repairs_due() == []


def test_a_link_file_with_an_invalid_link_name_is_never_repaired(driver):
    links = chain(driver)
    os.unlink(os.path.join(driver.home, "l", links["layer0"]))
    with open(os.path.join(driver.home, "layer0", "link"), "w") as f:
        f.write(links["layer0"].lower())
    with pytest.raises(OverlayError):
        driver.get("layer1")
    assert os.listdir(os.path.join(driver.home, "l")) == [links["layer1"]]


def test_an_l_that_is_not_a_directory_is_still_refused_and_left(driver, scratch):
    chain(driver)
    path = os.path.join(driver.home, "l")
    shutil.rmtree(path)
    with open(path, "w") as f:
        f.write("not links\n")
    with pytest.raises(OverlayError, match="symlink or not a directory"):
        driver.get("layer1")
    with open(path) as f:
        assert f.read() == "not links\n"
    os.unlink(path)
    os.symlink(scratch, path)
    with pytest.raises(OverlayError, match="symlink or not a directory"):
        driver.get("layer1")
    assert os.readlink(path) == scratch


def test_a_check_run_reports_the_repair_and_changes_nothing(home):
    d = Overlay2Driver(home)
    try:
        links = chain(d, depth=3)
    finally:
        d.close()
    shutil.rmtree(os.path.join(home, "l"))
    before = snapshot(home)
    store = LayerStore.for_check_run(home)
    try:
        with store.locked():
            outcome = store.ensure_mounted("layer2", "web", check_mode=True)
            assert outcome.changed and outcome.before["problem"] is None
            assert store.repaired == [os.path.join(home, "l")] + sorted(
                os.path.join(home, "l", link) for link in links.values())
    finally:
        store.close()
    assert snapshot(home) == before


def test_a_repaired_link_is_made_where_its_name_is_free_only(driver, monkeypatch):
    """Between the plan and the making, something takes the name: it is left as it is, not replaced."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import short_links

    links = chain(driver)
    path = os.path.join(driver.home, "l", links["layer0"])
    os.unlink(path)
    real = short_links.restore_link

    def planted_first(link_fd, link, layer_id):
        os.symlink("../elsewhere/diff", link, dir_fd=link_fd)
        return real(link_fd, link, layer_id)

    monkeypatch.setattr(short_links, "restore_link", planted_first)
    assert driver.make_repairs() == []
    assert os.readlink(path) == "../elsewhere/diff"


def test_a_writer_with_every_link_in_place_reads_no_link_file(driver, monkeypatch):
    """Every writer's call looks for lost links; with an entry in l/ for each layer it lists l/ alone instead of
    reading every layer's link file (a cost that grew with the home)."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import short_links

    chain(driver, depth=4)

    def unexpected(_layer_fd):
        raise AssertionError("a link file was read although every link is in place")

    monkeypatch.setattr(short_links, "read_link_file", unexpected)
    assert driver.make_repairs() == []
    assert driver.repairs_due() == []


def test_a_lost_link_with_a_stray_entry_in_its_place_is_made_again_by_the_mount_that_needs_it(driver):
    """l/ counts as many entries as layers, one of them a stray: the writer's look by count misses the lost link,
    and the mount whose lowers name it makes it again."""
    links = chain(driver, depth=3)
    os.unlink(os.path.join(driver.home, "l", links["layer0"]))
    os.symlink("../gone/diff", os.path.join(driver.home, "l", "Z" * 26))
    assert driver.make_repairs() == []
    assert_mounts_chain(driver, "layer2")
    assert os.readlink(os.path.join(driver.home, "l", links["layer0"])) == "../layer0/diff"


def _rename_to_l(home, victim):
    """l/ moved away and the home's directory victim (.strata, a layer directory) renamed to l."""
    os.rename(os.path.join(home, "l"), os.path.join(home, "away"))
    os.rename(os.path.join(home, victim), os.path.join(home, "l"))


@pytest.mark.parametrize("victim", [".strata", "layer0"])
def test_a_directory_renamed_to_l_between_the_plan_and_the_repair_gets_no_link(driver, monkeypatch, victim):
    """l/ is missing when the repair is planned; before it is carried out a root's directory of the home (.strata,
    which holds fewer entries than the home has layers; a layer directory) is renamed to l. The repair refuses it,
    naming what is there, and writes nothing into it."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import short_link_repair

    chain(driver, depth=6)
    os.rename(os.path.join(driver.home, "l"), os.path.join(driver.home, "gone"))
    inside = sorted(os.listdir(os.path.join(driver.home, victim)))
    real = short_link_repair.plan

    def then_renamed(*args, **kwargs):
        planned = real(*args, **kwargs)
        os.rename(os.path.join(driver.home, victim), os.path.join(driver.home, "l"))
        return planned

    monkeypatch.setattr(short_link_repair, "plan", then_renamed)
    with pytest.raises(OverlayError, match="l/ (holds|must be).*refusing to write short links into it"):
        driver.make_repairs()
    assert sorted(os.listdir(os.path.join(driver.home, "l"))) == inside


def test_a_layer_directory_renamed_to_l_is_not_repaired_into_and_a_creation_is_refused(driver):
    chain(driver, depth=3)
    inside = sorted(os.listdir(os.path.join(driver.home, "layer0")))
    _rename_to_l(driver.home, "layer0")
    assert driver.repairs_due() == [] and driver.make_repairs() == []
    with pytest.raises(OverlayError, match="refusing to write short links into it"):
        driver.create("new")
    assert sorted(os.listdir(os.path.join(driver.home, "l"))) == inside
    assert not os.path.lexists(os.path.join(driver.home, "new"))


def test_l_is_made_again_in_the_homes_tmp_and_renamed_in(driver, monkeypatch):
    """The new l/ never appears in the home before it is root's, 0700: its owner and mode are set where the home's
    owner cannot reach it, and nothing is left in .strata/tmp."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import short_links

    chain(driver)
    before = links_dir(driver.home)
    shutil.rmtree(os.path.join(driver.home, "l"))
    seen = []
    real = short_links.syscalls.rename_noreplace

    def rename(src, dst, src_dir_fd=None, dst_dir_fd=None):
        st = os.fstat(src_dir_fd) if src_dir_fd is not None else None
        seen.append((dst, st and (st.st_uid, oct(st.st_mode)), os.stat(src, dir_fd=src_dir_fd).st_mode & 0o7777))
        return real(src, dst, src_dir_fd, dst_dir_fd)

    monkeypatch.setattr(short_links.syscalls, "rename_noreplace", rename)
    assert driver.make_repairs()[0] == os.path.join(driver.home, "l")
    assert seen == [("l", (0, oct(0o40700)), 0o700)]
    assert links_dir(driver.home) == before
    assert os.listdir(os.path.join(driver.home, ".strata", "tmp")) == []
