"""With id maps the remapped root is a user (on most hosts /etc/subuid gives its range to someone):
it owns the home and the layer directories, as in the seed, but nothing root keeps for itself.

The attacker's steps run in a forked child that is really that uid (layertools.run_as).
"""

import ctypes
import errno
import io
import json
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError

from layertools import TarBuilder, content_dir, layer_dir_owner, run_as

REMAPPED = 100000
MAPS = [{"container_id": 0, "host_id": REMAPPED, "size": 65536}]
PRIVATE = (".strata", ".strata/tmp", ".strata/layers")


@pytest.fixture
def driver(home):
    d = open_driver(home, uid_maps=MAPS, gid_maps=MAPS)
    try:
        yield d
    finally:
        d.close()


def _reopen(home):
    return open_driver(home, uid_maps=MAPS, gid_maps=MAPS)


def test_bookkeeping_is_roots_own_and_out_of_the_remapped_roots_reach(home, layout, driver):
    driver.create("base")
    driver.create("app", "base")
    for name in PRIVATE:
        st = os.lstat(os.path.join(home, name))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o700), name
    assert os.lstat(os.path.join(home, ".strata", "maps.json")).st_uid == 0
    # the layout stays: the home belongs to the remapped root, and the layers as the layout has them
    assert os.lstat(home).st_uid == REMAPPED
    st = os.lstat(os.path.join(home, "app"))
    assert (st.st_uid, st.st_gid) == layer_dir_owner(layout, REMAPPED, REMAPPED)
    assert os.lstat(content_dir(home, "app")).st_uid == REMAPPED

    def look_inside():
        try:
            os.listdir(os.path.join(home, ".strata"))
        except PermissionError:
            return "refused"
        return "listed"

    assert run_as(REMAPPED, REMAPPED, look_inside) == "refused"


@pytest.mark.layout("overlay")  # the seed's upper/ in the layer being built
def test_a_layer_being_built_is_roots_until_it_is_renamed_into_place(home, driver, monkeypatch):
    """The temp directory of create() is in root's .strata/tmp: the remapped root cannot reach it to
    swap a directory in it for a symlink (which made root chown and chmod what the link names)."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import faults

    driver.create("base")
    seen = []

    def at(name):
        if name == "create.before-rename":
            tmp = os.path.join(home, ".strata", "tmp")
            [building] = os.listdir(tmp)

            def reach():
                try:
                    os.listdir(os.path.join(tmp, building, "upper"))
                except PermissionError:
                    return "refused"
                return "reached"

            seen.append(run_as(REMAPPED, REMAPPED, reach))

    monkeypatch.setattr(faults, "point", at)
    driver.create("app", "base")
    assert seen == ["refused"]
    assert os.lstat(os.path.join(home, "app")).st_uid == REMAPPED


def test_an_earlier_versions_bookkeeping_of_the_remapped_root_is_taken_back_by_a_writer(home, driver):
    driver.create("base")
    driver.close()
    for name in PRIVATE:
        os.chown(os.path.join(home, name), REMAPPED, REMAPPED)
    reader = open_driver(home, writable=False)  # a reader reads it as it is and changes nothing
    reader.close()
    assert os.lstat(os.path.join(home, ".strata")).st_uid == REMAPPED
    _reopen(home).close()
    for name in PRIVATE:
        assert os.lstat(os.path.join(home, name)).st_uid == 0, name


def test_a_strata_the_remapped_root_made_in_its_home_is_refused(home):
    """A home Docker wrote belongs to the remapped root and has no .strata yet: that user can make one
    first, with records of its own. No maps.json of root's is in it, so it is never taken for root's."""
    os.mkdir(home, 0o700)
    os.chown(home, REMAPPED, REMAPPED)

    def plant_strata():
        os.mkdir(os.path.join(home, ".strata"), 0o700)
        os.mkdir(os.path.join(home, ".strata", "layers"), 0o700)
        with open(os.path.join(home, ".strata", "layers", "base.json"), "w") as f:
            json.dump({"holders": ["forged"]}, f)

    run_as(REMAPPED, REMAPPED, plant_strata)
    with pytest.raises(OverlayError, match="0700 directory owned by root"):
        _reopen(home)
    assert os.lstat(os.path.join(home, ".strata")).st_uid == REMAPPED


@pytest.mark.parametrize("how", ["owner", "mode"])
def test_recorded_maps_are_believed_only_from_roots_own_file(home, driver, how):
    driver.create("base")
    driver.close()
    maps = os.path.join(home, ".strata", "maps.json")
    if how == "owner":
        os.chown(maps, REMAPPED, REMAPPED)
    else:
        os.chmod(maps, 0o666)
    with pytest.raises(OverlayError, match="recorded id maps cannot be read: it must be root's"):
        _reopen(home)
    with pytest.raises(OverlayError, match="recorded id maps cannot be read"):
        open_driver(home, writable=False)


@pytest.mark.layout("overlay")  # the seed's upper/, work/, merged/ and root/
def test_a_new_layers_directories_are_made_and_given_away_by_fd(home, driver):
    driver.create("base")
    driver.create("app", "base")
    for name in ("upper", "work", "merged"):
        st = os.lstat(os.path.join(home, "app", name))
        assert (st.st_uid, st.st_gid) == (REMAPPED, REMAPPED), name
    assert stat.S_IMODE(os.lstat(os.path.join(home, "app", "work")).st_mode) == 0o700
    assert os.lstat(os.path.join(home, "base", "root")).st_uid == REMAPPED


def test_the_remapped_root_cannot_open_the_lock(home, driver):
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    driver.close()
    store = LayerStore(home, uid_maps=MAPS, gid_maps=MAPS)
    try:
        with store.locked():
            store.ensure_present("base")
    finally:
        store.close()

    def take_lock():
        try:
            os.open(os.path.join(home, ".strata", "lock"), os.O_RDONLY)
        except OSError as e:
            return errno.errorcode[e.errno]
        return "opened"

    assert run_as(REMAPPED, REMAPPED, take_lock) == "EACCES"


# -- mounts name directories opened and checked at mount time ------------------


@pytest.fixture
def secret(scratch):
    """A root-only directory outside the home, with a root-only file in it."""
    path = os.path.join(scratch, "secret")
    os.mkdir(path, 0o700)
    with open(os.path.join(path, "shadow"), "w") as f:
        f.write("root only\n")
    os.chmod(os.path.join(path, "shadow"), 0o600)
    return path


def _swap_for_symlink(path, target):
    def swap():
        os.rmdir(path)  # empty, and the remapped root's
        os.symlink(target, path)
    return swap


@pytest.mark.layout("overlay")  # the seed's directories swapped by the remapped root
@pytest.mark.parametrize("name", ["upper", "work"])
def test_an_overlay_dir_swapped_for_a_symlink_is_never_mounted(home, driver, secret, name):
    """The remapped root swaps app/upper (or work) for a symlink to a root-only directory: mounted, a
    copy-up would write into it."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts

    driver.create("base")
    driver.create("app", "base")
    run_as(REMAPPED, REMAPPED, _swap_for_symlink(os.path.join(home, "app", name), secret))
    with pytest.raises(OverlayError, match=r"%s/ is not a directory \(a symlink\?\); refusing to mount it" % name):
        driver.get("app")
    assert mounts.mount_at(os.path.join(home, "app", "merged")) is None
    assert sorted(os.listdir(secret)) == ["shadow"]
    assert os.lstat(secret).st_uid == 0


@pytest.mark.layout("overlay")  # the seed's directories swapped by the remapped root
def test_a_lower_root_swapped_for_a_symlink_is_never_mounted(home, driver, secret):
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts

    driver.create("base")
    driver.create("app", "base")
    run_as(REMAPPED, REMAPPED, _swap_for_symlink(os.path.join(home, "base", "root"), secret))
    with pytest.raises(OverlayError):
        driver.get("app")
    assert mounts.mount_at(os.path.join(home, "app", "merged")) is None


@pytest.mark.layout("overlay")  # the seed's directories swapped by the remapped root
def test_work_work_swapped_after_the_mount_is_never_chowned_through(home, driver, scratch, monkeypatch):
    """After the mount, work/work is given to the remapped root; by then it may be that user's symlink
    to a root file, which a chown by path would give away."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import driver as driver_mod
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts

    victim = os.path.join(scratch, "victim")
    with open(victim, "w") as f:
        f.write("root's\n")
    os.chmod(victim, 0o600)
    driver.create("base")
    driver.create("app", "base")
    work = os.path.join(home, "app", "work")
    real_mount = mounts.mount_overlay

    def mount_then_swap(*args, **kwargs):
        real_mount(*args, **kwargs)

        def swap():
            os.rename(os.path.join(work, "work"), os.path.join(work, "old"))
            os.symlink(victim, os.path.join(work, "work"))
        run_as(REMAPPED, REMAPPED, swap)

    monkeypatch.setattr(driver_mod.mounts, "mount_overlay", mount_then_swap)
    with pytest.raises(OverlayError, match="cannot chown work/work"):
        driver.get("app")
    st = os.stat(victim)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert mounts.mount_at(os.path.join(home, "app", "merged")) is None


@pytest.mark.layout("overlay")  # the seed's directories swapped by the remapped root
def test_a_root_layers_bind_names_its_root_opened_at_mount_time(home, driver, secret):
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts

    driver.create("base")
    run_as(REMAPPED, REMAPPED, _swap_for_symlink(os.path.join(home, "base", "root"), secret))
    with pytest.raises(OverlayError):
        driver.get("base", readonly_root=True)
    assert mounts.mount_at(os.path.join(home, "base", "merged")) is None


@pytest.mark.layout("overlay")  # the seed's lower-id
def test_a_lower_id_the_remapped_root_made_a_fifo_never_blocks(home, driver):
    from layertools import run_isolated

    driver.create("base")
    driver.create("app", "base")
    driver.close()

    def make_fifo():
        path = os.path.join(home, "app", "lower-id")
        os.unlink(path)  # lower-id is root's, but the layer directory is the remapped root's
        os.mkfifo(path)

    run_as(REMAPPED, REMAPPED, make_fifo)
    code = """
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mounts
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
d = open_driver(%r, writable=False)
try:
    d.metadata("app")
