"""Managers: plain calls with a module's params, reading the host once per run."""

from ansible_collections.strata.overlay.plugins.module_utils.managers import InfoManager, LayerManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import fscheck


def test_overlay_info_probes_d_type_once(home, monkeypatch):
    LayerManager({"home": home, "id": "base", "state": "present", "force": False}).run()
    probes = []
    real = fscheck.dtype_without_writing
    monkeypatch.setattr(fscheck, "dtype_without_writing", lambda path: probes.append(path) or real(path))
    result = InfoManager({"home": home, "id": "base", "changes": True}).run()
    assert result["status"]["d_type"] is True and [s["id"] for s in result["layers"]] == ["base"]
    assert len(probes) == 1
