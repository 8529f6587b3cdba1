"""The driver as one command per operation, so benchmarks time it as a whole process.

    driver_cli.py [--layout overlay|overlay2] OPERATION ...   (the layout of a new home; default: the home's,
                                                               overlay for a new one)
    driver_cli.py apply HOME ID PARENT TARBALL
    driver_cli.py apply-chain HOME PARENT PREFIX TARBALL...   (each tarball a child of the one before, ids
                                                               PREFIX00, PREFIX01, ...: one process for all)
    driver_cli.py create HOME ID PARENT
    driver_cli.py create-many HOME COUNT PARENT   (COUNT empty layers pad-0000... on PARENT, one process)
    driver_cli.py remove HOME ID
    driver_cli.py diff HOME ID OUT
    driver_cli.py hardlink-copy HOME ID DEST
    driver_cli.py unmount-all HOME
    driver_cli.py scan TARBALL    (the applier's reading alone: decompress, hash, decode and check
                                   every header, skip the data; no file system work)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins",
                                "module_utils"))

from overlay_driver.copy import copy_tree  # noqa: E402  pylint: disable=wrong-import-position
from overlay_driver.store import LayerStore  # noqa: E402  pylint: disable=wrong-import-position


def scan(tarball):
    # imported here so that the other operations time the modules as a run loads them
    from overlay_driver.tar_apply import clean_name  # pylint: disable=import-outside-toplevel
    from overlay_driver.hashing_reader import HashingReader  # pylint: disable=import-outside-toplevel
    from overlay_driver.tar_headers import Limits, iter_entries  # pylint: disable=import-outside-toplevel

    limits = Limits()
    with open(tarball, "rb") as raw:
        reader = HashingReader(raw)
        try:
            for entry in iter_entries(reader, limits):
                clean_name(entry.name, limits)
        finally:
            reader.close()
        print(reader.digest())


def main(argv):
    layout = None
    if argv[0] == "--layout":
        layout, argv = argv[1], argv[2:]
    if argv[0] == "scan":
        scan(argv[1])
        return
    op, home = argv[0], argv[1]
    store = LayerStore(home, layout=layout)
    with store.locked():
        if op == "apply":
            layer_id, parent, tarball = argv[2], argv[3], argv[4]
            store.apply_diff(layer_id, parent, lambda: open(tarball, "rb"))
        elif op == "apply-chain":
            parent, prefix = argv[2], argv[3]
            for i, tarball in enumerate(argv[4:]):
                layer_id = "%s%02d" % (prefix, i)
                store.apply_diff(layer_id, parent, lambda tarball=tarball: open(tarball, "rb"))
                parent = layer_id
        elif op == "create":
            store.ensure_present(argv[2], argv[3])
        elif op == "create-many":
            for number in range(int(argv[2])):
                store.ensure_present("pad-%04d" % number, argv[3])
        elif op == "remove":
            store.ensure_absent(argv[2], force=True)
        elif op == "diff":
            with open(argv[3], "wb") as out:
                store.diff(argv[2], store.parent_of(argv[2]), out)
        elif op == "hardlink-copy":
            copy_tree(store.layout.layer(argv[2]).root, argv[3], hardlink=True)
        elif op == "unmount-all":
            for state in store.layers():
                if state["mounted"]:
                    store.ensure_unmounted(state["id"], force=True)
        else:
            raise SystemExit("unknown operation %s" % op)


if __name__ == "__main__":
    main(sys.argv[1:])
