# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""<home>/l/: the overlay2 layout's short links, and the link and lower files that name them.

Docker's overlay2 driver stacks up to 128 lower layers in one mount. Their
paths would not fit in the page the kernel takes as mount data, so every
layer has a short link l/<LINK> -> ../<id>/diff (LINK: 26 characters, also
written in <id>/link), a child lists the links of the layers below it in
<id>/lower (l/<LINK>:l/<LINK>:..., nearest first), and Docker mounts from
inside the home with those relative names. Only this file knows that shape.
The links are kept as Docker keeps them, so that Docker reads the home; root
reads them here (never letting the kernel resolve them) to know which
layers are below one, and mounts their diff/s by descriptor (overlay2_driver.py).

Everything is done by directory fd: the links are made without following a
name someone planted (a taken name is retried, never reused), and what a link,
a link file or a lower file says is checked before it is believed: a link
must point at ../<valid layer id>/diff and nowhere else.
"""

import base64
import errno
import os
import stat

from .errors import OverlayError
from .ids import validate_layer_id
from . import syscalls
from .layout import LINK_DIR, LINK_LENGTH, create_unique, is_link_id, make_temp_dir
from .walk import DIR_FLAGS

LINK_FILE = "link"
LOWER_FILE = "lower"
DIFF_DIR = "diff"

MAX_DEPTH = 128  # Docker's maxDepth: the lowers one mount stacks
_MAX_FILE = 2 * (len(LINK_DIR) + 2 + LINK_LENGTH) * MAX_DEPTH  # a lower file is never longer than this


def new_link_id():
    """26 characters of base32 (A-Z, 2-7) from 17 random bytes, as Docker's generateID makes them."""
    return base64.b32encode(os.urandom(17)).decode("ascii")[:LINK_LENGTH]


def validate_link_id(value, what="link id"):
    if not is_link_id(value):
        raise OverlayError("invalid %s %r: it must be %d characters A-Z and 0-9" % (what, value, LINK_LENGTH))
    return value


def link_target(layer_id):
    """What l/<LINK> points at: the layer's diff/, relative to l/."""
    return "../%s/%s" % (validate_layer_id(layer_id), DIFF_DIR)


def open_link_dir(home_fd, create=False, tmp_fd=None, uid=0, gid=0):
    """<home>/l opened (a real directory, never a symlink); None when missing and not create.

    create makes a missing l/ for uid:gid, 0700, in tmp_fd (root's .strata/tmp, out of reach of the home's
    owner, as a layer directory is built) and renames it into place without replacing anything. Under id
    maps the remapped root owns the home and may rename anything in it: a directory made at <home>/l and
    opened again by name might be the user's own by then, and root must never chown or fill that. One that
    a concurrent writer renamed in first is opened like any other (check_link_dir says whether it is l/).
    """
    try:
        return os.open(LINK_DIR, DIR_FLAGS, dir_fd=home_fd)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OverlayError("%s is a symlink or not a directory" % LINK_DIR)
        raise
    fd = make_link_dir(home_fd, tmp_fd, uid, gid)
    return fd if fd is not None else open_link_dir(home_fd)


def make_link_dir(home_fd, tmp_fd, uid=0, gid=0):
    """A new l/ (uid:gid, 0700) made in tmp_fd and renamed to <home>/l, never over anything: its fd, None when
    something took the name first (a concurrent first writer; what is there is not this call's to judge)."""
    if tmp_fd is None:
        raise ValueError("making %s/ needs root's temporary directory" % LINK_DIR)
    name = make_temp_dir(tmp_fd, "link-dir-")
    fd = None
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=tmp_fd)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, 0o700)
        try:
            syscalls.rename_noreplace(name, LINK_DIR, tmp_fd, home_fd)
            name = None
        except FileExistsError:
            os.close(fd)
            fd = None
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    finally:
        if name is not None:
            os.rmdir(name, dir_fd=tmp_fd)
    return fd


def check_link_dir(link_fd):
    """Refuses (OverlayError naming what is there) an l/ that root must not write a short link into.

    l/ is root's, 0700, as this layout makes it, and holds short links only. A directory of root's the
    home's owner renamed to l (a layer directory, .strata) holds something else, or is moded otherwise:
    writing links into it would put root's entries into a directory the user could never write.
    """
    st = os.fstat(link_fd)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        raise OverlayError("%s/ must be a directory of root's, mode 0700 (it is %o, uid %d); refusing to write short "
                           "links into it" % (LINK_DIR, stat.S_IMODE(st.st_mode), st.st_uid))
    with os.scandir(link_fd) as entries:
        for entry in entries:
            if not is_link_id(entry.name) or not entry.is_symlink():
                raise OverlayError("%s/ holds %r, which is not a short link (was another directory renamed to %s?); "
                                   "refusing to write short links into it" % (LINK_DIR, entry.name, LINK_DIR))


def make_link(link_fd, layer_id):
    """A new l/<LINK> -> ../<layer_id>/diff on a fresh LINK; returns LINK.

    symlink() fails on any name that exists (a planted file or link too), which is retried with
    another LINK, never replaced or followed.
    """
    target = link_target(layer_id)
    name = create_unique(link_fd, "", lambda name, dir_fd: os.symlink(target, name, dir_fd=dir_fd),
                         names=new_link_id)[0]
    return name


