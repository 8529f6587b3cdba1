"""Reading a layer into nothing: apply's errors and diff_id, with the layer named."""

import io

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import (
    LayerFormatError, OverlayError)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.results import ArchiveResult
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.verify import read_layer, verify_layer

from layertools import TarBuilder, sha256

LAYER = TarBuilder().dir("etc").file("etc/a", "12345").bytes()


def test_verify_layer_gives_the_archive_result():
    verified = verify_layer(io.BytesIO(LAYER), layer_id="l1", expected_diff_id=sha256(LAYER))
    assert (verified.size, verified.diff_id, verified.entries, verified.compression) == (5, sha256(LAYER), 2, "none")


def test_errors_name_the_layer():
    with pytest.raises(OverlayError, match="diff_id mismatch: expected sha256:00, the layer is sha256:") as e:
        verify_layer(io.BytesIO(LAYER), layer_id="l1", expected_diff_id="sha256:00")
    assert e.value.layer == "l1"

    def refuse():
        raise LayerFormatError("entry 'x': bad", path="/t")

    with pytest.raises(OverlayError, match="entry 'x': bad") as e:
        read_layer(refuse, "l2")
    assert (e.value.layer, e.value.path) == ("l2", "/t")


def test_no_expected_diff_id_checks_nothing():
    result = ArchiveResult(1, "sha256:ab", 1, "none")
    assert read_layer(lambda: result, "l3") is result
