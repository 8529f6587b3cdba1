"""What only the overlay2 layout does: its shape on disk, short links, lower order, depth, whiteouts in
diff/, and trees equal to the seed layout's for the same tarballs, on real overlay mounts."""

import io
import os
import resource
import shutil
import stat
import tarfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import drivers, short_links
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import ADD, DELETE, MODIFY
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.driver import Driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.layout import KIND_OVERLAY, KIND_ROOT
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.overlay2_driver import Overlay2Driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, in_child, layer_tree, snapshot

# what only the overlay2 layout does; the seed's layout is compared with it by directory, not by the fixture
pytestmark = pytest.mark.layout("overlay2")


@pytest.fixture
def driver(overlay2_driver):
    return overlay2_driver


BASE = TarBuilder().dir("etc").file("etc/a", "a").file("etc/b", "b").dir("var").dir("var/lib") \
    .file("var/lib/x", "x").file("keep", "k").bytes()
# as image layers are written: every directory an entry is in has its own header first
CHILD = TarBuilder().dir("etc").whiteout("etc/a").file("etc/c", "c").dir("var").dir("var/lib").opaque("var/lib") \
    .file("var/lib/y", "y").file("keep", "changed").bytes()
GRANDCHILD = TarBuilder().file("top", "t").whiteout("keep").bytes()


def build_chain(driver, tarballs):
    ids = []
    for n, data in enumerate(tarballs):
        layer_id = "layer%d" % n
        driver.create_applied(layer_id, ids[-1] if ids else "", io.BytesIO(data))
        ids.append(layer_id)
    return ids


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_registered_and_recorded(home):
    d = drivers.open_driver(home, "overlay2")
    try:
        assert isinstance(d, Overlay2Driver)
        assert d.dirs.recorded_layout() == "overlay2"
        assert not os.path.lexists(os.path.join(home, "l"))  # made with the first layer, as its link needs it
    finally:
        d.close()


def test_create_makes_dockers_shape(driver):
    """Docker 20.10's overlay2: l/ 0700, layer dirs 0710, diff/ 0755, work/ 0700 and lower only in
    children, link files naming links to ../<id>/diff, committed 0600 in a parent once built on."""
    driver.create("base", "")
    driver.create("child", "base")
    home = driver.home
    assert mode(os.path.join(home, "l")) == 0o700
    assert sorted(os.listdir(os.path.join(home, "base"))) == ["committed", "diff", "link"]
    assert sorted(os.listdir(os.path.join(home, "child"))) == ["diff", "link", "lower", "work"]
    for layer_id in ("base", "child"):
        assert mode(os.path.join(home, layer_id)) == 0o710
        assert mode(os.path.join(home, layer_id, "diff")) == 0o755
    assert mode(os.path.join(home, "child", "work")) == 0o700
    assert mode(os.path.join(home, "base", "committed")) == 0o600
    links = {}
    for layer_id in ("base", "child"):
        with open(os.path.join(home, layer_id, "link")) as f:
            link = f.read()
        assert len(link) == 26 and link.isalnum() and link.upper() == link
        assert os.readlink(os.path.join(home, "l", link)) == "../%s/diff" % layer_id
        links[layer_id] = link
    with open(os.path.join(home, "child", "lower")) as f:
        assert f.read() == "l/" + links["base"]
    assert sorted(os.listdir(os.path.join(home, "l"))) == sorted(links.values())
    assert driver.kind("base") == KIND_ROOT and driver.kind("child") == KIND_OVERLAY
    assert driver.lower_layer("child") == "base" and driver.lower_layer("base") is None


def test_lower_lists_every_layer_below_nearest_first(driver):
    ids = build_chain(driver, [BASE, CHILD, GRANDCHILD])
    links = [driver.own_link(layer_id) for layer_id in ids]
    with open(os.path.join(driver.home, ids[2], "lower")) as f:
        assert f.read() == "l/%s:l/%s" % (links[1], links[0])
    assert driver.lower_ids(ids[2]) == [ids[1], ids[0]]
    assert driver.metadata(ids[2])["LowerDir"] == ":".join(os.path.join(driver.home, i, "diff") for i in ids[1::-1])


