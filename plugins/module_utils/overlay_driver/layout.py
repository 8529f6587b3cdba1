# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where everything lives under the layer home.

The layer directories are exactly the seed's (root/, upper/, work/, merged/,
lower-id). The store's own bookkeeping lives in <home>/.strata, a name no
valid layer id can take, so the seed's driver would read the same layers.
"""

import errno
import os
import re

from .ids import validate_layer_id

# where a home is when a task names none
DEFAULT_HOME = "/var/lib/strata/overlay"
# every layout a home can record (drivers.py has a driver for each); the default is the seed's
LAYOUTS = ("overlay", "overlay2")
DEFAULT_LAYOUT = "overlay"

ROOT = "root"
UPPER = "upper"
WORK = "work"
MERGED = "merged"
LOWER_ID = "lower-id"
LAYER_ENTRIES = (ROOT, UPPER, WORK, MERGED, LOWER_ID)
# what a layer directory of the overlay2 layout (Docker's) holds beside work/ and merged/ (overlay2_driver.py)
OVERLAY2_ENTRIES = ("diff", "link", "lower", "committed")
# <home>/l: the overlay2 layout's short links (short_links.py), the one name in a home that is no layer
LINK_DIR = "l"
LINK_LENGTH = 26  # Docker's idLength: a short link's name
_LINK_ID = re.compile(r"^[A-Z0-9]{%d}$" % LINK_LENGTH)

# the two kinds of layer: a plain root/ tree, or an overlay (upper/ over a lower layer's root/)
KIND_ROOT = "root"
KIND_OVERLAY = "overlay"

STATE_DIR = ".strata"
RECORDS_DIR = "layers"
TMP_DIR = "tmp"
LOCK_FILE = "lock"
# made when first written: image_records.py, images/config_cache.py, made_merged.py, mount_records.py
IMAGE_RECORDS_DIR = "image-records"
CONFIG_CACHE_DIR = "images"
MADE_MERGED_DIR = "made-merged"
MOUNTS_DIR = "mounts"


class LayerPaths:
    """The seed's paths of one layer."""

    __slots__ = ("home", "id", "dir", "root", "upper", "work", "merged", "lower_id")

    def __init__(self, home, layer_id):
        validate_layer_id(layer_id)
        self.home = home
        self.id = layer_id
        self.dir = os.path.join(home, layer_id)
        self.root = os.path.join(self.dir, ROOT)
        self.upper = os.path.join(self.dir, UPPER)
        self.work = os.path.join(self.dir, WORK)
        self.merged = os.path.join(self.dir, MERGED)
        self.lower_id = os.path.join(self.dir, LOWER_ID)


class HomeLayout:
    def __init__(self, home):
        self.home = os.path.abspath(home)
        self.state = os.path.join(self.home, STATE_DIR)
        self.records = os.path.join(self.state, RECORDS_DIR)
        self.tmp = os.path.join(self.state, TMP_DIR)
        self.lock = os.path.join(self.state, LOCK_FILE)

    def layer(self, layer_id):
        return LayerPaths(self.home, layer_id)

    def record(self, layer_id):
        validate_layer_id(layer_id)
        return os.path.join(self.records, layer_id + ".json")


def random_suffix():
    return os.urandom(6).hex()


def create_unique(directory, prefix, create, names=random_suffix):
    """create(name, dir_fd) on a fresh random name; returns (name or path, what create returned).

    directory is a directory fd (the name returned is relative to it) or a
    path. create is a mkdir, a symlink or an O_EXCL|O_NOFOLLOW open, so a name
    already taken (by anyone, also a planted symlink) is retried, never reused
    or followed. names() gives the random part of each try (short_links.py:
    Docker's link ids). This is tempfile's scheme without importing tempfile,
    whose dependencies would be loaded by every module run.
    """
    dir_fd = directory if isinstance(directory, int) else None
    for _attempt in range(100):
        name = prefix + names()
        if dir_fd is None:
            name = os.path.join(directory, name)
        try:
            return name, create(name, dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", prefix)


def make_temp_dir(directory, prefix):
    return create_unique(directory, prefix, lambda name, dir_fd: os.mkdir(name, 0o700, dir_fd=dir_fd))[0]


def open_temp_file(directory, prefix, mode=0o600):
    """(name or path, fd) of a new empty file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return create_unique(directory, prefix, lambda name, dir_fd: os.open(name, flags, mode, dir_fd=dir_fd))


def is_link_id(name):
    """A short link's name (26 characters A-Z and 0-9), what l/ holds."""
    return isinstance(name, str) and bool(_LINK_ID.match(name))
