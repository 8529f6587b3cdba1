"""Parallel module runs mounting and unmounting the same layers with distinct holders.

The home's lock serialises them: the final holders are exactly those whose
last operation was a mount, a layer is mounted exactly when it has holders,
no run fails (no EBUSY), and there is never more than one mount per layer. On both layouts (the home is
written in the test's layout by the first run; the later runs find it recorded).
"""

import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from layertools import TarBuilder
import modules

WORKERS = 8
OPS_PER_WORKER = 28  # 224 module runs
LAYERS = ("app1", "app2")


def test_parallel_mounts_and_unmounts(scratch, home, layout):
    base = os.path.join(scratch, "base.tar")
    with open(base, "wb") as f:
        f.write(TarBuilder().dir("etc").file("etc/motd", "base\n").bytes())
    assert modules.run("overlay_apply_diff", {"id": "base", "home": home, "src": base, "remote_src": True,
                                              "layout": layout})[0] == 0
    for layer in LAYERS:
        assert modules.run("overlay_layer", {"id": layer, "parent": "base", "home": home})[0] == 0

    rng = random.Random(20261127)
    plans = [[(rng.choice(LAYERS), rng.choice(("mounted", "unmounted"))) for _op in range(OPS_PER_WORKER)]
             for _worker in range(WORKERS)]
    failures = []
    max_mounts = {layer: 0 for layer in LAYERS}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            with open("/proc/self/mountinfo") as f:
                points = [line.split()[4] for line in f]
            for layer in LAYERS:
                n = points.count(os.path.join(home, layer, "merged"))
                max_mounts[layer] = max(max_mounts[layer], n)

    def worker(index):
        holder = "h%d" % index
        for layer, state in plans[index]:
            rc, result, err = modules.run("overlay_mount", {"id": layer, "home": home, "holder": holder,
                                                            "state": state})
            if rc != 0:
                failures.append((holder, layer, state, result, err))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(worker, range(WORKERS)))
    stop.set()
    watcher.join()

    assert failures == []
    expected = {layer: set() for layer in LAYERS}
    for index, plan in enumerate(plans):
        last = {}
        for layer, state in plan:
            last[layer] = state
        for layer, state in last.items():
            if state == "mounted":
                expected[layer].add("h%d" % index)
    rc, info, err = modules.run("overlay_info", {"home": home})
    for layer in LAYERS:
        state = next(item for item in info["layers"] if item["id"] == layer)
        assert set(state["holders"]) == expected[layer]
        assert state["mounted"] == bool(expected[layer])
        assert max_mounts[layer] <= 1
    assert sum(len(p) for p in plans) >= 200
    # release everything: nothing may stay mounted
    for layer in LAYERS:
        modules.run("overlay_mount", {"id": layer, "home": home, "state": "unmounted", "force": True})
    with open("/proc/self/mountinfo") as f:
        assert home not in f.read()
