"""The registry of drivers: which layout a home is in, recorded with it, and a call naming another refused."""

import contextlib
import io
import json
import os
import stat

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.managers import LayerManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import drivers
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.driver import Driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.overlay2_driver import Overlay2Driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.home import HomeDirs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder

# these name the layouts themselves: each test says which one its home is in
pytestmark = pytest.mark.layout("overlay")

BASE = TarBuilder().dir("etc").file("etc/hostname", "base\n").bytes()


def opener(data):
    return lambda: contextlib.closing(io.BytesIO(data))


def layout_file(home):
    return os.path.join(home, ".strata", "layout.json")


def staged(home, **kw):
    """A home with a base layer and an overlay child on it, written by a store opened with kw."""
    store = LayerStore(home, **kw)
    try:
        with store.locked():
            store.apply_diff("base", "", opener(BASE))
            store.ensure_present("app", "base")
    finally:
        store.close()


def opened_layout(home, **kw):
    store = LayerStore(home, **kw)
    try:
        return store.driver.LAYOUT
    finally:
        store.close()


def test_a_new_home_records_its_layout_root_owned(home):
    staged(home)
    st = os.lstat(layout_file(home))
    assert stat.S_ISREG(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
    with open(layout_file(home)) as f:
        assert json.load(f) == {"layout": "overlay"}


def test_the_layout_named_is_recorded_and_later_calls_may_leave_it_out(home):
    staged(home, layout="overlay")
    assert opened_layout(home) == "overlay"
    assert opened_layout(home, layout="overlay") == "overlay"


def test_a_call_naming_another_layout_is_refused_before_anything_is_written(home):
    staged(home)
    before = sorted(os.listdir(home))
    with pytest.raises(OverlayError, match="the home was set up with the overlay layout; this call passes "
                                           "layout overlay2.*leave layout out"):
        LayerStore(home, layout="overlay2")
    assert sorted(os.listdir(home)) == before


def test_an_unknown_layout_is_refused(home):
    with pytest.raises(OverlayError, match="unknown layout 'aufs'"):
        LayerStore(home, layout="aufs")
    assert not os.path.lexists(home)


def test_a_home_without_the_record_is_in_the_layout_of_its_layer_directories(home):
    """Homes written before the layout was recorded: their directories say which layout they are in,
    and the next writer records it."""
    staged(home)
    os.unlink(layout_file(home))
    dirs = HomeDirs(home)
    try:
        assert drivers.layout_on_disk(dirs) == "overlay"
        assert drivers.choose_layout(dirs) == "overlay"
    finally:
        dirs.close()
    with pytest.raises(OverlayError, match="the home holds layers in the overlay layout; this call passes layout "
                                           "overlay2"):
        LayerStore(home, layout="overlay2")
    assert not os.path.lexists(layout_file(home))  # the refused call wrote nothing
    assert opened_layout(home) == "overlay"
    with open(layout_file(home)) as f:
        assert json.load(f) == {"layout": "overlay"}


def test_a_reader_records_nothing(home):
    staged(home)
    os.unlink(layout_file(home))
    LayerStore(home, read_only=True).close()
    assert not os.path.lexists(layout_file(home))


@pytest.mark.layout("overlay2")  # a home Docker's overlay2 wrote
@pytest.mark.parametrize("shape", ["short-links", "layer-dirs"])
def test_a_docker_overlay2_home_is_opened_with_the_overlay2_driver(home, shape):
    """Docker 20.10's overlay2 directories (l/, <id>/diff and link), with no .strata: read and written
    with the overlay2 driver, and a call naming the seed's layout is refused before anything is written."""
    os.mkdir(home, 0o700)
    if shape == "short-links":
        os.mkdir(os.path.join(home, "l"), 0o700)
    else:
        layer = os.path.join(home, "3f1c0a")
        os.makedirs(os.path.join(layer, "diff"))
        with open(os.path.join(layer, "link"), "w") as f:
            f.write("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    with pytest.raises(OverlayError, match="the home holds layers in the overlay2 layout; this call passes "
                                           "layout overlay"):
        LayerStore(home, layout="overlay")
    assert not os.path.lexists(os.path.join(home, ".strata"))
    for kw in ({"read_only": True}, {"layout": "overlay2"}, {}):
        store = LayerStore(home, **kw)
        try:
            assert isinstance(store.driver, Overlay2Driver)
        finally:
            store.close()
    assert opened_layout(home) == "overlay2"


@pytest.mark.parametrize("damage", ["other-owner", "group-writable", "symlink", "not-json", "wrong-shape",
                                    "unknown-name"])
def test_a_recorded_layout_is_believed_only_from_roots_own_well_formed_file(home, scratch, damage):
    staged(home)
    path = layout_file(home)
    if damage == "other-owner":
        os.chown(path, 1000, 1000)
    elif damage == "group-writable":
        os.chmod(path, 0o620)
    elif damage == "symlink":
        planted = os.path.join(scratch, "planted.json")
        with open(planted, "w") as f:
            f.write('{"layout": "overlay"}')
        os.unlink(path)
        os.symlink(planted, path)
    else:
        with open(path, "w") as f:
            f.write({"not-json": "{", "wrong-shape": '["overlay"]',
                     "unknown-name": '{"layout": "btrfs"}'}[damage])
    with pytest.raises(OverlayError, match="recorded layout"):
        LayerStore(home)


def test_the_option_names_only_the_layouts_this_version_has_a_driver_for():
    from ansible_collections.strata.overlay.plugins.module_utils.common import COMMON_ARGS

    assert COMMON_ARGS["layout"] == {"type": "str", "choices": drivers.available_layouts()}
    assert "default" not in COMMON_ARGS["layout"]  # left out: the home's own layout
    assert drivers.available_layouts() == sorted([Driver.LAYOUT, Overlay2Driver.LAYOUT]) == ["overlay", "overlay2"]


def test_a_module_naming_the_other_layout_fails_before_touching_the_home(home):
    staged(home)
    params = {"home": home, "id": "web", "parent": "app", "state": "present", "force": False, "layout": "overlay2"}
    with pytest.raises(OverlayError, match="set up with the overlay layout"):
        LayerManager(params).run()
    assert not os.path.lexists(os.path.join(home, "web"))
    params["layout"] = None
    assert LayerManager(params).run()["changed"]
