# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How large and how old the controller's blob cache may grow: which blobs a prune removes.

A cache that only grows fills the controller's disk, one image update at a
time. The operator bounds it by age (blobs not used for that many days go)
and/or by size (the least recently used go until the rest fit). Use is what
the cache records itself, each blob's mtime set when a run uses it, not the
atime a noatime or relatime mount does not keep. Neither bound is set by
default: the collection cannot know which images the next play, or another
playbook sharing the cache, will want, and an air-gapped fleet's controller
may be the only place a blob is still found; the operator chooses.

This file decides only which names go; blob_cache.py removes them under each
blob's lock.
"""

import collections

from ..errors import OverlayError
from ..space import parse_size
from .errors import ImageError

DAY = 86400

# A blob in the cache as the prune sees it: its file name (the digest's hex), bytes, last use (mtime, epoch
# seconds), and whether it may go at all (one this run used may not).
CachedBlob = collections.namedtuple("CachedBlob", "name size used removable")


class CacheBounds:
    """max_age in seconds and max_size in bytes; None is no bound on that side."""

    def __init__(self, max_age=None, max_size=None):
        self.max_age = max_age
        self.max_size = max_size

    @classmethod
    def from_options(cls, max_age_days, max_size, image=None):
        """The task's controller_cache_max_age (days, a number) and controller_cache_max_size (bytes, or a size
        such as 20G), checked before anything is pulled."""
        age = None
        if max_age_days is not None and max_age_days != "":
            try:
                if isinstance(max_age_days, bool):
                    raise ValueError(max_age_days)
                age = float(max_age_days)
            except (TypeError, ValueError):
                age = -1
            if not age >= 0 or age == float("inf"):
                raise ImageError("controller_cache_max_age must be a number of days (0 or more), not %r"
                                 % (max_age_days,), image=image)
            age = age * DAY
        size = None
        if max_size is not None and max_size != "":
            try:
                size = parse_size(max_size, "controller_cache_max_size")
            except OverlayError as e:
                raise ImageError(e.cause, image=image)
            if size < 0:
                raise ImageError("controller_cache_max_size must be 0 or more bytes, not %r" % (max_size,), image=image)
        return cls(age, size)

    @property
    def unbounded(self):
        return self.max_age is None and self.max_size is None

    def select(self, blobs, now):
        """The names to remove, least recently used first: those unused for longer than max_age, then more of
        the oldest until the blobs left (those that may not go included) hold at most max_size bytes."""
        doomed = []
        left = sum(b.size for b in blobs)
        for blob in sorted(blobs, key=lambda b: (b.used, b.name)):
            if not blob.removable:
                continue
            too_old = self.max_age is not None and now - blob.used > self.max_age
            too_big = self.max_size is not None and left > self.max_size
            if too_old or too_big:
                doomed.append(blob.name)
                left -= blob.size
        return doomed