except OverlayError as e:
    print("refused:", e.message)
""" % home
    done = run_isolated(code, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "cannot read lower-id: it is a FIFO" in done.stdout, done.stdout


@pytest.mark.layout("overlay")  # the seed's root/ exchanged in
def test_a_layer_name_swapped_for_a_symlink_before_the_exchange_is_never_followed(home, driver, scratch, monkeypatch):
    """The remapped root owns the home: between apply_diff's checks and its exchange it renames the layer
    and puts a symlink in its place, to a directory holding a root-only root/. Exchanged by path, that
    root/ would be moved into tmp and removed with it."""
    import io

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import faults

    from layertools import TarBuilder

    decoy = os.path.join(scratch, "decoy")
    os.makedirs(os.path.join(decoy, "root"), 0o700)
    with open(os.path.join(decoy, "root", "keep"), "w") as f:
        f.write("root's own\n")
    driver.create("app")

    def at(name):
        if name == "apply.before-rename":
            def swap():
                os.rename(os.path.join(home, "app"), os.path.join(home, "moved"))
                os.symlink(decoy, os.path.join(home, "app"))
            run_as(REMAPPED, REMAPPED, swap)

    monkeypatch.setattr(faults, "point", at)
    with pytest.raises(OverlayError, match="cannot open the layer directory"):
        driver.apply_diff("app", "", io.BytesIO(TarBuilder().file("new", "x\n").bytes()))
    with open(os.path.join(decoy, "root", "keep")) as f:
        assert f.read() == "root's own\n"


@pytest.mark.layout("overlay")  # the seed's overlay parts dropped once root/ is in
def test_a_layer_name_swapped_for_a_symlink_after_the_rename_never_has_a_file_removed_through_it(
        home, driver, scratch, monkeypatch):
    """After apply_diff onto a child of an applied layer renames root/ in, the layer's upper/, work/,
    merged/ and lower-id go. The remapped root renames the layer then and puts a symlink in its place,
    to a directory holding root-only files of those names (another home's layer, say): removed by path,
    they would go."""
    import io

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import faults

    from layertools import TarBuilder

    decoy = os.path.join(scratch, "decoy")
    os.makedirs(os.path.join(decoy, "upper"), 0o700)
    for name in ("lower-id", os.path.join("upper", "keep")):
        with open(os.path.join(decoy, name), "w") as f:
            f.write("root's own\n")
    driver.create("base")
    driver.create("app", "base")

    def at(name):
        if name == "apply.after-rename":
            def swap():
                os.rename(os.path.join(home, "app"), os.path.join(home, "moved"))
                os.symlink(decoy, os.path.join(home, "app"))
            run_as(REMAPPED, REMAPPED, swap)

    monkeypatch.setattr(faults, "point", at)
    with pytest.raises(OverlayError, match="cannot open the layer directory"):
        driver.apply_diff("app", "base", io.BytesIO(TarBuilder().file("new", "x\n").bytes()))
    for name in ("lower-id", os.path.join("upper", "keep")):
        with open(os.path.join(decoy, name)) as f:
            assert f.read() == "root's own\n", name


def _as_remapped_root(step):
    run_as(REMAPPED, REMAPPED, step)


def _mapped_store(home):
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore
    return LayerStore(home, uid_maps=MAPS, gid_maps=MAPS)


@pytest.fixture
def mapped_home(home, driver):
    driver.create("base")
    driver.create("app", "base")
    driver.create("svc", "base")
    return home


def _touch(path):
    return lambda: open(path, "w").close()


def _swap(path):
    def swap():
        os.rename(path, path + ".old")
        os.symlink("/etc", path)
    return swap


@pytest.mark.layout("overlay")  # the seed's directories swapped by the remapped root
@pytest.mark.parametrize("how", ["stray in the layer", "merged swapped", "work swapped", "upper swapped",
                                 "lower-id swapped"])
def test_what_the_remapped_root_does_in_a_layer_directory_is_that_layers_damage(mapped_home, how):
    """The remapped root owns the layer directories: one name it added to app/ (or an entry of app/ it swapped
    for a symlink) made every module on the whole home fail "is this the right home?". It is app's problem:
    listed with it, refused naming it, removed with force; the other layers work."""
    app = os.path.join(mapped_home, "app")
    if how == "stray in the layer":
        _as_remapped_root(_touch(os.path.join(app, "stray")))
    else:
        _as_remapped_root(_swap(os.path.join(app, how.split()[0])))
    store = _mapped_store(mapped_home)
    try:
        with store.locked():
            by_id = {s["id"]: s for s in store.layers()}
            assert by_id["app"]["problem"] and by_id["svc"]["problem"] is None and by_id["base"]["problem"] is None
            with pytest.raises(OverlayError, match="layer app.*damaged.*force: true"):
                store.ensure_mounted("app", "x")
            assert store.ensure_mounted("svc", "x").after["mounted"]
            assert store.ensure_unmounted("svc", "x").changed
            assert store.ensure_present("new", "base").changed
            assert store.ensure_absent("app", force=True).changed
            assert sorted(store.driver.layer_ids()) == ["base", "new", "svc"]
            assert os.path.isdir("/etc") and os.lstat("/etc").st_uid == 0
    finally:
        store.close()


def test_a_stray_name_of_the_remapped_root_in_the_home_is_reported_not_fatal(mapped_home):
    """touch <home>/stray as the remapped root refused the whole home. It is named in HomeDirs.strays (which
    overlay_info warns about) and every layer works; root's own file there is still refused."""
    _as_remapped_root(_touch(os.path.join(mapped_home, "stray")))
    store = _mapped_store(mapped_home)
    try:
        with store.locked():
            assert store.driver.dirs.strays == ["stray"]
            assert all(s["problem"] is None for s in store.layers())
            assert store.ensure_mounted("svc", "x").after["mounted"]
            assert store.ensure_unmounted("svc", "x").changed
    finally:
        store.close()
    os.unlink(os.path.join(mapped_home, "stray"))
    open(os.path.join(mapped_home, "roots"), "w").close()
    with pytest.raises(OverlayError, match="holds 'roots', which is not a layer directory"):
        _mapped_store(mapped_home)


@pytest.mark.layout("overlay")  # a rootfs beside the seed's upper/
def test_a_directory_of_the_remapped_roots_that_is_mostly_not_layers_is_refused(scratch):
    """Without root's .strata in it, a directory whose names are mostly not layers (a container's root
    filesystem owned by the remapped root, named as the home by mistake) is still not taken for a home."""
    rootfs = os.path.join(scratch, "rootfs")
    os.mkdir(rootfs, 0o700)
    for name in ("bin", "etc", "usr"):
        open(os.path.join(rootfs, name + ".txt"), "w").close()
    os.mkdir(os.path.join(rootfs, "app"))
    os.mkdir(os.path.join(rootfs, "app", "upper"))
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            os.lchown(name, REMAPPED, REMAPPED)
    with pytest.raises(OverlayError, match="which are not layer directories, and fewer layers"):
        open_driver(rootfs, uid_maps=MAPS, gid_maps=MAPS)
    assert sorted(os.listdir(rootfs)) == ["app", "bin.txt", "etc.txt", "usr.txt"]


# -- root's temp dirs are reached by fd, never through the home's names ----------
#
# The remapped root owns the home: it cannot open root's .strata, but it can rename it and put a
# .strata of its own in its place, with the names of root's temp dirs (which mountinfo shows while
# apply_diff's temp overlay is mounted) made symlinks to a root-only directory. Whatever apply_diff
# and create_applied then reached by path would be written, chowned or exchanged there.


@pytest.fixture
def vault(scratch):
    """A root-only directory outside the home, its upper/ root-only too, with a root-only file in it."""
    path = os.path.join(scratch, "vault")
    os.makedirs(os.path.join(path, "upper"), 0o700)
    os.chmod(os.path.join(path, "upper"), 0o700)
    with open(os.path.join(path, "upper", "shadow"), "w") as f:
        f.write("root only\n")
    os.chmod(os.path.join(path, "upper", "shadow"), 0o600)
    return path


def _tree_state(path):
    """Every name below path with its owner and mode, path's own first."""
    names = [path]
    for dirpath, dirnames, filenames in os.walk(path):
        names.extend(os.path.join(dirpath, n) for n in sorted(dirnames + filenames))
    return [(os.path.relpath(name, path),) + tuple(getattr(os.lstat(name), a) for a in ("st_uid", "st_gid", "st_mode"))
            for name in names]


def _strata_of_its_own(home):
    """As the remapped root: root's .strata moved away, an empty one of its own in its place."""
    os.rename(os.path.join(home, ".strata"), os.path.join(home, ".strata-moved"))
    os.makedirs(os.path.join(home, ".strata", "tmp"))
    return os.path.join(home, ".strata", "tmp")


def _plant_temp_link(home, names, vault):
    """root's temp dir is a symlink to vault/upper."""
    tmp = _strata_of_its_own(home)
    os.symlink(os.path.join(vault, "upper"), os.path.join(tmp, names[0]))


def _plant_root_link(home, names, vault):
    """root's temp dir holds a root/ that is a symlink to vault/upper."""
    tmp = _strata_of_its_own(home)
    os.mkdir(os.path.join(tmp, names[0]))
    os.symlink(os.path.join(vault, "upper"), os.path.join(tmp, names[0], "root"))


def _plant_forged_upper(home, names, vault):
    """root's temp dir is a directory of its own, with an upper/ holding a forged file: exchanged into the
    layer, it would be the layer's content under the verified diff's diff_id."""
    tmp = _strata_of_its_own(home)
    os.makedirs(os.path.join(tmp, names[0], "upper"))
    with open(os.path.join(tmp, names[0], "upper", "forged"), "w") as f:
        f.write("not the diff\n")


def _plant_upper_and_mount_dirs(home, names, vault):
    """create_applied's layer dir a symlink to vault (its upper/), its apply dir real, with work/ and merged/."""
    tmp = _strata_of_its_own(home)
    for name in names:
        if name.startswith("create-"):
            os.symlink(vault, os.path.join(tmp, name))
        else:
            os.makedirs(os.path.join(tmp, name, "work"))
            os.mkdir(os.path.join(tmp, name, "merged"))


def _apply_on_root(driver, data):
    driver.create("app")
    return driver.apply_diff("app", "", data)


def _apply_on_child_of_root(driver, data):
    driver.create("app", "base")
    return driver.apply_diff("app", "base", data)


def _apply_on_overlay(driver, data):
    driver.create("app", "base")
    return driver.apply_diff("app", "", data)


def _create_on_root(driver, data):
    return driver.create_applied("app", "base", data)


def _create_on_overlay(driver, data):
    driver.create("mid", "base")
    return driver.create_applied("app", "mid", data)


# (the code reaching the temp dir, the point where the remapped root swaps .strata, what it plants there, the run)
TEMP_SWAPS = [
    ("copy into a new dir", "apply.started", _plant_temp_link, _apply_on_child_of_root),
    ("copy of its own root", "apply.started", _plant_temp_link, _apply_on_root),
    ("applier target", "apply.copied", _plant_root_link, _apply_on_child_of_root),
    ("temp overlay dirs", "apply.copied", _plant_forged_upper, _apply_on_overlay),
    ("create_applied's target", "apply.copied", _plant_root_link, _create_on_root),
    ("create_applied's temp overlay", "apply.copied", _plant_upper_and_mount_dirs, _create_on_overlay),
]


@pytest.mark.layout("overlay")  # the seed's temp dirs (root/, upper/) planted at the seed's fault points
@pytest.mark.parametrize("what, point, plant, run", TEMP_SWAPS, ids=[case[0] for case in TEMP_SWAPS])
def test_roots_temp_dirs_are_reached_by_fd_when_the_remapped_root_swaps_strata(
        home, driver, vault, monkeypatch, what, point, plant, run):
    """Nothing root-only is written, chowned, chmodded or exchanged, at any point of the run: root carries
    on in its own temp dirs, opened once, and the diff lands in the layer."""
    import io

    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import faults

    from layertools import TarBuilder

    driver.create("base")
    before = _tree_state(vault)
    seen = []

    def at(name):
        if name == point and not seen:
            tmp = os.path.join(home, ".strata", "tmp")
            names = sorted(os.listdir(tmp), key=lambda n: not n.startswith("create-"))
            run_as(REMAPPED, REMAPPED, lambda: plant(home, names, vault))
        if seen or name == point:
            seen.append((name, _tree_state(vault)))

    monkeypatch.setattr(faults, "point", at)
    data = TarBuilder().dir(".", mode=0o777).file("planted", b"by the diff\n").bytes()
    try:
        result = run(driver, io.BytesIO(data))
    except (OSError, OverlayError) as e:  # the vault is looked at first
        result = e
    assert seen and seen[0][0] == point, what
    for name, state in seen + [("end", _tree_state(vault))]:
        assert state == before, "%s: the vault changed by %s" % (what, name)
    assert not isinstance(result, Exception), result
    assert result.size == len(b"by the diff\n")
    layer = [os.path.join(dirpath, n) for dirpath, dirnames, filenames in os.walk(os.path.join(home, "app"))
             for n in dirnames + filenames]
    assert [os.path.basename(p) for p in layer if os.path.basename(p) in ("planted", "forged")] == ["planted"]
    moved = os.path.join(home, ".strata-moved")
    assert os.lstat(moved).st_uid == 0 and os.listdir(os.path.join(moved, "tmp")) == []


# -- overlay2: the remapped root owns the home that holds l/ and every layer directory ------------------------

@pytest.fixture
def root_only(scratch):
    """A directory only root may read, holding a secret: what the remapped root would have root mount."""
    path = os.path.join(scratch, "root-only")
    os.mkdir(path, 0o700)
    with open(os.path.join(path, "secret"), "w") as f:
        f.write("host secret\n")
    return path


def _base_and_app(driver):
    """base (one file) and app on it; base's LINK."""
    driver.create_applied("base", "", io.BytesIO(TarBuilder().file("b", "base\n").bytes()))
    driver.create("app", "base")
    return driver.own_link("base")


def _assert_app_mount_is_the_real_one(driver, home):
    """What root mounted at app/merged shows base's file and nothing of the root-only directory."""
    merged = os.path.join(home, "app", "merged")
    assert sorted(os.listdir(merged)) == ["b"]
    with open(os.path.join(merged, "b")) as f:
        assert f.read() == "base\n"


def _plant_layer_dir(path, link):
    """Make path (0755) look like an overlay2 layer directory: an empty diff/ and a link file naming link.
    Run it as the remapped root, so the directory is the user's own forgery."""
    os.mkdir(path, 0o755)
    os.mkdir(os.path.join(path, "diff"), 0o755)
    with open(os.path.join(path, "link"), "w") as f:
        f.write(link)


@pytest.mark.layout("overlay2")  # overlay2's layer directories, link and lower files
@pytest.mark.parametrize("diff", ["symlink", "dir"])
@pytest.mark.parametrize("which", ["lower", "mounted"])
def test_a_planted_layer_directory_is_never_mounted(home, driver, root_only, which, diff):
    """The remapped root moves a layer's directory away and plants its own of that name: for the lower, with a
    link file naming the same LINK; for the layer mounted, with its lower file, work/ and merged/. Its diff/
    is a symlink to a root-only directory, or a directory of its own. Root refuses to mount either (the
    lower would be the user's choice, the upper too), and mounts the real layers once they are back."""
    link = _base_and_app(driver)
    victim = "base" if which == "lower" else "app"
    planted = os.path.join(home, victim)
    away = os.path.join(home, "away")

    def plant():
        os.rename(planted, away)
        os.mkdir(planted, 0o755)
        if which == "lower":
            with open(os.path.join(planted, "link"), "w") as f:
                f.write(link)
        else:
            os.mkdir(os.path.join(planted, "work"), 0o755)
            os.mkdir(os.path.join(planted, "merged"), 0o755)
            with open(os.path.join(planted, "lower"), "w") as f:
                f.write("l/" + link)
        if diff == "symlink":
            os.symlink(root_only, os.path.join(planted, "diff"))
        else:
            os.mkdir(os.path.join(planted, "diff"), 0o755)
            with open(os.path.join(planted, "diff", "planted"), "w") as f:
                f.write("the user's\n")

    run_as(REMAPPED, REMAPPED, plant)
    with pytest.raises(OverlayError, match="refusing to mount it"):
        driver.get("app")
    assert not [m for m in mounts.mounts_below(home) if m.fstype == "overlay"]
    shutil.rmtree(planted)
    os.rename(away, planted)
    driver.get("app")
    try:
        _assert_app_mount_is_the_real_one(driver, home)
    finally:
        driver.put("app")


@pytest.mark.layout("overlay2")  # overlay2's layer directories and link files
def test_a_planted_lower_is_the_problem_info_reports_as_the_mount_refuses_it(home, driver):
    """The remapped root moves base's directory away and plants its own holding base's link file and a diff/:
    layer_problem says of app (and of the planted base) what the mount says, not that the layer is sound."""
    link = _base_and_app(driver)
    base = os.path.join(home, "base")

    def plant():
        os.rename(base, os.path.join(home, "elsewhere"))
        _plant_layer_dir(base, link)

    run_as(REMAPPED, REMAPPED, plant)
    again = _reopen(home)
    try:
        with pytest.raises(OverlayError, match="belongs to uid %d, not to root" % REMAPPED):
            again.get("app")
        for layer_id in ("app", "base"):
            assert "layer directory base belongs to uid %d, not to root" % REMAPPED in again.layer_problem(layer_id)
    finally:
        again.close()


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
def test_swapping_l_while_root_mounts_never_mounts_the_users_directory(home, driver, root_only):
    """The remapped root exchanges <home>/l with a directory of its own, whose entry of the lower's LINK is
    a symlink to a root-only directory, again and again (renameat2 RENAME_EXCHANGE) while root mounts the
    child. Every mount root makes stacks base's diff/, or the call fails clearly: never the user's choice."""
    link = _base_and_app(driver)
    evil = os.path.join(home, "evil")
    stop_read, stop_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the attacker
        try:
            os.close(stop_write)
            os.setgroups([])
            os.setresgid(REMAPPED, REMAPPED, REMAPPED)
            os.setresuid(REMAPPED, REMAPPED, REMAPPED)
            os.mkdir(evil, 0o755)
            os.symlink(root_only, os.path.join(evil, link))
            os.set_blocking(stop_read, False)
            libc = ctypes.CDLL(None, use_errno=True)
            names = os.path.join(home, "l").encode(), evil.encode()
            while True:
                for _swap in range(200):
                    libc.renameat2(-100, names[0], -100, names[1], 2)  # AT_FDCWD, RENAME_EXCHANGE
                try:
                    if os.read(stop_read, 1) == b"":
                        break
                except BlockingIOError:
                    continue
        finally:
            os._exit(0)
    os.close(stop_read)
    mounted = refused = 0
    try:
        for _attempt in range(300):
            try:
                driver.get("app")
            except OverlayError:
                refused += 1
                continue
            try:
                _assert_app_mount_is_the_real_one(driver, home)
                mounted += 1
            finally:
                driver.put("app")
    finally:
        os.close(stop_write)
        os.waitpid(pid, 0)
    assert mounted + refused == 300


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
@pytest.mark.parametrize("how", ["removed", "renamed-by-the-user"])
def test_short_links_lost_are_made_again_owned_as_before(home, driver, how):
    """l/ removed (an operator's rm, a restore that skipped it) or renamed in the home by the remapped root, who
    owns the home: the home is still taken (a directory of short links only is l/ renamed, said, not refused),
    the mount makes l/ again and every link, owned and moded as the layer's creation made them under these maps
    (root's, 0700), and stacks base's diff/."""
    _base_and_app(driver)
    links = os.path.join(home, "l")

    def owners():
        return [(name, os.lstat(os.path.join(links, name)).st_uid, os.lstat(os.path.join(links, name)).st_gid,
                 os.readlink(os.path.join(links, name)) if name else stat.S_IMODE(os.lstat(links).st_mode))
                for name in [""] + sorted(os.listdir(links))]

    before = owners()
    if how == "removed":
        shutil.rmtree(links)
    else:
        run_as(REMAPPED, REMAPPED, lambda: os.rename(links, os.path.join(home, "renamed")))
    again = _reopen(home)
    try:
        again.get("app")
        try:
            _assert_app_mount_is_the_real_one(again, home)
        finally:
            again.put("app")
        assert again.dirs.link_dirs == ([] if how == "removed" else ["renamed"])
    finally:
        again.close()
    assert owners() == before


def _when_l_appears(monkeypatch, home, step):
    """step() run once, right after the call of short_links that made <home>/l appear in the home (whichever
    call that is: a mkdir there, or the rename of one made elsewhere): the window a racing user aims at."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import short_links

    done = []

    def after(call):
        def hooked(*args, **kwargs):
            try:
                return call(*args, **kwargs)
            finally:
                if not done and os.path.lexists(os.path.join(home, "l")):
                    done.append(True)
                    step()
        return hooked

    class Hooked:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            value = getattr(self.real, name)
            return after(value) if callable(value) else value

    monkeypatch.setattr(short_links, "os", Hooked(os))
    if hasattr(short_links, "syscalls"):
        monkeypatch.setattr(short_links, "syscalls", Hooked(short_links.syscalls))
    return done


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
def test_l_made_again_never_takes_over_a_directory_the_remapped_root_swaps_in(home, driver, monkeypatch):
    """The remapped root renamed l/ away and exchanges a directory of its own (a link file, diff/) with the
    new l/ the moment it appears (renameat2 RENAME_EXCHANGE). Root never chowns, chmods or writes into that
    directory: it stays the user's, as it was (a root's directory of the user's making would pass for a
    layer directory of root's)."""
    _base_and_app(driver)
    mine = os.path.join(home, "mine")
    links = os.path.join(home, "l")

    def prepare():
        os.rename(links, os.path.join(home, "away"))
        _plant_layer_dir(mine, "Q" * 26)

    run_as(REMAPPED, REMAPPED, prepare)
    before = os.lstat(mine)

    def exchange():
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.renameat2(-100, links.encode(), -100, mine.encode(), 2) == 0  # AT_FDCWD, RENAME_EXCHANGE

    swapped = _when_l_appears(monkeypatch, home, lambda: run_as(REMAPPED, REMAPPED, exchange))
    try:
        driver.make_repairs()
    except OverlayError:
        pass  # refusing is as good as leaving it alone
    monkeypatch.undo()
    assert swapped
    st = os.lstat(links)  # the user's directory, exchanged in
    assert (st.st_ino, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (
        before.st_ino, REMAPPED, REMAPPED, 0o755)
    assert sorted(os.listdir(links)) == ["diff", "link"]


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
def test_l_renamed_away_the_moment_it_is_made_again_leaves_a_home_that_opens(home, driver, monkeypatch):
    """The remapped root renames the new l/ away as soon as it appears: the writer does not die on a vanished
    name, leaves no empty root's directory that would make every later run refuse the home, and the next run
    makes l/ again and mounts."""
    _base_and_app(driver)
    links = os.path.join(home, "l")
    run_as(REMAPPED, REMAPPED, lambda: os.rename(links, os.path.join(home, "away")))
    gone = _when_l_appears(monkeypatch, home,
                           lambda: run_as(REMAPPED, REMAPPED, lambda: os.rename(links, os.path.join(home, "empty"))))
    try:
        driver.make_repairs()
    except OverlayError:
        pass
    monkeypatch.undo()
    assert gone
    again = _reopen(home)
    try:
        again.get("app")
        try:
            _assert_app_mount_is_the_real_one(again, home)
        finally:
            again.put("app")
        assert "empty" not in again.layer_ids()
    finally:
        again.close()


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
@pytest.mark.parametrize("writer", ["repair", "create"])
def test_a_roots_layer_directory_renamed_to_l_gets_no_short_link(home, driver, writer):
    """The remapped root renames l/ away and root's layer directory `other` (which it cannot write) to l. Neither
    the repair nor a layer's creation writes a link into it: the creation is refused, naming what is there."""
    _base_and_app(driver)
    driver.create("other")
    other = os.path.join(home, "other")
    inside = sorted(os.listdir(other))
    run_as(REMAPPED, REMAPPED, lambda: (os.rename(os.path.join(home, "l"), os.path.join(home, "away")),
                                        os.rename(other, os.path.join(home, "l"))))
    again = _reopen(home)
    try:
        if writer == "repair":
            again.make_repairs()
        else:
            with pytest.raises(OverlayError, match="refusing to write short links into it"):
                again.create("new", "base")
            assert not os.path.lexists(os.path.join(home, "new"))
    finally:
        again.close()
    assert sorted(os.listdir(os.path.join(home, "l"))) == inside


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
def test_l_renamed_to_a_layer_name_is_no_layer_and_goes_with_the_home(home, driver):
    """l/ renamed by the remapped root to a plain word (a valid layer id) is no layer, damaged or not: it is
    said (HomeDirs.link_dirs), and removing the home removes it too."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.home_removal import remove_home

    _base_and_app(driver)
    run_as(REMAPPED, REMAPPED, lambda: os.rename(os.path.join(home, "l"), os.path.join(home, "renamed")))
    again = _reopen(home)
    try:
        assert again.dirs.link_dirs == ["renamed"]
        assert again.layer_ids() == ["app", "base"] and not again.exists("renamed")
        with pytest.raises(OverlayError, match=r"a directory of short links only \(l/ renamed\).*remove it"):
            again.create("renamed")
        assert again.layer_ids() == ["app", "base"]
    finally:
        again.close()
    store = LayerStore(home)
    try:
        with store.locked():
            assert [state["id"] for state in store.layers()] == ["app", "base"]
            remove_home(store)
    finally:
        store.close()
    assert not os.path.lexists(home)


# -- the naive diff reads a layer's directories opened from the home's fd ------------------------------------

SECRET_NAME = "vault-secret-name"
SECRET_TEXT = b"vault secret text\n"


@pytest.fixture
def root_vault(scratch):
    """A root-only directory outside the home holding a root-only file: what the remapped root would have
    root list, size and export."""
    path = os.path.join(scratch, "root-vault")
    os.mkdir(path, 0o700)
    with open(os.path.join(path, SECRET_NAME), "wb") as f:
        f.write(SECRET_TEXT)
    os.chmod(os.path.join(path, SECRET_NAME), 0o600)
    return path


def _layers_to_diff(driver, home):
    """base (one file) and app on it holding a file the remapped root wrote."""
    driver.create_applied("base", "", io.BytesIO(TarBuilder().file("b", "base\n").bytes()))
    driver.create("app", "base")

    def write():
        with open(os.path.join(content_dir(home, "app"), "a"), "w") as f:
            f.write("app\n")
    run_as(REMAPPED, REMAPPED, write)


def _plant_vault(home, layout, victim, vault):
    """The remapped root makes the directory that holds victim's files a symlink to vault: in the seed's
    layout by renaming it in its own layer directory; in overlay2, where the layer directory is root's, by
    moving the layer directory away and planting one of its own with the same link/lower files."""
    def plant():
        if layout == "overlay":
            content = content_dir(home, victim)
            os.rename(content, content + ".away")
            os.symlink(vault, content)
            return
        layer = os.path.join(home, victim)
        os.rename(layer, layer + ".away")
        os.mkdir(layer, 0o755)
        for name in ("link", "lower"):
            if os.path.exists(os.path.join(layer + ".away", name)):
                shutil.copyfile(os.path.join(layer + ".away", name), os.path.join(layer, name))
        os.mkdir(os.path.join(layer, "work"), 0o755)
        os.symlink(vault, os.path.join(layer, "diff"))
    run_as(REMAPPED, REMAPPED, plant)


def _diff_ops():
    def changes(driver):
        return [c.path for c in driver.changes("app", "base")], b""

    def size(driver):
        return [], b"%d" % driver.diff_size("app", "base")

    def export(driver):
        out = io.BytesIO()
        result = driver.diff("app", "base", out)
        return [c.path for c in result.changes], out.getvalue()

    def naive_export(driver):
        out = io.BytesIO()
        result = driver.diff("app", "", out)
        return [c.path for c in result.changes], out.getvalue()
    return {"changes": changes, "diff_size": size, "export": export, "naive_export": naive_export}


DIFF_OPS = _diff_ops()


@pytest.mark.parametrize("op", sorted(DIFF_OPS))
@pytest.mark.parametrize("victim", ["app", "base"])
def test_a_layer_directory_swapped_for_a_symlink_is_never_read_by_a_diff(home, layout, driver, root_vault,
                                                                         victim, op):
    """The remapped root makes the layer's own directory (app) or its lower's (base) a symlink to a root-only
    directory before root lists, sizes or exports app: the call fails clearly, nothing of the directory is
    named, counted or exported."""
    _layers_to_diff(driver, home)
    _plant_vault(home, layout, victim, root_vault)
    try:
        names, data = DIFF_OPS[op](driver)
    except OverlayError as e:
        assert "refusing to read it" in str(e) or "has no root/" in str(e), str(e)
        return
    assert not [n for n in names if SECRET_NAME in n]
    assert SECRET_NAME.encode() not in data and SECRET_TEXT not in data
    if op == "diff_size":
        assert data != b"%d" % len(SECRET_TEXT)


# -- and below them, every directory is read by fd from its parent's -----------------------------------------

SWAP_ROUNDS = 60
SECRET_XATTR = ("trusted.vault", b"vault-xattr-value")
SECRET_SIZE = 77777  # no file of the layer comes near it


SWAPPED_DIRS = ["d%02d" % i for i in range(32)]  # more chances per walk for the race


def _swapping_attacker(own_dir, vault, stop_read, progress_write):  # pragma: no cover - runs in the forked child
    """As the remapped root: exchange each own_dir/dNN (a directory of the layer) with a symlink to vault, over
    and over (renameat2 RENAME_EXCHANGE: dNN is always there, a directory or the symlink), until stop_read is
    closed. A byte goes to progress_write after each pass over them (none when the pipe is full)."""
    os.setgroups([])
    os.setresgid(REMAPPED, REMAPPED, REMAPPED)
    os.setresuid(REMAPPED, REMAPPED, REMAPPED)
    pairs = []
    for name in SWAPPED_DIRS:
        os.symlink(vault, os.path.join(own_dir, name + ".link"))
        pairs.append((os.path.join(own_dir, name).encode(), os.path.join(own_dir, name + ".link").encode()))
    os.set_blocking(stop_read, False)
    os.set_blocking(progress_write, False)
    libc = ctypes.CDLL(None, use_errno=True)
    while True:
        for _pass in range(3):
            for one, other in pairs:
                libc.renameat2(-100, one, -100, other, 2)  # AT_FDCWD, RENAME_EXCHANGE
        try:
            os.write(progress_write, b".")
        except BlockingIOError:
            pass
        try:
            if os.read(stop_read, 1) == b"":
                return
        except BlockingIOError:
            continue


@pytest.mark.parametrize("op", sorted(DIFF_OPS))
def test_a_directory_inside_a_layer_swapped_for_a_symlink_in_a_loop_is_never_read_through(
        home, layout, driver, root_vault, op):
    """The remapped root owns the layer's files: while root lists, sizes and exports app again and again, it
    exchanges each of app's directories dNN with a symlink to a root-only directory in a tight loop. Each run
    lists dNN (the layer's), sees the symlink (the layer's own symlink), or fails clearly; never does a name,
    the size or an xattr of the root-only directory's file reach a result. Read by path, dNN was resolved
    afresh at each step, so the listing, the stats and the xattr reads went into the vault whenever the
    symlink was in."""
    os.chmod(os.path.join(root_vault, SECRET_NAME), 0o600)
    with open(os.path.join(root_vault, SECRET_NAME), "wb") as f:
        f.write(SECRET_TEXT + b"\0" * (SECRET_SIZE - len(SECRET_TEXT)))
    os.setxattr(os.path.join(root_vault, SECRET_NAME), *SECRET_XATTR)
    _layers_to_diff(driver, home)
    own_dir = content_dir(home, "app")

    def make_dirs():
        for d in SWAPPED_DIRS:
            os.mkdir(os.path.join(own_dir, d), 0o755)
            for name in ("one", "two"):
                with open(os.path.join(own_dir, d, name), "w") as f:
                    f.write("layer's own %s\n" % name)
    run_as(REMAPPED, REMAPPED, make_dirs)
    stop_read, stop_write = os.pipe()
    progress_read, progress_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the attacker
        try:
            os.close(stop_write)
            os.close(progress_read)
            _swapping_attacker(own_dir, root_vault, stop_read, progress_write)
        finally:
            os._exit(0)
    os.close(stop_read)
    os.close(progress_write)
    read = refused = 0
    try:
        for _round in range(SWAP_ROUNDS):
            # swaps were made since the last round (a busy machine may not schedule the attacker otherwise)
            assert os.read(progress_read, 65536), "the attacker stopped"
            try:
                names, data = DIFF_OPS[op](driver)
            except OverlayError as e:
                assert "refusing to read it" in str(e) or "while the diff was written" in str(e), str(e)
                refused += 1
                continue
            read += 1
            assert not [n for n in names if SECRET_NAME in n], names
            assert SECRET_NAME.encode() not in data and SECRET_TEXT not in data
            assert SECRET_XATTR[1] not in data
            if op == "diff_size":
                assert int(data) < SECRET_SIZE, data
    finally:
        os.close(stop_write)
        os.close(progress_read)
        os.waitpid(pid, 0)
    assert read + refused == SWAP_ROUNDS


def _when_strata_is_made(monkeypatch, step, before):
    """step() run once, at the mkdir of <home>/.strata by a writer that found none (before or right after it):
    the window between finding no .strata and opening the one made, which a racing user aims at."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import home as home_module

    done = []
    real_mkdir = os.mkdir

    def mkdir(name, *args, **kwargs):
        if name != ".strata" or done:
            return real_mkdir(name, *args, **kwargs)
        done.append(True)
        if before:
            step()
            return real_mkdir(name, *args, **kwargs)
        try:
            return real_mkdir(name, *args, **kwargs)
        finally:
            step()

    class Hooked:
        def __getattr__(self, name):
            return mkdir if name == "mkdir" else getattr(os, name)

    monkeypatch.setattr(home_module, "os", Hooked())
    return done


@pytest.mark.parametrize("when", ["before-the-mkdir", "over-the-new-empty-one"])
def test_a_strata_the_remapped_root_puts_in_as_a_writer_makes_one_is_never_taken_over(home, monkeypatch, when):
    """A home Docker wrote: the remapped root's, no .strata. The remapped root puts a .strata of its own making
    (records, a planted file) under that name while the first writer makes one: before its mkdir, or renamed over
    the new, still empty, one. Root never chowns that directory nor reads its records as its own: it stays the
    user's, as it was, and the call is refused."""
    os.mkdir(home, 0o700)
    os.chown(home, REMAPPED, REMAPPED)
    mine = os.path.join(home, "mine")
    strata = os.path.join(home, ".strata")

    def prepare():
        os.mkdir(mine, 0o700)
        os.mkdir(os.path.join(mine, "layers"), 0o700)
        with open(os.path.join(mine, "layers", "base.json"), "w") as f:
            json.dump({"holders": ["forged"]}, f)
        with open(os.path.join(mine, "planted"), "w") as f:
            f.write("mine")
        return os.lstat(mine).st_ino

    planted = run_as(REMAPPED, REMAPPED, prepare)
    swapped = _when_strata_is_made(monkeypatch, lambda: run_as(REMAPPED, REMAPPED, lambda: os.rename(mine, strata)),
                                   before=when == "before-the-mkdir")
    with pytest.raises(OverlayError, match="was replaced as it was made"):
        _reopen(home).close()
    monkeypatch.undo()
    assert swapped
    st = os.lstat(strata)
    assert (st.st_ino, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (planted, REMAPPED, REMAPPED, 0o700)
    assert sorted(os.listdir(strata)) == ["layers", "planted"]
    assert os.lstat(os.path.join(strata, "layers")).st_uid == REMAPPED


@pytest.mark.parametrize("planted", ["record", "file"])
def test_an_earlier_versions_bookkeeping_holding_a_file_of_the_remapped_roots_is_not_taken_back(home, driver, planted):
    """Earlier versions gave the remapped root .strata and its directories; root wrote every file in them. A
    file that user put there (a record with holders of its choosing, any other file) is not root's: a writer
    does not take the directory back to read it as root's own, it refuses naming the file, and leaves the
    directory as it found it. Without it, the home is taken back as before."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    driver.create("base")
    driver.close()
    for name in PRIVATE:
        os.chown(os.path.join(home, name), REMAPPED, REMAPPED)
    where, name = (".strata/layers", "base.json") if planted == "record" else (".strata", "notes")
    target = os.path.join(home, where, name)

    def plant():
        with open(target + ".new", "w") as f:
            json.dump({"id": "base", "holders": ["forged"]}, f)
        os.rename(target + ".new", target)

    run_as(REMAPPED, REMAPPED, plant)
    with pytest.raises(OverlayError, match=r"holds '%s', which is 644, uid %d: not root's own" % (name, REMAPPED)):
        _reopen(home).close()
    # root's, closed: never handed back (another writer may be using it already), never used until put right
    assert _owner_and_mode(os.path.join(home, where)) == (0, 0, 0)
    assert os.lstat(target).st_uid == REMAPPED
    with pytest.raises(OverlayError, match=r"closed \(mode 0\)"):
        _reopen(home).close()
    os.unlink(target)
    os.chmod(os.path.join(home, where), 0o700)  # what the message says to do
    store = LayerStore(home, MAPS, MAPS)
    try:
        with store.locked():
            assert store.record("base").holders == set()
    finally:
        store.close()
    for name in PRIVATE:
        assert os.lstat(os.path.join(home, name)).st_uid == 0, name


# .strata's other directories, each made when first written, and a file of root's each may hold
STRATA_DIRS = {
    "image-records": "e" * 64 + ".json",
    "images": "c" * 64 + ".json",
    "made-merged": "base",
    "mounts": "base",
}


def _earlier_versions_strata_dir(home, name, strata_too=True):
    """A home with the layer base whose .strata/<name> (holding a file of root's: root wrote every file in them)
    belongs to the remapped root, 0700, as an earlier version left it; with strata_too .strata, layers/ and tmp/
    too, else they are root's (as a writer that took them back left them). The directory's path and the path of
    root's file in it."""
    driver = _reopen(home)
    try:
        driver.create("base")
    finally:
        driver.close()
    where = os.path.join(home, ".strata", name)
    if not os.path.isdir(where):
        os.mkdir(where, 0o700)
    entry = os.path.join(where, STRATA_DIRS[name])
    with open(entry, "w") as f:
        f.write("{}\n")
    os.chmod(entry, 0o600)
    for private in (PRIVATE if strata_too else ()) + (os.path.join(".strata", name),):
        os.chown(os.path.join(home, private), REMAPPED, REMAPPED)
    return where, entry


def _writer_run(home):
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    store = LayerStore(home, MAPS, MAPS)
    try:
        with store.locked():
            store.ensure_present("base")
    finally:
        store.close()


def _owner_and_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.mark.parametrize("name", sorted(STRATA_DIRS))
@pytest.mark.parametrize("strata_too", [True, False], ids=["with-strata", "strata-taken-back"])
def test_each_directory_of_strata_an_earlier_version_gave_the_remapped_root_is_taken_back_by_every_writer(
        home, name, strata_too):
    """Earlier versions gave the remapped root .strata's directories. layers/ and tmp/ are taken back by every
    writer; the others were taken back only when something was written in them, and until then that user still
    owned them: from a descriptor it opened while .strata was its own, it could remove or rename root's files
    in them (an image's record, a remembered config, a made-merged mark, a mount's record). Every writer takes
    each one back, so that the descriptor no longer lets that user change anything in it. Also when .strata is
    root's already (a writer took it back, and left that directory as it was)."""
    where, entry = _earlier_versions_strata_dir(home, name, strata_too)
    if strata_too:  # that user can open it while .strata is its own
        run_as(REMAPPED, REMAPPED, lambda: os.close(os.open(where, os.O_RDONLY | os.O_DIRECTORY)))
    held = os.open(where, os.O_RDONLY | os.O_DIRECTORY)  # the descriptor that user kept (run_as's child inherits it)

    def remove_roots_file():
        try:
            os.unlink(os.path.basename(entry), dir_fd=held)
        except OSError as e:
            return errno.errorcode[e.errno]
        return "removed"

    try:
        _writer_run(home)
        assert run_as(REMAPPED, REMAPPED, remove_roots_file) == "EACCES"
    finally:
        os.close(held)
    assert _owner_and_mode(where) == (0, 0, 0o700)
    assert _owner_and_mode(entry) == (0, 0, 0o600)


@pytest.mark.parametrize("name", sorted(STRATA_DIRS))
@pytest.mark.parametrize("run", ["reader", "check-run"])
def test_a_reader_or_a_check_run_leaves_an_earlier_versions_strata_directory_as_it_is(home, name, run):
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    where, entry = _earlier_versions_strata_dir(home, name)
    if run == "reader":
        open_driver(home, writable=False).close()
    else:
        store = LayerStore.for_check_run(home, MAPS, MAPS)
        try:
            with store.locked():
                store.ensure_present("base")
        finally:
            store.close()
    assert _owner_and_mode(where) == (REMAPPED, REMAPPED, 0o700)
    assert _owner_and_mode(os.path.join(home, ".strata")) == (REMAPPED, REMAPPED, 0o700)
    assert _owner_and_mode(entry) == (0, 0, 0o600)


@pytest.mark.parametrize("name", sorted(STRATA_DIRS))
@pytest.mark.parametrize("planted", ["file", "mode", "both"])
def test_what_the_remapped_root_put_in_an_earlier_versions_strata_directory_blocks_no_writer(home, name, planted):
    """A file the remapped root put in one of these directories (root never wrote it), or a mode it set on it by
    a descriptor it kept, fails no writer: each of their readers believes only root's own files, so the
    directory is taken back (root's 0700) with the file left in it, still that user's, and never read as root's.
    Refusing instead failed every writer (mounts, unmounts, the boot restore) on one planted file, and handed
    the directory back to that user to plant it again."""
    where, entry = _earlier_versions_strata_dir(home, name, strata_too=planted != "mode")
    mine = os.path.join(where, "planted")
    if planted in ("file", "both"):
        run_as(REMAPPED, REMAPPED, lambda: open(mine, "w").close())
    if planted in ("mode", "both"):
        os.chmod(where, 0o777)  # as that user could, by a descriptor it kept
    _writer_run(home)
    assert _owner_and_mode(where) == (0, 0, 0o700)
    assert _owner_and_mode(entry) == (0, 0, 0o600)
    if planted != "mode" and name != "made-merged":  # a writer prunes made-merged/'s files of no layer
        assert _owner_and_mode(mine)[0] == REMAPPED  # left, not believed


TAKEN_BACK = [os.path.join(".strata", name) for name in sorted(STRATA_DIRS)] + list(PRIVATE)


@pytest.mark.parametrize("name", TAKEN_BACK)
def test_a_mode_the_owner_sets_between_the_look_and_the_chown_does_not_outlive_the_take_back(home, monkeypatch, name):
    """The take-back looks at the directory, then chowns it to root. Its owner until then, by a descriptor it kept,
    can chmod it 0777, or give itself an ACL entry, in between: the chown keeps both, and root's directory was
    then open to that user, to remove or rename root's files in it. After the chown the directory is made 0700
    with no ACL, and checked."""
    where = _taken_from_an_earlier_version(home, name)
    real_fchown = os.fchown

    def chmod_first(fd, uid, gid):
        if uid == 0 and os.fstat(fd).st_uid == REMAPPED:  # what that user does, just before root's chown lands
            os.fchmod(fd, 0o777)
            subprocess.run(["setfacl", "-m", "u:%d:rwx" % (REMAPPED + 1), os.readlink("/proc/self/fd/%d" % fd)],
                           check=True)
        real_fchown(fd, uid, gid)

    monkeypatch.setattr(os, "fchown", chmod_first)
    _writer_run(home)
    monkeypatch.undo()
    assert _owner_and_mode(where) == (0, 0, 0o700)
    assert "system.posix_acl_access" not in os.listxattr(where)


@pytest.mark.parametrize("name", [os.path.join(".strata", name) for name in sorted(STRATA_DIRS)])
def test_an_acl_the_owner_gave_itself_does_not_outlive_the_take_back(home, name):
    """The owner can give itself (or anyone) an ACL entry on its directory, and a default one that files made
    in it inherit; the chown keeps both. The take-back removes them. (layers/ and tmp/, taken back only as
    earlier versions left them, 0700, are refused with an ACL, which shows as group bits.)"""
    where = _taken_from_an_earlier_version(home, name)
    subprocess.run(["setfacl", "-m", "u:%d:rwx" % (REMAPPED + 1), "-d", "-m", "u:%d:rwx" % (REMAPPED + 1), where],
                   check=True)
    assert "system.posix_acl_access" in os.listxattr(where)
    _writer_run(home)
    assert _owner_and_mode(where) == (0, 0, 0o700)
    assert not {"system.posix_acl_access", "system.posix_acl_default"} & set(os.listxattr(where))


def _taken_from_an_earlier_version(home, name):
    """The home with the layer base, its .strata/<name> (and .strata, layers/ and tmp/) the remapped root's 0700,
    as an earlier version left them: the path of .strata/<name>."""
    if name in PRIVATE:
        where, _entry = _earlier_versions_strata_dir(home, "mounts")
        return os.path.join(home, name)
    where, _entry = _earlier_versions_strata_dir(home, os.path.basename(name))
    return where


def _strata_planter(home, stop_read):  # pragma: no cover - runs in the forked child
    """As the remapped root, again and again: a .strata of its own making (a planted file in it) renamed to
    <home>/.strata, which takes the name when it is free or holds root's new, still empty, directory."""
    os.setgroups([])
    os.setresgid(REMAPPED, REMAPPED, REMAPPED)
    os.setresuid(REMAPPED, REMAPPED, REMAPPED)
    os.set_blocking(stop_read, False)
    mine, strata = os.path.join(home, "mine"), os.path.join(home, ".strata")
    while True:
        try:
            if os.read(stop_read, 1) == b"":
                return
        except BlockingIOError:
            pass
        try:
            os.mkdir(mine, 0o700)
            with open(os.path.join(mine, "planted"), "w") as f:
                f.write("mine")
        except OSError:
            pass  # there from the last round
        for _try in range(50):
            try:
                os.rename(mine, strata)
                break
            except OSError:
                continue


def test_a_racing_remapped_root_never_gets_its_strata_taken_for_roots(home):
    """The first writer of a home the remapped root owns makes .strata while that user, in a loop, renames a
    .strata of its own making to that name. Over many first runs root never ends up owning the user's
    directory: each run either makes and uses its own .strata or refuses."""
    os.mkdir(home, 0o700)
    os.chown(home, REMAPPED, REMAPPED)
    strata = os.path.join(home, ".strata")
    stop_read, stop_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the attacker
        try:
            os.close(stop_write)
            _strata_planter(home, stop_read)
        finally:
            os._exit(0)
    os.close(stop_read)
    taken = []
    try:
        for _round in range(200):
            try:
                _reopen(home).close()
            except OverlayError:
                pass
            try:
                st = os.lstat(strata)
            except FileNotFoundError:
                continue
            if st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700 and os.path.lexists(os.path.join(strata, "planted")):
                taken.append(_round)  # root's to use (one closed, mode 0, is refused by every run)
            shutil.rmtree(strata, ignore_errors=True)
    finally:
        os.close(stop_write)
        os.waitpid(pid, 0)
    assert not taken


def test_a_layer_name_swapped_for_a_symlink_before_the_unmount_never_unmounts_another_mount(
        home, driver, scratch, monkeypatch):
    """put() finds the layer's own mount in mountinfo, then unmounts it. The remapped root owns the home and may
    exchange the layer's name for a symlink to a directory whose merged/ is someone else's mount (another home's
    layer, a container's root) in between: UMOUNT_NOFOLLOW guards only the last name, so umount2 by path took
    that mount down. Only the very mount found is unmounted; here nothing is, and the call says why."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls

    driver.create("base")
    driver.create("app", "base")
    driver.get("app")
    victim = os.path.join(scratch, "victim", "merged")
    os.makedirs(victim)
    syscalls.mount("tmpfs", victim, "tmpfs", 0, "")
    layer, moved = os.path.join(home, "app"), os.path.join(home, "app-moved")
    calls = []
    real_entry = type(driver).mount_entry

    def swapped_after_the_check(self, layer_id, entries=None):
        found = real_entry(self, layer_id, entries)
        calls.append(layer_id)
        if layer_id == "app" and len(calls) == 1:  # the entry put() checks and unmounts: found, not yet unmounted
            os.rename(layer, moved)
            os.symlink(os.path.join(scratch, "victim"), layer)
        return found

    try:
        monkeypatch.setattr(type(driver), "mount_entry", swapped_after_the_check)
        with pytest.raises(OverlayError, match="no longer leads to the layer's mount"):
            driver.put("app")
        monkeypatch.undo()
        assert mounts.mount_at(victim) is not None, "root unmounted a mount that is not the layer's"
        assert mounts.mount_at(os.path.join(moved, "merged")) is not None
    finally:
        monkeypatch.undo()
        if os.path.islink(layer):
            os.unlink(layer)
            os.rename(moved, layer)
        if mounts.mount_at(os.path.join(layer, "merged")) is not None:
            syscalls.umount(os.path.join(layer, "merged"), syscalls.MNT_DETACH)
        if mounts.mount_at(victim) is not None:
            syscalls.umount(victim, syscalls.MNT_DETACH)


@pytest.fixture
def victim_mount(scratch):
    """Someone else's mount named merged (another home's layer, a container's root): scratch/victim/merged."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls

    victim = os.path.join(scratch, "victim", "merged")
    os.makedirs(victim)
    syscalls.mount("tmpfs", victim, "tmpfs", 0, "")
    try:
        yield victim
    finally:
        if mounts.mount_at(victim) is not None:
            syscalls.umount(victim, syscalls.MNT_DETACH)


def _layer_swapped_back(home, layer_id, moved):
    """The layer's own directory back under its name, its mount (if any) detached."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import syscalls

    layer = os.path.join(home, layer_id)
    if os.path.islink(layer):
        os.unlink(layer)
        os.rename(moved, layer)
    if mounts.mount_at(os.path.join(layer, "merged")) is not None:
        syscalls.umount(os.path.join(layer, "merged"), syscalls.MNT_DETACH)


def test_a_failed_chown_after_the_mount_never_unmounts_another_mount(home, layout, driver, victim_mount, monkeypatch):
    """Right after the mount, work/work is given to the remapped root. That user can make the chown fail (work/work
    swapped for a symlink) and, in the same moment, exchange the layer's name in its home for a symlink to a directory
    whose merged is someone else's mount: the cleanup unmounted merged/ by path and took that mount down. It now
    unmounts only the mount it made, through the layer directory's fd kept since the mount."""
    driver.create("base")
    driver.create("app", "base")
    layer, moved = os.path.join(home, "app"), os.path.join(home, "app-moved")
    name = "mount_overlay" if layout == "overlay" else "mount_overlay_stack"
    real_mount = getattr(mounts, name)

    def mount_then_swap(*args, **kwargs):
        real_mount(*args, **kwargs)

        def swap():
            work = os.path.join(layer, "work")
            os.rename(os.path.join(work, "work"), os.path.join(work, "old"))
            os.symlink("/nonexistent", os.path.join(work, "work"))
            os.rename(layer, moved)
            os.symlink(os.path.dirname(victim_mount), layer)
        run_as(REMAPPED, REMAPPED, swap)

    try:
        monkeypatch.setattr(mounts, name, mount_then_swap)
        with pytest.raises(OverlayError, match="cannot chown work/work"):
            driver.get("app")
        monkeypatch.undo()
        assert mounts.mount_at(victim_mount) is not None, "root unmounted a mount that is not the layer's"
        assert mounts.mount_at(os.path.join(moved, "merged")) is None, "the mount it made is undone"
    finally:
        monkeypatch.undo()
        _layer_swapped_back(home, "app", moved)


def test_put_never_unmounts_by_path_when_mountinfo_shows_no_mount(home, driver, scratch, victim_mount, monkeypatch):
    """put() found the layer's own mount, then looked again and, with the layer's name swapped for a symlink to a
    directory that had no mount at merged, found none: it unmounted merged/ by path, through whatever the name led to
    by then (here someone else's mount). With no mount entry there is nothing verified to unmount: none is."""
    driver.create("base")
    driver.create("app", "base")
    driver.get("app")
    layer, moved = os.path.join(home, "app"), os.path.join(home, "app-moved")
    calls = []
    real_entry = type(driver).mount_entry

    def gone_at_the_second_look(self, layer_id, entries=None):
        calls.append(layer_id)
        if layer_id == "app" and len(calls) == 2:
            os.rename(layer, moved)
            os.symlink(os.path.dirname(victim_mount), layer)
            return None
        return real_entry(self, layer_id, entries)

    try:
        monkeypatch.setattr(type(driver), "mount_entry", gone_at_the_second_look)
        try:
            driver.put("app")
        except OverlayError:
            pass  # refusing is fine; unmounting someone else's mount is not
        monkeypatch.undo()
        assert mounts.mount_at(victim_mount) is not None, "root unmounted a mount that is not the layer's"
    finally:
        monkeypatch.undo()
        _layer_swapped_back(home, "app", moved)


@pytest.mark.parametrize("name", [".tmp-planted", "planted.json"])
def test_a_directory_the_remapped_root_put_among_the_records_fails_no_writer(home, driver, name):
    """Earlier versions gave the remapped root .strata/layers; a writer takes it back while every entry is root's
    file or a 0700 directory (of root's or that user's). A directory that user put there named like a record or a
    killed write's temp was then unlinked by every writer's prune of orphan records (EISDIR): each run failed.
    No directory is pruned: it stays."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    driver.create("base")
    driver.close()
    for private in PRIVATE:
        os.chown(os.path.join(home, private), REMAPPED, REMAPPED)
    planted = os.path.join(home, ".strata", "layers", name)
    run_as(REMAPPED, REMAPPED, lambda: os.mkdir(planted, 0o700))
    store = LayerStore(home, MAPS, MAPS)
    try:
        with store.locked():
            store.ensure_present("app", "base")
    finally:
        store.close()
    assert os.path.isdir(planted)


def _app_on_base_with_a_strata_dir_given_away(home, name):
    """Layers base and app on it, with .strata, its layers/ and tmp/, and .strata/<name> the remapped root's, as
    an earlier version left them: the path of .strata/<name>."""
    driver = _reopen(home)
    try:
        driver.create("base")
        driver.create("app", "base")
    finally:
        driver.close()
    where = os.path.join(home, ".strata", name)
    os.makedirs(where, 0o700, exist_ok=True)
    for private in PRIVATE + (os.path.join(".strata", name),):
        os.chown(os.path.join(home, private), REMAPPED, REMAPPED)
    return where


def test_a_directory_the_remapped_root_put_under_a_layers_mount_record_blocks_neither_mount_nor_removal(home):
    """Every writer takes mounts/ back with whatever an earlier version let the remapped root put in it. A
    directory (not empty) under a layer's name there made that layer's mount fail with a bare IsADirectoryError
    (the record is renamed into place); it is now renamed aside before the record is written (never walked: that
    user may still fill it by a descriptor it kept, and a removal would never end), and the record is forgotten
    at the unmount as before."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    mounts_dir = _app_on_base_with_a_strata_dir_given_away(home, "mounts")
    entry = os.path.join(mounts_dir, "app")

    def plant():
        os.mkdir(entry, 0o700)
        os.mkdir(os.path.join(entry, "deeper"), 0o700)
        with open(os.path.join(entry, "deeper", "file"), "w") as f:
            f.write("mine")

    run_as(REMAPPED, REMAPPED, plant)
    store = LayerStore(home, MAPS, MAPS)
    try:
        with store.locked():
            store.ensure_mounted("app", "web")
            assert store.state("app")["mounted"]
            with open(entry, encoding="utf-8") as f:
                assert json.load(f)["source"].startswith("strata-")
            (aside,) = [n for n in os.listdir(mounts_dir) if n.startswith(".tmp-aside-")]
            # renamed aside, never walked: that user may still be filling it by a descriptor it kept
            assert os.path.isfile(os.path.join(mounts_dir, aside, "deeper", "file"))
            store.ensure_unmounted("app", "web")
            assert not os.path.lexists(entry)  # the record forgotten
            store.ensure_absent("app")
    finally:
        store.close()
    assert not os.path.lexists(os.path.join(home, "app"))


def test_exporting_a_file_whose_owner_the_maps_do_not_hold_names_it(home):
    """A file made in a layer on the host by hand (owned by host root, which maps to no container id) cannot
    be given an owner in the tarball: the error names the file and what to do, not only the unmapped id."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore
    from layertools import opener

    store = LayerStore(home, MAPS, MAPS)
    try:
        with store.locked():
            store.apply_diff("base", "", opener(TarBuilder().dir("etc").file("etc/conf", "x").bytes()))
        made = os.path.join(content_dir(home, "base"), "etc", "by-hand")
        with open(made, "w") as f:
            f.write("host root's")
        with pytest.raises(OverlayError, match=r"host id 0 is not mapped by .*chown it to a host id the maps hold") \
                as error:
            store.diff("base", "", io.BytesIO())
        assert error.value.path.endswith("etc/by-hand"), error.value.path
    finally:
        store.close()


@pytest.mark.parametrize("kind, fix", [
    ("file", "if you trust it, chown it to root and chmod it go-w; if not, remove it"),
    ("directory", "if you trust it, chown -R it to root and chmod it 0700; if not, remove it"),
    ("symlink", "a symlink is never root's bookkeeping: remove it (rm does not follow it)")])
def test_the_refusal_of_an_entry_not_roots_says_how_to_put_each_kind_right(home, driver, kind, fix):
    """Following the advice must end the refusal: a directory chmodded go-w only (0755) was refused again, and a
    symlink chowned and chmodded changed what it points to. The message says what fits the entry, then to open
    the directory, which stays root's, closed, until then."""
    driver.create("base")
    driver.close()
    for name in PRIVATE:
        os.chown(os.path.join(home, name), REMAPPED, REMAPPED)
    layers = os.path.join(home, ".strata", "layers")
    planted = os.path.join(layers, "planted")
    make = {"file": lambda: open(planted, "w").close(), "directory": lambda: os.mkdir(planted, 0o755),
            "symlink": lambda: os.symlink("/etc/shadow", planted)}[kind]
    run_as(REMAPPED, REMAPPED, make)
    with pytest.raises(OverlayError) as error:
        _reopen(home).close()
    assert "closed (mode 0) until it is put right: %s, then chmod 0700 %s and run again" % (fix, layers) \
        in str(error.value)


@pytest.mark.parametrize("name", ["mounts", "images", ".strata"])
def test_extended_attributes_the_owner_set_fail_no_writer(home, name):
    """The owner of a directory to be taken back can give it so many extended attributes that their names no
    longer fit one listxattr (E2BIG on tmpfs and xfs): the take-back looks up only the two ACL names."""
    where, _entry = _earlier_versions_strata_dir(home, "mounts")
    target = os.path.join(home, ".strata") if name == ".strata" else os.path.join(home, ".strata", name)
    os.makedirs(target, 0o700, exist_ok=True)
    os.chown(target, REMAPPED, REMAPPED)

    def many_names():
        for i in range(400):
            os.setxattr(target, "user.%03d" % i + "y" * 240, b"")

    run_as(REMAPPED, REMAPPED, many_names)
    with pytest.raises(OSError) as listed:
        os.listxattr(target)
    assert listed.value.errno == errno.E2BIG
    _writer_run(home)
    assert _owner_and_mode(target) == (0, 0, 0o700) and _owner_and_mode(where) == (0, 0, 0o700)


def test_a_directory_the_remapped_root_put_under_a_made_merged_mark_blocks_no_mount(home):
    """A directory (not empty) under a layer's name in a made-merged/ an earlier version gave the remapped root
    failed every mount of that layer that makes its merged/ (the mark could not replace it: ENOTEMPTY). It is
    renamed aside, never walked."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    merged = os.path.join(home, "app", "merged")
    marks = _app_on_base_with_a_strata_dir_given_away(home, "made-merged")
    if os.path.isdir(merged):
        os.rmdir(merged)  # as a layer Docker wrote, or overlay2's before its first mount

    def plant():
        os.makedirs(os.path.join(marks, "app", "deeper"), 0o700)

    run_as(REMAPPED, REMAPPED, plant)
    store = LayerStore(home, MAPS, MAPS)
    try:
        with store.locked():
            store.ensure_mounted("app", "web")
            assert store.state("app")["mounted"]
            store.ensure_unmounted("app", "web")
            store.ensure_absent("app")
    finally:
        store.close()
    assert [n for n in os.listdir(marks) if n.startswith(".tmp-aside-")]
    assert not os.path.lexists(os.path.join(home, "app"))


@pytest.mark.parametrize("name", sorted(STRATA_DIRS))
def test_a_directory_of_roots_left_open_is_sealed_not_refused(home, name):
    """One of these directories root's but open to others (0777), as a kill between a take-back's chown and its
    seal would leave it: every writer refused it, for good. Its readers believe only root's own files, so it is
    made 0700 as a take-back would."""
    where, _entry = _earlier_versions_strata_dir(home, name, strata_too=False)
    os.chown(where, 0, 0)
    os.chmod(where, 0o777)
    _writer_run(home)
    assert _owner_and_mode(where) == (0, 0, 0o700)


def test_a_take_back_that_cannot_seal_leaves_the_directory_roots(home, monkeypatch):
    """Once chowned to root, a directory is never handed back: another writer may already use it as root's (the
    take-back runs before the home's lock). A seal that fails is a refusal naming the directory, and the
    directory stays root's."""
    where, _entry = _earlier_versions_strata_dir(home, "mounts", strata_too=False)
    real = os.fchmod

    def refused(fd, mode):
        if os.fstat(fd).st_ino == os.stat(where).st_ino:
            raise OSError(errno.EPERM, "refused")
        real(fd, mode)

    monkeypatch.setattr(os, "fchmod", refused)
    with pytest.raises(OverlayError, match="could not be made a 0700 directory of root's with no ACL") as error:
        _writer_run(home)
    monkeypatch.undo()
    assert error.value.path == where and os.stat(where).st_uid == 0


@pytest.mark.parametrize("name", sorted(STRATA_DIRS))
def test_a_reader_reads_an_earlier_versions_directory_whatever_mode_its_owner_set(home, name):
    """Before the first writer takes it back, its owner may have set it 0755: a reader (overlay_info, a check
    run) refused the home for it, where the writer it predicts takes the directory back and goes on."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

    where, _entry = _earlier_versions_strata_dir(home, name)
    os.chmod(where, 0o755)
    store = LayerStore.for_check_run(home, MAPS, MAPS)
    try:
        with store.locked():
            assert store.state("base")["exists"]
            dirs = store.driver.dirs
            os.close(dirs.open_private(dirs.state_fd, name, False, os.path.dirname(where)))
    finally:
        store.close()
    assert _owner_and_mode(where) == (REMAPPED, REMAPPED, 0o755)


def test_a_symlink_in_place_of_the_config_cache_is_left_to_its_users(home):
    """Every writer takes back the four directories that are there; a symlink under one's name is no directory
    to take back (never followed), and is left to the code that uses it, as before: the config cache does
    without one (it is only a cache), and no longer fails every writer."""
    name = "images"
    driver = open_driver(home)
    try:
        driver.create("base")
    finally:
        driver.close()
    elsewhere = os.path.join(home, ".strata", "elsewhere")
    os.mkdir(elsewhere, 0o700)
    target = os.path.join(home, ".strata", name)
    if os.path.isdir(target):
        os.rmdir(target)
    os.symlink("elsewhere", target)
    store = __import__("ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store",
                       fromlist=["LayerStore"]).LayerStore(home)
    try:
        with store.locked():
            store.ensure_present("base")
    finally:
        store.close()
    assert os.path.islink(target)


def test_a_directory_under_a_layers_record_name_is_set_aside_by_the_next_save_and_by_a_removal(home):
    """A layers/ an earlier version gave the remapped root may hold a 0700 directory of that user's under a
    layer's record name (the take-back accepts its directories): the layer's record could then never be written
    (IsADirectoryError) nor removed (the advice, state=absent with force, ended in a bare IsADirectoryError)."""
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import records

    layers = os.path.join(home, "records")
    os.makedirs(layers, 0o700)
    os.makedirs(os.path.join(layers, "base.json", "inside"))
    fd = os.open(layers, os.O_RDONLY | os.O_DIRECTORY)
    try:
        record = records.LayerRecord("base", holders={"web"})
        records.save_record(fd, record)
        assert records.load_record(fd, "base", layers).holders == {"web"}
        os.unlink("base.json", dir_fd=fd)
        os.makedirs(os.path.join(layers, "base.json", "inside"))
        records.delete_record(fd, "base")
        assert not os.path.lexists(os.path.join(layers, "base.json"))
        assert len([n for n in os.listdir(layers) if n.startswith(".tmp-aside-")]) == 2
    finally:
        os.close(fd)
