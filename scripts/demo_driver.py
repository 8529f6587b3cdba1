"""Stage and mount a small layer tree through the driver package directly, without Ansible.

Usage: demo_driver.py [HOME]   (default: a scratch dir under /tmp, removed afterwards)
"""

import io
import os
import shutil
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "module_utils"))

from overlay_driver.store import LayerStore  # noqa: E402  pylint: disable=wrong-import-position


def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    scratch = None if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="strata-demo-")
    home = sys.argv[1] if len(sys.argv) > 1 else os.path.join(scratch, "home")
    base = layer([("etc", None), ("etc/motd", b"base layer\n"), ("etc/old.conf", b"old\n"),
                  ("srv", None), ("srv/a", b"a\n"), ("srv/b", b"b\n")])
    child = layer([("etc/motd", b"child layer\n"), ("etc/.wh.old.conf", b""), ("srv", None),
                   ("srv/.wh..wh..opq", b""), ("srv/c", b"c\n")])
    store = LayerStore(home)
    try:
        with store.locked():
            for layer_id, parent, data in (("base", "", base), ("child", "base", child)):
                outcome = store.apply_diff(layer_id, parent, lambda d=data: io.BytesIO(d))
                print("%-6s changed=%s diff_id=%s" % (layer_id, outcome.changed, outcome.diff.diff_id))
            store.ensure_present("app", "child")
            store.ensure_mounted("app", "demo")
            state = store.state("app")
            print("mounted %s at %s" % (state["id"], state["path"]))
            for dirpath, _dirs, files in sorted(os.walk(state["path"])):
                for name in sorted(files):
                    path = os.path.join(dirpath, name)
                    with open(path) as f:
                        print("  /%s: %s" % (os.path.relpath(path, state["path"]), f.read().strip()))
            store.ensure_unmounted("app", "demo")
    finally:
        if scratch:
            with store.locked():
                for layer_id in ("app", "child", "base"):
                    store.ensure_absent(layer_id, force=True)
            shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
