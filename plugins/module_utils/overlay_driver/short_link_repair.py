# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Short links lost from an overlay2 home (l/ renamed or removed, one l/<LINK> deleted), made again.

An operator's rm, a restore from a backup that skipped symlinks, or the user a
remapped home belongs to (who may rename l/) leave layers whose LINK is in
their own link file but not in l/. Without this every mount of a layer on
them failed, and the home was locked out although nothing in it was lost.
containers/storage's overlay driver recreates them the same way
(recreateSymlinks: l/ made again, each missing l/<LINK> made from the layer's
link file); Docker 20.10's overlay2 makes l/ again when it starts and the
links not at all.

Only what is missing is made, never anything over a name that is there: a
link that points elsewhere, an l/ that is not a directory (or not root's), a
link file that names another layer's LINK or no valid LINK stay errors
(they may be an attack), and so does a LINK that two layers claim. A layer
counts only when its directory is root's, as this layout makes every layer
directory: the home's owner cannot plant one to claim a LINK.

plan() only reads (a check run and overlay_info report it); make() carries it
out, under the home's lock, by symlinkat relative to l/'s fd: the same link
and l/ the layer's creation makes (l/ root's, 0700; ../<id>/diff).
"""

import os

from . import faults, short_links
from .errors import OverlayError
from .graph_driver import lstat_at
from .layout import LINK_DIR


class RepairPlan:
    """What is missing: l/ itself (link_dir) and each {LINK: layer id} a layer's link file names alone."""

    __slots__ = ("link_dir", "links")

    def __init__(self, link_dir=False, links=None):
        self.link_dir = link_dir
        self.links = dict(links or {})

    def __bool__(self):
        return self.link_dir or bool(self.links)

    def paths(self, home):
        """What make() makes, as paths for a report: l/ first, then each link by name."""
        where = os.path.join(home, LINK_DIR)
        return ([where] if self.link_dir else []) + [os.path.join(where, link) for link in sorted(self.links)]


def plan(home_fd, claims):
    """The RepairPlan for claims [(layer id, LINK its link file names)] of root's layer directories.

    Nothing is planned when l/ is there but cannot take a link (a symlink, not a directory, not root's):
    where l/ is needed that stays the error it is.
    """
    try:
        link_fd = short_links.open_link_dir(home_fd)
    except OverlayError:
        return RepairPlan()
    try:
        if link_fd is not None:
            try:
                short_links.check_link_dir(link_fd)
            except OverlayError:
                return RepairPlan()
        owners = {}
        for layer_id, link in claims:
            owners.setdefault(link, []).append(layer_id)
        missing = {}
        for link, layers in owners.items():
            if len(layers) != 1:
                continue  # two layers claim it: which one it names cannot be known
            if link_fd is None or lstat_at(link_fd, link) is None:
                missing[link] = layers[0]
        return RepairPlan(link_fd is None and bool(missing), missing)
    finally:
        if link_fd is not None:
            os.close(link_fd)


def make(home_fd, tmp_fd, repair):
    """repair (a RepairPlan) carried out: l/ made (root's, 0700, in root's tmp_fd and renamed in) when missing,
    each link made where its name is free. A name taken meanwhile is left as it is; an l/ that is not the
    layout's (short_links.check_link_dir: a root's directory renamed to l) is refused before anything is
    written into it. Returns what was made, relative to the home."""
    if not repair:
        return []
    made = []
    link_fd = short_links.open_link_dir(home_fd)
    if link_fd is None:
        link_fd = short_links.make_link_dir(home_fd, tmp_fd)
        if link_fd is None:  # a concurrent writer's, or what the home's owner put there meanwhile
            link_fd = short_links.open_link_dir(home_fd)
        else:
            made.append(LINK_DIR)
    if link_fd is None:
        raise OverlayError("%s/ went away while it was being made again" % LINK_DIR)
    try:
        short_links.check_link_dir(link_fd)
        for link in sorted(repair.links):
            if short_links.restore_link(link_fd, link, repair.links[link]):
                made.append(os.path.join(LINK_DIR, link))
                faults.point("links.recreated")
    finally:
        os.close(link_fd)
    return made


__all__ = ["RepairPlan", "make", "plan"]