def test_apply_writes_only_the_layers_own_diff_with_overlay_whiteouts(driver):
    build_chain(driver, [BASE, CHILD])
    diff = os.path.join(driver.home, "layer1", "diff")
    assert sorted(os.listdir(diff)) == ["etc", "keep", "var"]
    assert sorted(os.listdir(os.path.join(diff, "etc"))) == ["a", "c"]
    st = os.lstat(os.path.join(diff, "etc", "a"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(os.path.join(diff, "var", "lib"), "trusted.overlay.opaque") == b"y"
    assert os.listdir(os.path.join(diff, "var", "lib")) == ["y"]
    # the base is untouched
    assert sorted(os.listdir(os.path.join(driver.home, "layer0", "diff", "etc"))) == ["a", "b"]


def test_mounted_tree_equals_the_seed_layouts(scratch):
    """The same tarballs give the same tree through a real overlay2 mount as through the seed's layout."""
    trees = {}
    for layout, cls in (("overlay", Driver), ("overlay2", Overlay2Driver)):
        d = cls(os.path.join(scratch, layout))
        try:
            ids = build_chain(d, [BASE, CHILD, GRANDCHILD])
            d.create("top", ids[-1])
            merged = d.get("top")
            try:
                trees[layout] = snapshot(merged)
            finally:
                d.put("top")
        finally:
            d.close()
    assert trees["overlay"] == trees["overlay2"]
    assert "etc/a" not in trees["overlay2"] and "keep" not in trees["overlay2"]
    assert sorted(k for k in trees["overlay2"] if k.startswith("var/lib/")) == ["var/lib/y"]


def test_changes_and_diff_are_the_seed_layouts(scratch):
    """The same changes and diff size on both layouts; the tarballs differ only where Docker's two drivers
    do: the opaque var/lib is one '.wh..wh..opq' from overlay2 (its diff/ as it is), one '.wh.<name>' per
    name of the parent's directory from the seed's naive diff. Either gives the same tree on the parent."""
    results = {}
    tarballs = {}
    trees = {}
    for layout, cls in (("overlay", Driver), ("overlay2", Overlay2Driver)):
        d = cls(os.path.join(scratch, layout))
        try:
            ids = build_chain(d, [BASE, CHILD])
            out = io.BytesIO()
            diff = d.diff(ids[1], ids[0], out)
            results[layout] = (sorted(d.changes(ids[1], ids[0]), key=lambda c: c.path), diff.size,
                               d.diff_size(ids[1], ids[0]))
            with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
                tarballs[layout] = [m.name for m in tf]
            d.create_applied("again", ids[0], io.BytesIO(out.getvalue()))
            trees[layout] = (layer_tree(d, ids[1]), layer_tree(d, "again"))
        finally:
            d.close()
    assert results["overlay"] == results["overlay2"]
    assert trees["overlay"][0] == trees["overlay"][1] == trees["overlay2"][0] == trees["overlay2"][1]
    assert [n for n in tarballs["overlay"] if ".wh." in n] == ["etc/.wh.a", "var/lib/.wh.x"]
    assert [n for n in tarballs["overlay2"] if ".wh." in n] == ["etc/.wh.a", "var/lib/.wh..wh..opq"]
    assert [n for n in tarballs["overlay"] if ".wh." not in n] == [n for n in tarballs["overlay2"] if ".wh." not in n]
    changes = {c.path: c.kind for c in results["overlay2"][0]}
    assert changes["/etc/a"] == DELETE and changes["/etc/c"] == ADD and changes["/keep"] == MODIFY
    assert changes["/var/lib/x"] == DELETE and changes["/var/lib/y"] == ADD


def test_mount_names_every_lower_by_a_descriptor(driver):
    """The kernel resolves no name in the home: every lower, the upper and work are /proc/self/fd/N, and the
    record keeps the real diff/s, nearest first, as Docker's LowerDir lists them."""
    ids = build_chain(driver, [BASE, CHILD])
    driver.create("rw", ids[-1])
    merged = driver.get("rw")
    try:
        options = driver.mount_entry("rw").options_dict()
        for name in options["lowerdir"].split(":") + [options["upperdir"], options["workdir"]]:
            assert name.startswith("/proc/self/fd/")
        assert len(options["lowerdir"].split(":")) == 2
        record = driver.mount_records.read("rw")
        assert record["lowerdir"] == ":".join(os.path.join(driver.home, i, "diff") for i in (ids[1], ids[0]))
        shown = driver.mount_options("rw", driver.mount_entry("rw"))  # what overlay_mount and overlay_info report
        assert (shown["lowerdir"], shown["upperdir"]) == (record["lowerdir"], os.path.join(driver.home, "rw", "diff"))
        assert driver.is_mounted("rw")
        with open(os.path.join(merged, "new"), "w") as f:
            f.write("n")
        assert os.path.exists(os.path.join(driver.home, "rw", "diff", "new"))
    finally:
        driver.put("rw")
    assert not os.path.exists(os.path.join(driver.home, "rw", "merged"))


def test_base_layer_is_its_diff_or_a_read_only_bind(driver):
    build_chain(driver, [BASE])
    assert driver.get("layer0") == os.path.join(driver.home, "layer0", "diff")
    merged = driver.get("layer0", readonly_root=True)
    try:
        assert merged == os.path.join(driver.home, "layer0", "merged")
        assert driver.is_mounted("layer0")
        with pytest.raises(OSError):
            open(os.path.join(merged, "new"), "w").close()
    finally:
        driver.put("layer0")
    assert not driver.is_mounted("layer0")


def test_depth_past_dockers_limit_is_refused_before_writing(driver):
    parent = ""
    for n in range(short_links.MAX_DEPTH + 1):
        driver.create("d%d" % n, parent)
        parent = "d%d" % n
    before = sorted(os.listdir(driver.home)), sorted(os.listdir(os.path.join(driver.home, "l")))
    with pytest.raises(OverlayError) as e:
        driver.create("deeper", parent)
    assert "128" in str(e.value)
    assert (sorted(os.listdir(driver.home)), sorted(os.listdir(os.path.join(driver.home, "l")))) == before
    merged = driver.get(parent)  # 128 lowers: a mount still takes them, under a page
    try:
        assert len(driver.mount_entry(parent).options_dict()["lowerdir"].split(":")) == short_links.MAX_DEPTH
    finally:
        driver.put(parent)
    assert merged.endswith("merged")


def test_remove_takes_the_short_link_with_it(driver):
    build_chain(driver, [BASE, CHILD])
    link = driver.own_link("layer1")
    assert driver.remove("layer1")
    assert not os.path.lexists(os.path.join(driver.home, "l", link))
    assert os.listdir(os.path.join(driver.home, "l")) == [driver.own_link("layer0")]


def test_cleanup_removes_links_to_no_layer(driver):
    build_chain(driver, [BASE])
    os.symlink("../gone/diff", os.path.join(driver.home, "l", "A" * 26))
    removed = driver.cleanup()
    assert os.path.join(driver.home, "l", "A" * 26) in removed
    assert os.listdir(os.path.join(driver.home, "l")) == [driver.own_link("layer0")]


def test_a_lower_naming_a_foreign_link_is_the_layers_problem(driver):
    build_chain(driver, [BASE, CHILD])
    lower = os.path.join(driver.home, "layer1", "lower")
    os.chmod(lower, 0o644)
    with open(lower, "w") as f:
        f.write("l/" + "B" * 26)
    assert "cannot be read" in driver.layer_problem("layer1")
    with pytest.raises(OverlayError):
        driver.get("layer1")


def test_store_reads_a_home_without_a_layout_record(home):
    """A home Docker wrote holds no .strata: its layout is read from l/ and the layer directories."""
    d = Overlay2Driver(home)
    try:
        build_chain(d, [BASE, CHILD])
    finally:
        d.close()
    for name in os.listdir(os.path.join(home, ".strata")):
        if name in ("layout.json",):
            os.unlink(os.path.join(home, ".strata", name))
    store = LayerStore(home)
    try:
        assert isinstance(store.driver, Overlay2Driver)
        states = {s["id"]: s for s in store.layers()}
        assert states["layer1"]["parent"] == "layer0" and states["layer1"]["problem"] is None
    finally:
        store.close()


def test_layer_dirs_from_docker_read_as_layers(home):
    """No .strata at all: the shape Docker leaves (l/, diff/, link, lower, work/, committed) is a home."""
    d = Overlay2Driver(home)
    try:
        build_chain(d, [BASE, CHILD])
        expected = snapshot(d.layout.layer("layer1").diff)
    finally:
        d.close()
    shutil.rmtree(os.path.join(home, ".strata"))
    reader = drivers.open_driver(home, writable=False)
    try:
        assert isinstance(reader, Overlay2Driver)
        assert reader.lower_layer("layer1") == "layer0"
        assert snapshot(reader.layout.layer("layer1").diff) == expected
        assert [c.path for c in reader.changes("layer1", "layer0")]
    finally:
        reader.close()


def test_changes_against_the_parent_read_only_the_layers_own_diff(driver, monkeypatch):
    """Docker's overlay2 reads diff/ only: a directory of the image below that the layer does not touch is
    never listed, however large (before, the walk listed the whole image on both sides)."""
    base = TarBuilder().dir("etc").file("etc/a", "a").dir("usr").dir("usr/share")
    for n in range(50):
        base.file("usr/share/f%d" % n, "x")
    build_chain(driver, [base.bytes(), TarBuilder().dir("etc").file("etc/b", "b").whiteout("etc/a").bytes()])
    untouched = os.path.join(driver.home, "layer0", "diff", "usr")
    listed = []
    real_scandir, real_listdir = os.scandir, os.listdir

    def scandir(path="."):
        listed.append(path)
        return real_scandir(path)

    def listdir(path="."):
        listed.append(path)
        return real_listdir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)
    changes, size = driver.changes_and_size("layer1", "layer0")
    monkeypatch.undo()
    assert sorted((c.path, c.kind) for c in changes) == [("/etc", MODIFY), ("/etc/a", DELETE), ("/etc/b", ADD)]
    assert size == 1
    assert not [p for p in listed if isinstance(p, str) and p.startswith(untouched)]
    # against another layer than its parent (here none), the whole tree is compared
    assert {c.path for c in driver.changes("layer1", "")} >= {"/usr/share/f0", "/etc/b"}


def test_a_check_run_predicts_the_depth_refusal(home):
    store = LayerStore(home, layout="overlay2")
    try:
        parent = ""
        for n in range(short_links.MAX_DEPTH + 1):
            store.ensure_present("d%d" % n, parent)
            parent = "d%d" % n
        before = sorted(os.listdir(home))
        for check_mode in (True, False):
            with pytest.raises(OverlayError, match="at most 128"):
                store.ensure_present("deeper", parent, check_mode=check_mode)
        assert sorted(os.listdir(home)) == before
        store.ensure_present("sibling", "d%d" % (short_links.MAX_DEPTH - 1), check_mode=True)
    finally:
        store.close()


def test_image_layers_mount_read_only_and_a_writable_layer_is_a_child_on_top(home):
    """A layer with an applied diff, or with layers built on it (their mounts show its diff/), is mounted
    read-only; the writable layer on top is not. (Before, every overlay2 layer was mounted writable.)"""
    store = LayerStore(home, layout="overlay2")
    try:
        store.apply_diff("base", "", lambda: io.BytesIO(BASE))
        store.apply_diff("image", "base", lambda: io.BytesIO(CHILD))
        store.ensure_present("plain", "base")
        store.ensure_present("rw", "plain")
        for layer_id, read_only in (("image", True), ("plain", True), ("rw", False), ("base", True)):
            store.ensure_mounted(layer_id, "t")
            try:
                state = store.state(layer_id)
                merged = state["path"]
                assert bool(state["options"].get("ro")) is read_only, layer_id
                if read_only:
                    with pytest.raises(OSError):
                        open(os.path.join(merged, "new"), "w").close()
                else:
                    open(os.path.join(merged, "new"), "w").close()
            finally:
                store.ensure_unmounted(layer_id, "t")
        assert os.listdir(os.path.join(home, "rw", "diff")) == ["new"]
        assert os.listdir(os.path.join(home, "plain", "diff")) == []
        # a read-only mount has no upperdir: the kernel wrote none of overlay's xattrs into the image layer
        for layer_id in ("image", "plain"):
            diff = os.path.join(home, layer_id, "diff")
            assert not [x for x in os.listxattr(diff) if x.startswith("trusted.overlay.")]
            assert os.listdir(os.path.join(home, layer_id, "work")) == []
    finally:
        store.close()


def test_a_deep_mount_under_a_low_descriptor_limit(driver):
    """Docker's 128 lowers need about 130 descriptors at once: a low soft limit is raised up to the hard one
    and the layer mounts; a hard limit too low fails clearly before anything is mounted or made."""
    parent = ""
    for n in range(short_links.MAX_DEPTH + 1):
        driver.create("d%d" % n, parent)
        parent = "d%d" % n
    merged = os.path.join(driver.home, parent, "merged")

    def mount_under(soft, hard):
        def step():
            held = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (held + soft, held + hard))
            try:
                driver.get(parent)
            except OverlayError as e:
                return "refused", str(e)
            try:
                return "mounted", len(os.listdir(merged))
            finally:
                driver.put(parent)
        return in_child(step)

    assert mount_under(20, 400) == ("mounted", 0)
    outcome, message = mount_under(20, 40)
    assert outcome == "refused" and "open-file limit (RLIMIT_NOFILE" in message and "128 lower layers" in message
    assert not driver.is_mounted(parent) and not os.path.exists(merged)

    def check_under(soft, hard):
        def step():
            held = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (held + soft, held + hard))
            store = LayerStore(driver.home)
            try:
                with store.locked():
                    try:
                        store.ensure_mounted(parent, "h", check_mode=True)
                    except OverlayError as e:
                        return "refused", str(e), resource.getrlimit(resource.RLIMIT_NOFILE)[0] - held
                    return "predicted", None, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - held
            finally:
                store.close()
        return in_child(step)

    # a check run predicts the real run's refusal, and raises no limit either way
    assert check_under(20, 400)[::2] == ("predicted", 20)
    outcome, message, soft = check_under(20, 40)
    assert outcome == "refused" and "open-file limit (RLIMIT_NOFILE" in message and soft == 20
    assert not driver.is_mounted(parent) and not os.path.exists(merged)


