"""The merged/ a mount made: removed by the unmount, kept when it was there or written into."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.drivers import open_driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError


@pytest.fixture
def driver(home):
    d = open_driver(home)
    d.create("base", "")
    d.create("app", "base")
    if os.path.isdir(os.path.join(home, "app", "merged")):
        os.rmdir(os.path.join(home, "app", "merged"))  # as Docker 20.10 leaves a layer it put
    yield d
    d.close()


def test_made_then_dropped(driver):
    paths = driver.layout.layer("app")
    assert driver.made_merged.make("app", paths) is True
    assert os.path.isdir(paths.merged)
    assert driver.made_merged.make("app", paths) is False  # there now: not made twice
    driver.made_merged.drop("app", paths)
    assert not os.path.lexists(paths.merged)
    assert driver.made_merged.forget("app") is False  # the marker went with it


def test_one_that_was_there_is_kept(driver):
    paths = driver.layout.layer("base")
    os.mkdir(paths.merged)
    assert driver.made_merged.make("base", paths) is False
    driver.made_merged.drop("base", paths)
    assert os.path.isdir(paths.merged)


def test_written_into_is_kept_and_forgotten(driver):
    paths = driver.layout.layer("app")
    driver.made_merged.make("app", paths)
    open(os.path.join(paths.merged, "someones"), "w").close()
    driver.made_merged.drop("app", paths)
    assert os.path.isfile(os.path.join(paths.merged, "someones"))
    assert driver.made_merged.forget("app") is False


def test_a_symlink_at_merged_is_refused(driver, scratch):
    paths = driver.layout.layer("app")
    os.symlink(scratch, paths.merged)
    with pytest.raises(OverlayError, match="merged/ is not a directory"):
        driver.made_merged.make("app", paths)


def test_markers_of_removed_layers_are_pruned(driver):
    driver.made_merged.make("app", driver.layout.layer("app"))
    driver.made_merged.drop("app", driver.layout.layer("app"))
    driver.made_merged.make("app", driver.layout.layer("app"))
    driver.remove("app")  # forgets its marker itself
    assert driver.made_merged.prune() == []
    driver.made_merged.make("base", driver.layout.layer("base"))
    os.rename(os.path.join(driver.home, "base"), os.path.join(driver.home, "..", "gone"))
    assert [os.path.basename(p) for p in driver.made_merged.prune()] == ["base"]
