"""Fixtures the driver tests of one layout share."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.overlay2_driver import Overlay2Driver


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
