# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The images staged into a home, recorded beside its layers: what `overlay_image state=absent` removes.

A layer named by a ChainID says nothing about which image brought it, and
images share layers: removing "the image" needs to know which images are in the
home and which layers each one needs. overlay_image records every image it
stages in <home>/.strata/image-records/<name>.json: the reference it was staged
from, the manifest digest, the config digest, the platform asked for and the
ChainIDs of its layers, bottom first.

The directory is a 0700 directory of root (checked on its fd like every
bookkeeping directory) and each record is written as the layer records are
(temp file with O_EXCL|O_NOFOLLOW, fsync, rename). A record is read by fd
without following a symlink and checked whole before it is believed: a file
that is not a record of exactly that name and shape, or not root's own (a
.strata an earlier version gave the remapped root is read as it is, and that
user could put a record of its own there), is an error naming it, never a
list of layers to remove.
"""

import hashlib
import json
import os
import re

from .errors import OverlayError
from .ids import validate_layer_id
from .layout import IMAGE_RECORDS_DIR, STATE_DIR
from .state_files import open_regular, read_roots_own, require_roots_own, write_atomic

FORMAT_VERSION = 1
MAX_RECORD = 1 << 20
MAX_LAYERS = 1000
MAX_REFERENCE = 4096
_NAME = re.compile(r"^[0-9a-f]{64}\.json$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PLATFORM = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")
_KEYS = {"version", "reference", "manifest_digest", "config_digest", "platform", "layers"}


class ImageRecord:
    """One staged image: reference, manifest_digest (None for a docker archive), config_digest,
    platform (os/arch[/variant]) and layers (ChainID hex, bottom first)."""

    __slots__ = ("reference", "manifest_digest", "config_digest", "platform", "layers")

    def __init__(self, reference, manifest_digest, config_digest, platform, layers):
        self.reference = reference
        self.manifest_digest = manifest_digest
        self.config_digest = config_digest
        self.platform = platform
        self.layers = list(layers)

    @property
    def name(self):
        """The file name: one record per reference, platform and image (a tag that moved keeps both)."""
        identity = json.dumps([self.reference, self.platform, self.manifest_digest or self.config_digest])
        return hashlib.sha256(identity.encode("utf-8")).hexdigest() + ".json"

    @property
    def digest(self):
        """The digest that names this image: the manifest's, else (docker archive) the config's."""
        return self.manifest_digest or self.config_digest

    def matches(self, wanted):
        """Named by wanted: its reference, or its manifest or config digest (also as REF@DIGEST)."""
        if wanted == self.reference:
            return True
        digest = wanted.rsplit("@", 1)[1] if "@" in wanted else wanted
        return digest in (self.manifest_digest, self.config_digest)

    def as_dict(self):
        return {"version": FORMAT_VERSION, "reference": self.reference, "manifest_digest": self.manifest_digest,
                "config_digest": self.config_digest, "platform": self.platform, "layers": list(self.layers)}


def platform_text(platform):
    """(os, arch, variant) as os/arch[/variant]."""
    os_name, arch, variant = platform
    return "%s/%s%s" % (os_name, arch, "/" + variant if variant else "")


def _invalid(path, cause):
    return OverlayError("image record is not valid: %s (remove it, or stage the image again to rewrite it)"
                        % cause, path=path)


def parse_record(data, name, path):
    """The ImageRecord in data, checked whole; OverlayError naming path otherwise."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _invalid(path, "not JSON")
    if not isinstance(value, dict) or set(value) != _KEYS or value["version"] != FORMAT_VERSION:
        raise _invalid(path, "not a version %d record of %s" % (FORMAT_VERSION, ", ".join(sorted(_KEYS))))
    reference, layers = value["reference"], value["layers"]
    if not isinstance(reference, str) or not reference or len(reference) > MAX_REFERENCE:
        raise _invalid(path, "reference must be a non-empty string")
    for key in ("manifest_digest", "config_digest"):
        digest = value[key]
        if not (digest is None and key == "manifest_digest") and not (
                isinstance(digest, str) and _DIGEST.match(digest)):
            raise _invalid(path, "%s must be sha256:<64 hex digits>" % key)
    if not isinstance(value["platform"], str) or not _PLATFORM.match(value["platform"]):
        raise _invalid(path, "platform must be os/arch[/variant]")
    if not isinstance(layers, list) or not layers or len(layers) > MAX_LAYERS:
        raise _invalid(path, "layers must be a list of 1 to %d layer ids" % MAX_LAYERS)
    for layer_id in layers:
        if not isinstance(layer_id, str) or not re.match(r"^[0-9a-f]{64}$", layer_id):
            raise _invalid(path, "layer %r is not a ChainID's hex" % (layer_id,))
        validate_layer_id(layer_id)
    record = ImageRecord(reference, value["manifest_digest"], value["config_digest"], value["platform"], layers)
    if record.name != name:
        raise _invalid(path, "it is not named after the image it describes (%s)" % record.name)
    return record