def _listing(root):
    """Every path under root with what any write would change (inode, owner, mode, size, mtime, ctime)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (
                st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out


def _file_in_l(home):
    with open(os.path.join(home, "l", "stray"), "w") as f:
        f.write("not a link")


def _layer_dir_renamed_to_l(home):
    os.rename(os.path.join(home, "l"), os.path.join(home, "away"))
    os.rename(os.path.join(home, "other"), os.path.join(home, "l"))


@pytest.mark.parametrize("damage", [_file_in_l, _layer_dir_renamed_to_l])
@pytest.mark.parametrize("operation", ["create", "apply_diff"])
def test_a_check_run_predicts_the_refusal_of_an_l_that_is_not_short_links_only(home, damage, operation):
    """l/ holds something that is no short link (a regular file, or it is a layer directory renamed to l): a
    layer's creation refuses to write its link there. A check run (the store as check mode opens it, read-only)
    refuses with the same message and writes nothing; before, it predicted success."""
    store = LayerStore(home, layout="overlay2")
    try:
        store.ensure_present("base")
        store.ensure_present("other")
    finally:
        store.close()
    damage(home)

    def run(check_mode):
        s = LayerStore.for_check_run(home, layout="overlay2") if check_mode else LayerStore(home, layout="overlay2")
        try:
            with s.locked():
                if operation == "create":
                    s.ensure_present("new", "base", check_mode=check_mode)
                else:
                    s.apply_diff("new", "base", lambda: io.BytesIO(CHILD), check_mode=check_mode)
        finally:
            s.close()

    before = _listing(home)
    with pytest.raises(OverlayError) as predicted:
        run(check_mode=True)
    assert _listing(home) == before
    with pytest.raises(OverlayError) as refused:
        run(check_mode=False)
    assert "refusing to write short links into it" in str(refused.value)
    assert str(predicted.value) == str(refused.value)
    assert not os.path.lexists(os.path.join(home, "new"))


@pytest.mark.parametrize("operation", ["create", "apply_diff"])
def test_a_check_run_on_a_home_not_made_yet_looks_at_no_l_elsewhere(scratch, monkeypatch, operation):
    """A check run of the first layer of a home that does not exist has no l/ to look at: it predicts the
    creation, whatever an l in the process's working directory holds."""
    cwd = os.path.join(scratch, "cwd")
    os.makedirs(os.path.join(cwd, "l"))
    with open(os.path.join(cwd, "l", "stray"), "w") as f:
        f.write("not a link")
    monkeypatch.chdir(cwd)
    home = os.path.join(scratch, "no-home-yet")
    s = LayerStore.for_check_run(home, layout="overlay2")
    try:
        with s.locked():
            if operation == "create":
                outcome = s.ensure_present("new", "", check_mode=True)
            else:
                outcome = s.apply_diff("new", "", lambda: io.BytesIO(CHILD), check_mode=True)
    finally:
        s.close()
    assert outcome.changed
    assert not os.path.lexists(home)
