"""Fixtures the driver tests share: a writer's store on the test's home, and the overlay2 layout's driver."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.overlay2_driver import Overlay2Driver
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore


@pytest.fixture
def store(home):
    """A LayerStore on the test's home, locked as a writer for the whole test."""
    s = LayerStore(home)
    with s.locked():
        yield s


@pytest.fixture
def overlay2_driver(home):
    """An Overlay2Driver on the test's home; every layer's mount is put away afterwards, then it is closed."""
    d = Overlay2Driver(home)
    try:
        yield d
    finally:
        for layer_id in d.layer_ids():
            d.put(layer_id)
        d.close()
