"""A missing home is never created as a side effect: only writers that create layers create it.

Each case names a home below a directory that does not exist either, so that any mkdir on the
way (the home, an ancestor, .strata, a lock file) shows.
"""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.managers import (
    DiffManager, InfoManager, LayerManager, MountManager)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError


@pytest.fixture
def missing(scratch):
    """(the missing home, the missing directory above it that nothing may create)."""
    above = os.path.join(scratch, "typo")
    return os.path.join(above, "home"), above


def _mount(home, state, **extra):
    params = {"home": home, "id": "app", "holder": "web", "mount_label": "", "force": False, "lazy": False,
              "state": state}
    params.update(extra)
    return params


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_unmount_on_a_missing_home_is_ok_unchanged_and_creates_nothing(missing, check_mode):
    home, above = missing
    result = MountManager(_mount(home, "unmounted"), check_mode=check_mode, diff=True).run()
    assert result["changed"] is False and result["mounted"] is False and result["holders"] == []
    assert result["diff"]["before"] == result["diff"]["after"]
    assert not os.path.lexists(above)


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_absent_on_a_missing_home_is_ok_unchanged_and_creates_nothing(missing, check_mode, force):
    home, above = missing
    result = LayerManager({"home": home, "id": "app", "state": "absent", "force": force}, check_mode=check_mode).run()
    assert result["changed"] is False and result["layer"]["exists"] is False
    assert not os.path.lexists(above)


def test_forced_unmount_on_a_missing_home_creates_nothing(missing):
    home, above = missing
    result = MountManager(_mount(home, "unmounted", force=True)).run()
    assert result["changed"] is False
    assert not os.path.lexists(above)


def test_mount_in_a_missing_home_fails_naming_the_home_and_creates_nothing(missing):
    home, above = missing
    with pytest.raises(OverlayError) as error:
        MountManager(_mount(home, "mounted")).run()
    assert "layer home %s does not exist" % home in error.value.message and error.value.path == home
    assert not os.path.lexists(above)


def test_diff_of_a_layer_in_a_missing_home_fails_naming_the_home_and_creates_nothing(missing, scratch):
    home, above = missing
    with pytest.raises(OverlayError, match="layer home %s does not exist" % home):
        DiffManager({"home": home, "id": "app", "dest": os.path.join(scratch, "out.tar")}).run()
    assert not os.path.lexists(above) and not os.path.lexists(os.path.join(scratch, "out.tar"))


def test_info_reports_the_home_missing_and_the_tree_says_so(missing):
    home, above = missing
    result = InfoManager({"home": home, "id": "app"}).run()
    assert result["exists"] is False and result["status"]["home_exists"] is False
    assert result["layers"] == [] and result["layer"] is None
    assert result["tree"] == ["no layer home at %s (it does not exist)" % home]
    assert not os.path.lexists(above)


def test_info_on_an_existing_home_says_it_exists(home):
    LayerManager({"home": home, "id": "base", "state": "present", "force": False}).run()
    result = InfoManager({"home": home}).run()
    assert result["exists"] is True and result["tree"] == ["base (root)"]


def test_writers_that_create_layers_create_the_home(missing):
    home = missing[0]
    LayerManager({"home": home, "id": "base", "state": "present", "force": False}).run()
    assert os.path.isdir(os.path.join(home, "base"))


def test_unmount_in_an_existing_home_still_works(home):
    LayerManager({"home": home, "id": "app", "state": "present", "force": False}).run()
    MountManager(_mount(home, "mounted")).run()
    result = MountManager(_mount(home, "unmounted")).run()
    assert result["changed"] is True and result["mounted"] is False
