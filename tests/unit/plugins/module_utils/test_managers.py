"""Managers: plain calls with a module's params, reading the host once per run."""

from ansible_collections.strata.overlay.plugins.module_utils.managers import InfoManager, LayerManager, MountManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import fscheck, mounts


def test_overlay_info_probes_d_type_once(home, monkeypatch):
    LayerManager({"home": home, "id": "base", "state": "present", "force": False}).run()
    probes = []
    real = fscheck.dtype_without_writing
    monkeypatch.setattr(fscheck, "dtype_without_writing", lambda path: probes.append(path) or real(path))
    result = InfoManager({"home": home, "id": "base", "changes": True}).run()
    assert result["status"]["d_type"] is True and [s["id"] for s in result["layers"]] == ["base"]
    assert len(probes) == 1


def test_overlay_mount_reads_mountinfo_three_times(home, monkeypatch):
    LayerManager({"home": home, "id": "base", "state": "present", "force": False}).run()
    LayerManager({"home": home, "id": "app", "parent": "base", "state": "present", "force": False}).run()
    reads = []
    real = mounts.read_mountinfo
    monkeypatch.setattr(mounts, "read_mountinfo", lambda *args: reads.append(args) or real(*args))
    params = {"home": home, "id": "app", "holder": "web", "mount_label": "", "force": False}
    result = MountManager(dict(params, state="mounted")).run()
    assert result["mounted"] and result["changed"]
    assert len(reads) == 3  # the run's cleanup, the state before, the state after
    MountManager(dict(params, state="unmounted")).run()
