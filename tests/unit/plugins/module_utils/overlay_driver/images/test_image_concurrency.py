"""Stagings that race or die: two runs of images sharing a base, and a run killed mid-blob."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import stage as stage_module
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from fake_registry import FakeRegistry
from imagetools import Image, mkimages
from layertools import content_dir, layer_names, read_in_layer

# .../ansible_collections/strata/overlay/plugins/module_utils/overlay_driver/images/stage.py
ROOT = os.path.abspath(os.path.join(os.path.dirname(stage_module.__file__), *[".."] * 7))


def _stage(home, src, out):
    try:
        out.put(stage_image(LayerStore(home), src).layers)
    except Exception as e:  # pylint: disable=broad-except
        out.put(repr(e))


def test_two_runs_of_images_sharing_a_base(home, scratch):
    base = mkimages.default_layers()[0]
    one = Image(tars=[base, mkimages.layer_tar([("one", b"1", 0o644)])])
    two = Image(tars=[base, mkimages.layer_tar([("two", b"2", 0o644)])])
    layouts = [i.write_layout(os.path.join(scratch, name)) for i, name in ((one, "one"), (two, "two"))]
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_stage, args=(home, "oci:" + layout, out)) for layout in layouts]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _p in procs]
    for p in procs:
        p.join(60)
    assert all(isinstance(r, list) for r in results), results
    base_changed = [r[0].changed for r in results]
    assert sorted(base_changed) == [False, True]  # one run staged the shared base, the other found it
    assert all(r[1].changed for r in results)
    assert layer_names(home) == sorted({one.ids[0], one.ids[1], two.ids[1]})


def test_a_run_killed_mid_blob_leaves_nothing_half_made(home, layout):
    server = FakeRegistry().start()
    try:
        image = Image()
        server.push("strata/app", image)
        data = server.blobs[image.layer_digest(1)]

        def stall(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data[:len(data) // 2])
            handler.wfile.flush()
            time.sleep(30)
        server.override["/v2/strata/app/blobs/" + image.layer_digest(1)] = stall
        src = "docker://%s/strata/app:v1" % server.netloc
        script = ("import sys; sys.path.insert(0, %r)\n"
                  "from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore\n"
                  "from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import "
                  "stage_image\n"
                  "stage_image(LayerStore(%r, layout=%r), %r, validate_certs=False)\n" % (ROOT, home, layout, src))
        proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not any(image.layer_digest(1) in p for p, _h in server.requests):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        assert os.listdir(content_dir(home, image.ids[0]))
        # The store makes a layer before applying its diff; killed in between, the layer is there without a
        # diff (no diff_id recorded) and without content: never a part of the blob.
        top = LayerStore(home).state(image.ids[1])
        if top["exists"]:
            assert top["diff_id"] is None
            assert not os.listdir(content_dir(home, image.ids[1]))
        # The next run clears what the killed one left, keeps the base and stages the rest.
        del server.override["/v2/strata/app/blobs/" + image.layer_digest(1)]
        del server.requests[:]
        store = LayerStore(home)
        result = stage_image(store, src, validate_certs=False)
        assert [layer.changed for layer in result.layers] == [False, True]
        assert not any(image.layer_digest(0) in p for p, _h in server.requests)
        assert os.listdir(os.path.join(home, ".strata", "tmp")) == []
        assert read_in_layer(home, image.ids[1], "app/run.sh", "rb").startswith(b"#!/bin/sh")
    finally:
        server.stop()