class MissingLink(OverlayError):
    """l/<LINK> (or l/ itself) is not there: what short_link_repair.py makes again from the layer's link file."""


def restore_link(link_fd, link_id, layer_id):
    """l/<link_id> -> ../<layer_id>/diff made again where the name is free; False when something has it (never
    replaced, never followed: what is there is checked where it is read)."""
    validate_link_id(link_id)
    try:
        os.symlink(link_target(layer_id), link_id, dir_fd=link_fd)
    except FileExistsError:
        return False
    return True


def resolve_link(link_fd, link_id):
    """The layer id that l/<link_id> points at; MissingLink when it is not there (link_fd None: no l/),
    OverlayError when it cannot be read or points elsewhere."""
    validate_link_id(link_id)
    if link_fd is None:
        raise MissingLink("the home has no %s/ directory of short links" % LINK_DIR)
    try:
        target = os.readlink(link_id, dir_fd=link_fd)
    except FileNotFoundError as e:
        raise MissingLink("short link %s/%s cannot be read: %s" % (LINK_DIR, link_id, e.strerror))
    except OSError as e:
        raise OverlayError("short link %s/%s cannot be read: %s" % (LINK_DIR, link_id, e.strerror))
    parts = target.split("/")
    if len(parts) != 3 or parts[0] != ".." or parts[2] != DIFF_DIR:
        raise OverlayError("short link %s/%s points at %r, not at a layer's %s/" % (LINK_DIR, link_id, target,
                                                                                    DIFF_DIR))
    try:
        return validate_layer_id(parts[1], "layer id in short link %s/%s" % (LINK_DIR, link_id))
    except OverlayError as e:
        raise OverlayError(e.cause)


def remove_link(link_fd, link_id):
    """l/<link_id> gone if it is there and is a symlink (nothing else of that name is touched)."""
    validate_link_id(link_id)
    try:
        st = os.stat(link_id, dir_fd=link_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        os.unlink(link_id, dir_fd=link_fd)


def _write_new(dir_fd, name, text, mode=0o644):
    """dir_fd/name created (O_EXCL|O_NOFOLLOW: never through a name that is there) holding text."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode("ascii"))
        os.fchmod(f.fileno(), mode)


def _read_small(dir_fd, name):
    """The text of dir_fd/name, a regular file read without following a link or blocking on a FIFO;
    None when it is missing."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise OverlayError("%s cannot be read: %s" % (name, e.strerror))
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # checked on the fd, before fdopen (which refuses a directory)
        os.close(fd)
        raise OverlayError("%s is not a regular file" % name)
    with os.fdopen(fd, "rb") as f:
        data = f.read(_MAX_FILE + 1)
    if len(data) > _MAX_FILE:
        raise OverlayError("%s is longer than any %s file can be" % (name, name))
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise OverlayError("%s is not ASCII" % name)


def write_link_file(layer_fd, link_id):
    _write_new(layer_fd, LINK_FILE, validate_link_id(link_id))


def read_link_file(layer_fd):
    """The layer's LINK from its link file; OverlayError when it is missing or not a link id."""
    text = _read_small(layer_fd, LINK_FILE)
    if text is None:
        raise OverlayError("the layer has no %s file" % LINK_FILE)
    return validate_link_id(text.strip(), "link id in the %s file" % LINK_FILE)


def parse_lower(text):
    """The link ids of a lower file's l/<LINK>:l/<LINK>:..., nearest first."""
    links = []
    for item in text.strip().split(":"):
        if not item.startswith(LINK_DIR + "/"):
            raise OverlayError("%s entry %r is not %s/<LINK>" % (LOWER_FILE, item, LINK_DIR))
        links.append(validate_link_id(item[len(LINK_DIR) + 1:], "link id in the %s file" % LOWER_FILE))
    if len(links) > MAX_DEPTH:
        raise OverlayError("%s names %d layers; a mount stacks at most %d" % (LOWER_FILE, len(links), MAX_DEPTH))
    return links


def format_lower(links):
    return ":".join("%s/%s" % (LINK_DIR, validate_link_id(link)) for link in links)


def read_lower(layer_fd):
    """The link ids below the layer, nearest first; [] for a base layer (no lower file)."""
    text = _read_small(layer_fd, LOWER_FILE)
    return [] if text is None else parse_lower(text)


def write_lower(layer_fd, links):
    if links:
        _write_new(layer_fd, LOWER_FILE, format_lower(links))


def child_lower(parent_link, parent_lower, layer_id=None):
    """The lower list of a child of a layer (its link, then its own lowers), refused past Docker's depth.

    Docker's getLower: the parent's diff/ is the nearest lower, and a chain
    one mount cannot stack is refused before anything of the child is made.
    """
    links = [validate_link_id(parent_link)] + list(parent_lower)
    if len(links) > MAX_DEPTH:
        raise OverlayError("a layer on this parent would stack %d lower layers; an overlay2 mount stacks at most %d "
                           "(Docker's limit)" % (len(links), MAX_DEPTH), layer=layer_id)
    return links


__all__ = ["LINK_DIR", "LINK_FILE", "LOWER_FILE", "MAX_DEPTH", "MissingLink", "check_link_dir", "child_lower", "is_link_id",
           "make_link", "make_link_dir", "new_link_id", "open_link_dir", "parse_lower", "read_link_file", "read_lower", "remove_link", "resolve_link",
           "restore_link", "validate_link_id", "write_link_file", "write_lower"]