def _roots_own_content(dir_fd, name):
    """The bytes of dir_fd/name when it is root's own regular file, else None: one that is not is rewritten
    by save even when it says the same, or every later read would refuse it."""
    return read_roots_own(dir_fd, name, MAX_RECORD)


class ImageRecords:
    """The image records of one opened home (a HomeDirs); read under its lock, written by its writer."""

    def __init__(self, dirs):
        self.dirs = dirs
        self.where = os.path.join(dirs.path, STATE_DIR, IMAGE_RECORDS_DIR)

    def _open(self, create):
        """The records directory's fd, None when there is none (and create is False)."""
        if self.dirs.state_fd is None:
            return None
        return self.dirs.open_private(self.dirs.state_fd, IMAGE_RECORDS_DIR, create,
                                      os.path.join(self.dirs.path, STATE_DIR))

    def all(self):
        """Every record, sorted by reference; an invalid one is an error naming its file."""
        fd = self._open(create=False)
        if fd is None:
            return []
        try:
            out = []
            for name in sorted(os.listdir(fd)):
                if name.startswith(".tmp-"):
                    continue  # a write a killed run left: the rename never happened
                path = os.path.join(self.where, name)
                if not _NAME.match(name):
                    raise _invalid(path, "its name is not <sha256 hex>.json")
                f = open_regular(fd, name)
                if f is None:
                    raise _invalid(path, "it is not a regular file")
                with f:
                    try:
                        require_roots_own(os.fstat(f.fileno()))
                    except ValueError as e:
                        raise OverlayError("image record is not root's own, so another user could have written "
                                           "the layers it names: %s; if not, remove it" % e, path=path)
                    data = f.read(MAX_RECORD + 1)
                if len(data) > MAX_RECORD:
                    raise _invalid(path, "larger than %d bytes" % MAX_RECORD)
                out.append(parse_record(data, name, path))
            return sorted(out, key=lambda r: (r.reference, r.name))
        finally:
            os.close(fd)

    def save(self, record):
        """Write record (replacing the one of the same name); True when the file's content changed."""
        fd = self._open(create=True)
        try:
            payload = json.dumps(record.as_dict(), sort_keys=True, indent=1).encode("utf-8") + b"\n"
            if _roots_own_content(fd, record.name) == payload:
                return False
            write_atomic(fd, record.name, payload, 0o600)
            return True
        finally:
            os.close(fd)

    def delete(self, record):
        fd = self._open(create=False)
        if fd is None:
            return
        try:
            os.unlink(record.name, dir_fd=fd)
            os.fsync(fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def would_change(self, record):
        """Whether save(record) would write (for check mode)."""
        fd = self._open(create=False)
        if fd is None:
            return True
        try:
            current = _roots_own_content(fd, record.name)
        finally:
            os.close(fd)
        return current != json.dumps(record.as_dict(), sort_keys=True, indent=1).encode("utf-8") + b"\n"
