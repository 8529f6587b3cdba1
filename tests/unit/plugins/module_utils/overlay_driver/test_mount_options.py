"""Mount options: nosuid,nodev by default on writable layers from images, as asked otherwise, kept at restore."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import mount_options, mounts, syscalls
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.image_records import (
    ImageRecord, ImageRecords)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from layertools import TarBuilder, opener

BASE = TarBuilder().dir("bin").file("bin/su", "x", mode=0o4755).bytes()
STAGED = "a" * 64  # how overlay_image names a layer: its ChainID's hex


@pytest.fixture
def store(home):
    s = LayerStore(home)
    with s.locked():
        yield s
        for layer_id in s.driver.layer_ids():
            s.ensure_unmounted(layer_id, force=True)


def live(store, layer_id):
    return mount_options.live(store.driver.mount_entry(layer_id))


def stage_image(store, base_id, recorded=True):
    store.apply_diff(base_id, "", opener(BASE))
    if recorded:
        ImageRecords(store.driver.dirs).save(ImageRecord("oci:/images/app:v1", "sha256:" + "b" * 64,
                                                         "sha256:" + "c" * 64, "linux/amd64", [base_id]))


@pytest.mark.parametrize("base_id", [STAGED, "debian"])
def test_a_writable_layer_on_an_image_is_mounted_nosuid_nodev_by_default(store, base_id):
    stage_image(store, base_id)  # recorded as an image's layer, whatever its name
    store.ensure_present("init", base_id)
    store.ensure_present("app", "init")
    after = store.ensure_mounted("app", "web").after
    assert after["mount_options"] == ["nodev", "nosuid"] == live(store, "app")
    assert store.record("app").mount_options == ["nodev", "nosuid"]


def test_a_staged_chain_id_counts_as_an_image_without_its_record(store):
    stage_image(store, STAGED, recorded=False)
    store.ensure_present("app", STAGED)
    assert store.ensure_mounted("app", "web").after["mount_options"] == ["nodev", "nosuid"]


def test_local_layers_and_image_layers_themselves_are_mounted_without_them(store):
    store.apply_diff("local", "", opener(BASE))
    store.ensure_present("app", "local")
    assert store.ensure_mounted("app", "web").after["mount_options"] == [] == live(store, "app")
    stage_image(store, STAGED)
    assert store.ensure_mounted(STAGED, "web").after["mount_options"] == []  # read-only already


@pytest.mark.parametrize("asked", [[], ["noexec"], ["nosuid", "nodev", "noexec", "nosuid"]])
def test_asked_options_are_what_the_mount_gets_and_what_is_recorded(store, asked):
    stage_image(store, STAGED)
    store.ensure_present("app", STAGED)
    store.ensure_mounted("app", "web", mount_options=asked)
    assert live(store, "app") == sorted(set(asked)) == store.record("app").mount_options
    # the same again, or none said, is no change; other options are refused while mounted
    assert not store.ensure_mounted("app", "web", mount_options=asked).changed
    assert not store.ensure_mounted("app", "web").changed
    with pytest.raises(OverlayError, match="mounted with mount_options"):
        store.ensure_mounted("app", "other", mount_options=["nosuid"] if asked != ["nosuid"] else [])
    assert store.record("app").holders == {"web"}


def test_restore_after_a_reboot_mounts_with_the_recorded_options(store):
    stage_image(store, STAGED)
    store.ensure_present("app", STAGED)
    store.ensure_mounted("app", "web", mount_options=["noexec"])
    syscalls.umount(store.driver.mount_entry("app").mount_point)  # what a reboot does
    assert store.state("app")["stale"]
    assert store.restore() == ["app"]
    assert live(store, "app") == ["noexec"]
    store.ensure_unmounted("app", "web")
    store.ensure_mounted("app", "web")  # mounted again later: as recorded
    assert live(store, "app") == ["noexec"]


def test_check_mode_predicts_the_options(store):
    stage_image(store, STAGED)
    store.ensure_present("app", STAGED)
    outcome = store.ensure_mounted("app", "web", check_mode=True)
    assert outcome.changed and outcome.after["mount_options"] == ["nodev", "nosuid"]
    assert store.driver.mount_entry("app") is None and store.record("app").mount_options is None


def test_unknown_options_are_refused_before_mounting(store):
    store.apply_diff("local", "", opener(BASE))
    with pytest.raises(OverlayError, match="unknown option suid"):
        store.ensure_mounted("local", "web", mount_options=["suid"])
    assert mounts.read_mountinfo() is not None and store.driver.mount_entry("local") is None


def test_a_layer_shown_by_a_read_only_bind_is_mounted_with_the_options_asked(store):
    """A base (the seed layout's root/, overlay2's diff/ of a layer with no lower) is shown by a read-only bind:
    the options asked were lost on its remount, so the task succeeded with the layer mounted without nosuid,
    nodev or noexec (and reported none)."""
    store.ensure_present("base")
    asked = ["nodev", "noexec", "nosuid"]
    after = store.ensure_mounted("base", "web", mount_options=asked).after
    assert live(store, "base") == asked == after["mount_options"]  # live: read from mountinfo
    store.ensure_unmounted("base", "web")
    assert store.driver.mount_entry("base") is None
