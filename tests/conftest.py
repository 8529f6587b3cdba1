"""Make the collection importable as ansible_collections.strata.overlay from the source tree."""

import atexit
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _collection_root():
    try:
        import ansible_collections.strata.overlay  # noqa: F401  pylint: disable=unused-import
        return None
    except ImportError:
        pass
    root = tempfile.mkdtemp(prefix="strata-collections-")
    ns = os.path.join(root, "ansible_collections", "strata")
    os.makedirs(ns)
    os.symlink(REPO, os.path.join(ns, "overlay"))
    atexit.register(shutil.rmtree, root, True)
    sys.path.insert(0, root)
    return root


_collection_root()
