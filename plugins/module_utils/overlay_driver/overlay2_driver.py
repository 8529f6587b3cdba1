# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker's overlay2 layout, in Python: a layer costs what its diff costs.

On disk exactly what Docker 20.10's overlay2 driver writes, so that either
reads what the other wrote:

    <home>/l/<LINK> -> ../<id>/diff    short links (root's, 0700), short_links.py
    <home>/<id>/                       0710, root's with the remapped root's group
        diff/                          the layer's own files (0755, the remapped root's)
        link                           its LINK
        lower                          l/<LINK>:l/<LINK>:... of the layers below, nearest first
        work/                          overlay's work dir (0700), in layers with a lower
        merged/                        the mount point, made by get and removed by put
        committed                      (0600, empty) once a layer is built on it

A layer without a lower file is a base (KIND_ROOT): get hands out its diff/,
or binds it read-only at merged/. Any other is an overlay of its diff/ on
the diff/s of every layer below it. Docker mounts them from inside the home
by their short links; here the home may belong to a user (the remapped
root under uid/gid maps), who could swap l/ or a layer directory between
root's checks and the mount. So root reads the lower file and the links
itself, opens every diff/ by fd without following a name (in a layer
directory that is root's, whose link file names that LINK), and names them
to the kernel as /proc/self/fd/N, which is shorter than l/<LINK>: 128
lowers still fit in the page the kernel takes as mount data. apply_diff writes the tarball into the layer's own diff/ only, with
whiteouts in overlay's form (0/0 devices, the opaque xattr), as Docker's
does; the diff is applied to a fresh diff/ in .strata/tmp and exchanged in
once its digest is checked. The naive diff reads the diff/s stacked as
overlay would (overlay_view.py), never through a mount.
"""

import contextlib
import errno
import os
import stat

from . import faults, fd_limit, mounts, short_link_repair, short_links, syscalls, whiteouts
from .errors import OverlayError
from .graph_driver import GraphDriver, exporter, lstat_at
from .ids import to_container, validate_layer_id
from .layer_mounts import LayerMount
from .layout import KIND_OVERLAY, KIND_ROOT, MERGED, WORK, HomeLayout
from .changes import OPAQUE_DIR, changes_size, own_changes, with_opaque_dirs
from .overlay_view import TreeView
from .results import DiffResult

DIFF = short_links.DIFF_DIR
COMMITTED = "committed"
LAYER_DIR_MODE = 0o710  # Docker's: root's, the remapped root's group may enter
# what a layer directory of this layout may hold, and of which type
_DIR_ENTRIES = (DIFF, WORK, MERGED)
_FILE_ENTRIES = (short_links.LINK_FILE, short_links.LOWER_FILE, COMMITTED)


class Overlay2Paths:
    """One layer's paths in the overlay2 layout. root and upper name diff/ too: the base layer's read-only
    bind and the overlay's upperdir are both of diff/ (layer_mounts.py reads them by those names)."""

    __slots__ = ("home", "id", "dir", "diff", "root", "upper", "work", "merged", "link", "lower", "committed")

    def __init__(self, home, layer_id):
        validate_layer_id(layer_id)
        self.home = home
        self.id = layer_id
        self.dir = os.path.join(home, layer_id)
        self.diff = self.root = self.upper = os.path.join(self.dir, DIFF)
        self.work = os.path.join(self.dir, WORK)
        self.merged = os.path.join(self.dir, MERGED)
        self.link = os.path.join(self.dir, short_links.LINK_FILE)
        self.lower = os.path.join(self.dir, short_links.LOWER_FILE)
        self.committed = os.path.join(self.dir, COMMITTED)


class Overlay2Layout(HomeLayout):
    def layer(self, layer_id):
        return Overlay2Paths(self.home, layer_id)


class Overlay2Driver(GraphDriver):
    """Docker 20.10's overlay2 layout (see the module's docstring)."""

    LAYOUT = "overlay2"
    LAYOUT_PATHS = Overlay2Layout
    WHITEOUT_FORMAT = whiteouts.OVERLAY

    _plan = None  # a reader's repair plan, read once (_repair_plan)

    def _link_dir(self, layer_id=None, create=False, required=True, check=False):
        """<home>/l opened (a real directory), OverlayError when it is missing (None when not required: the
        links are then looked up in the repair plan, _resolve_lower). create: made (root's, 0700, in .strata/tmp
        and renamed in) when missing, by the first layer's creation, so that a home where nothing was built holds
        none; and, since a link is written into it next, refused unless it holds short links only
        (short_links.check_link_dir); check: refused so without creating anything (a check run's prediction)."""
        try:
            fd = short_links.open_link_dir(self.dirs.fd, create=create, tmp_fd=self.dirs.tmp_fd)
            if fd is not None and (create or check):
                try:
                    short_links.check_link_dir(fd)
                except BaseException:
                    os.close(fd)
                    raise
        except OverlayError as e:
            raise OverlayError(e.cause, layer=layer_id, path=os.path.join(self.home, short_links.LINK_DIR))
        if fd is None and required:
            raise OverlayError("the home has no %s/ directory of short links" % short_links.LINK_DIR, layer=layer_id,
                               path=os.path.join(self.home, short_links.LINK_DIR))
        return fd

    # -- what the layer's files say ---------------------------------------------

    def _read_layer(self, layer_id, reader):
        """reader(layer_fd) on the layer's directory, its OverlayErrors naming the layer."""
        layer_fd = self._open_layer_dir(layer_id)
        try:
            return reader(layer_fd)
        except OverlayError as e:
            raise OverlayError(e.cause, layer=layer_id, path=e.path or self.layout.layer(layer_id).dir)
        finally:
            os.close(layer_fd)

    def own_link(self, layer_id):
        """The layer's LINK, from its link file."""
        return self._read_layer(layer_id, short_links.read_link_file)

    def lower_links(self, layer_id):
        """The LINKs of the layers below, nearest first, from the lower file ([] for a base layer)."""
        return self._read_layer(layer_id, short_links.read_lower)

    def lower_ids(self, layer_id):
        """The ids of the layers below, nearest first: each LINK of the lower file resolved in l/ and
        checked to be that layer's own (its link file names it)."""
        links = self.lower_links(layer_id)
        if not links:
            return []
        link_fd = self._link_dir(layer_id, required=False)
        try:
            ids = []
            for link in links:
                try:
                    lower = self._resolve_lower(link_fd, link)
                except OverlayError as e:
                    raise OverlayError(e.cause, layer=layer_id, path=self.layout.layer(layer_id).lower)
                problem = self._lower_problem(layer_id, lower, link)
                if problem:
                    named = (short_links.LOWER_FILE, short_links.LINK_DIR, link, problem)
                    raise OverlayError("its %s file names %s/%s: %s" % named,
                                       layer=layer_id, path=self.layout.layer(layer_id).lower)
                ids.append(lower)
            return ids
        finally:
            if link_fd is not None:
                os.close(link_fd)

    def _resolve_lower(self, link_fd, link):
        """The layer l/<link> points at; a link that is missing (or all of l/), the layer whose link file
        alone names it (what make_repairs makes it point at again). Anything there is read as it is."""
        try:
            return short_links.resolve_link(link_fd, link)
        except short_links.MissingLink:
            layer_id = self._repair_plan().links.get(link)
            if layer_id is None:
                raise
            return layer_id

    # -- short links lost, made again (short_link_repair.py) ---------------------

    def _repair_plan(self):
        """What short_link_repair would make; a reader's (which changes nothing) is read once."""
        if not self.writable and self._plan is not None:
            return self._plan
        plan = short_link_repair.plan(self.dirs.fd, self._link_claims()) if self.dirs.fd is not None \
            else short_link_repair.RepairPlan()
        if not self.writable:
            self._plan = plan
        return plan

    def _link_claims(self):
        """(layer id, LINK) of every layer directory that is root's (the home's owner cannot plant one) and whose
        link file names a valid LINK; a layer without one is the layer's problem, said where it is used."""
        claims = []
        for layer_id in self.layer_ids():
            try:
                layer_fd = self._open_roots_layer_dir(layer_id, layer_id, "read")
            except OverlayError:
                continue
            try:
                claims.append((layer_id, short_links.read_link_file(layer_fd)))
            except OverlayError:
                continue
            finally:
                os.close(layer_fd)
        return claims

    def _lacks_lower_links(self, layer_id):
        """Whether l/ or a link the layer's lower file names is missing: a look at its lowers alone, so that a
        mount of a sound chain does not read every layer's link file. What is unusable is said where it is
        used."""
        try:
            links = self.lower_links(layer_id)
            link_fd = short_links.open_link_dir(self.dirs.fd) if links else None
        except OverlayError:
            return False
        if not links or link_fd is None:
            return bool(links)
        try:
            return any(lstat_at(link_fd, link) is None for link in links)
        finally:
            os.close(link_fd)

    def _links_look_whole(self):
        """Whether l/ is there with an entry for every layer directory: then no short link can have been lost
        unless another entry stands in its place, and a mount of the layer that needs it still finds it missing
        (_lacks_lower_links) and repairs it. One listing of l/ spares every writer's call reading each layer's
        link file (24 ms of CPU on a home of 1,000 layers)."""
        try:
            link_fd = short_links.open_link_dir(self.dirs.fd) if self.dirs.fd is not None else None
        except OverlayError:
            return False  # said where it is used
        if link_fd is None:
            return False
        try:
            return len(os.listdir(link_fd)) >= len(self.layer_ids())
        finally:
            os.close(link_fd)

    def repairs_due(self):
        """The paths make_repairs would make: l/ and the short links lost, read without changing anything."""
        if self._links_look_whole():
            return []
        return self._repair_plan().paths(self.home)

    def make_repairs(self):
        """l/ and every short link lost made again from the layers' link files (under the home's lock, as every
        writer's call); the paths made."""
        self._require_writer()
        if self._links_look_whole():
            return []
        return self._make_lost_links()

    def _make_lost_links(self):
        try:
            made = short_link_repair.make(self.dirs.fd, self.dirs.tmp_fd, self._repair_plan())
        except OverlayError as e:
            raise OverlayError(e.cause, path=os.path.join(self.home, short_links.LINK_DIR))
        return [os.path.join(self.home, name) for name in made]

    def _lower_problem(self, layer_id, lower, link):
        if lower == layer_id:
            return "a link to the layer itself"
        if not self.exists(lower):
            return "a link to %s, which is not a layer of this home" % lower
        try:
            if self.own_link(lower) != link:
                return "a link to %s, whose own link is another one" % lower
        except OverlayError as e:
            return "a link to %s, whose link file is unusable (%s)" % (lower, e.cause)
        return None

    def kind(self, layer_id):
        """A base (KIND_ROOT) has no lower file; any other layer is an overlay."""
        self._require(layer_id)
        has_lower = self._read_layer(layer_id, lambda fd: lstat_at(fd, short_links.LOWER_FILE) is not None)
        return KIND_OVERLAY if has_lower else KIND_ROOT

    def lower_layer(self, layer_id):
        """The layer right below (the lower file's first link), None for a base."""
        if self.kind(layer_id) == KIND_ROOT:
            return None
        lowers = self.lower_ids(layer_id)
        return lowers[0] if lowers else None

    def layer_problem(self, layer_id):
        """Why this layer's directory cannot be used, None when it can: a name no overlay2 layer holds or an
        entry of the wrong type, no diff/, a link file or lower file unusable, a lower naming no layer; and,
        as a mount would refuse it, a directory (its own or a lower's) that is not root's."""
        try:
            os.close(self._open_roots_layer_dir(layer_id, layer_id))
        except OverlayError as e:
            return e.cause
        problem = self._read_layer(layer_id, _entries_problem)
        if problem:
            return problem
        try:
            self.own_link(layer_id)
            for lower in self.lower_ids(layer_id):  # what a mount refuses (_open_lowers) is said here too
                os.close(self._open_roots_layer_dir(lower, layer_id))
        except OverlayError as e:
            return e.cause
        return None

    def kind_after_apply(self, exists, kind, parent):
        """A diff goes into the layer's own diff/ and changes no kind: a new layer is a base without parent,
        an overlay on one. Never the naive fallback (the store applies on the layer's own parent)."""
        if exists:
            return kind, False
        return (KIND_OVERLAY if parent else KIND_ROOT), False

    def metadata(self, layer_id):
        """Docker's overlay2 GetMetadata: UpperDir (diff/), WorkDir, MergedDir, and LowerDir (the lower
        diff/s, nearest first, joined by ':') for a layer with layers below it."""
        paths = self._require(layer_id)
        metadata = {"UpperDir": paths.diff, "WorkDir": paths.work, "MergedDir": paths.merged}
        lowers = self.lower_ids(layer_id)
        if lowers:
            metadata["LowerDir"] = ":".join(self.layout.layer(lower).diff for lower in lowers)
        return metadata

    def public_metadata(self, layer_id):
        """What a module may hand out: a base layer only at its merged/ (its diff/ is what every layer built on
        it shows); an overlay its own directories and the layer below by id, no path into a lower diff/."""
        paths = self._require(layer_id)
        if self.kind(layer_id) == KIND_ROOT:
            return {"MergedDir": paths.merged}
        return {"UpperDir": paths.diff, "WorkDir": paths.work, "MergedDir": paths.merged,
                "LowerId": self.lower_layer(layer_id)}

    def _mount(self, layer_id):
        paths = self.layout.layer(layer_id)
        base = self.exists(layer_id) and self.kind(layer_id) == KIND_ROOT
        return LayerMount(layer_id, paths, base, lambda: None, lambda: self.mount_records.source(layer_id))

    # -- create / remove ---------------------------------------------------------

    def require_child_possible(self, parent, layer_id):
        """A child's lowers are its parent and the parent's lowers: past Docker's 128 no mount stacks them."""
        short_links.child_lower(self.own_link(parent), self.lower_links(parent), layer_id)

    def require_create_possible(self, layer_id):
        """The new layer's short link goes into l/, which must hold short links only (a file, or a layer
        directory the home's owner renamed to l, is refused by the creation): said here without writing, so that
        a check run predicts that refusal with the same message. A missing l/ is made by the creation, and so
        is a missing home (a check run's, whose directory there is none to look in)."""
        if self.dirs.fd is None:
            return
        fd = self._link_dir(layer_id, required=False, check=True)
        if fd is not None:
            os.close(fd)

    def _populate(self, tmp_fd, layer_id, parent):
        """Docker's create: diff/ (0755, the remapped root's); on a parent also work/ (0700), the lower file
        (the parent's link, then its lowers; refused past Docker's depth before anything is made) and
        committed in the parent. The link is made when the directory is renamed in (_finish_layer_dir)."""
        lower = None
        if parent:
            validate_layer_id(parent, "parent id")
            if not self.exists(parent):
                raise OverlayError("parent layer %s does not exist" % parent, layer=layer_id,
                                   path=self.layout.layer(parent).dir)
            lower = short_links.child_lower(self.own_link(parent), self.lower_links(parent), layer_id)
            self.lower_ids(parent)  # every lower of the parent is a layer of this home
        self._mkdir_as(tmp_fd, DIFF, 0o755)
        if parent:
            self._mkdir_as(tmp_fd, WORK, 0o700)
            short_links.write_lower(tmp_fd, lower)
            self._read_layer(parent, _mark_committed)

    def _finish_layer_dir(self, tmp_fd, layer_id):
        """The layer directory root's with the remapped root's group, 0710 (Docker's), and its short link
        l/<LINK> -> ../<id>/diff with the link file. Returns the undo for a rename that fails."""
        os.fchown(tmp_fd, 0, self.root_gid)
        os.fchmod(tmp_fd, LAYER_DIR_MODE)
        link_fd = self._link_dir(layer_id, create=True)
        try:
            link = short_links.make_link(link_fd, layer_id)
            try:
                short_links.write_link_file(tmp_fd, link)
            except BaseException:
                short_links.remove_link(link_fd, link)
                raise
        finally:
            os.close(link_fd)
        return lambda: self._remove_link(link, layer_id)

    def _remove_link(self, link, layer_id):
        """l/<link> gone when it points at layer_id's diff/ (a link of the same name made since is not)."""
        link_fd = short_links.open_link_dir(self.dirs.fd)
        if link_fd is None:
            return
        try:
            try:
                if short_links.resolve_link(link_fd, link) != layer_id:
                    return
            except OverlayError:
                return
            short_links.remove_link(link_fd, link)
        finally:
            os.close(link_fd)

    def remove(self, layer_id):
        """Every layout's remove, and the layer's short link once its directory is out of the home."""
        link = None
        if self.exists(layer_id):
            try:
                link = self.own_link(layer_id)
            except OverlayError:
                link = None  # no usable link file: a link left to it is removed by a later cleanup
        try:
            return super(Overlay2Driver, self).remove(layer_id)
        finally:
            if link is not None and not self.exists(layer_id):
                self._remove_link(link, layer_id)

    def _repair(self, entries):
        """Short links to no layer: what a run killed between making a layer's link and renaming the layer
        in, or between removing a layer and its link, left behind."""
        link_fd = short_links.open_link_dir(self.dirs.fd)
        if link_fd is None:
            return []
        removed = []
        try:
            for name in os.listdir(link_fd):
                try:
                    target = short_links.resolve_link(link_fd, name)
                except OverlayError:
                    continue  # not one of ours in shape: left alone
                if not os.path.lexists(os.path.join(self.home, target)):
                    short_links.remove_link(link_fd, name)
                    removed.append(os.path.join(self.home, short_links.LINK_DIR, name))
        finally:
            os.close(link_fd)
        return removed

    # -- get ------------------------------------------------------------------

    def _mount_plan(self, layer_id, paths, readonly_root):
        """A base layer's diff/, or with readonly_root its read-only bind at merged/; an overlay of the diff/
        on every lower diff/, whose links, descriptors and page limit are checked here, before merged/ is
        made. When a short link of its lowers (or l/) is lost, they are made again first (make_repairs), as
        containers/storage's Get does."""
        if self.writable and self._lacks_lower_links(layer_id):
            self._make_lost_links()  # whatever l/ counts: a stray entry may stand where a lost link was
        if self.kind(layer_id) == KIND_ROOT:
            if not readonly_root:
                return paths.diff
            return lambda _mount_label, flags: self._bind_diff(layer_id, paths, flags)
        self._require_room(layer_id, paths, change=True)
        return lambda mount_label, flags: self._mount_overlay(layer_id, paths, mount_label, flags)

    def require_mount_possible(self, layer_id):
        """What _mount_plan checks of an overlay's mount (its lowers, the descriptors they need, the page of
        mount data), with the open-file limit left as it is."""
        paths = self._require(layer_id)
        if self.kind(layer_id) != KIND_ROOT:
            self._require_room(layer_id, paths, change=False)

    def _require_room(self, layer_id, paths, change):
        """The lowers sound, and room for their descriptors (the soft open-file limit raised when change) and
        for the mount data naming them, at the longest descriptor numbers the limit allows."""
        links = self.lower_links(layer_id)
        self.lower_ids(layer_id)
        # the lowers, the layer's diff/, work/ and merged/, its directory, l/ and one lower's directory at once
        try:
            limit = fd_limit.ensure_free(len(links) + 6, "mounting a layer on %d lower layers" % len(links), change)
            longest = mounts.fd_path(limit - 1 if 0 < limit < 10 ** 7 else 10 ** 7)
            mounts.stacked_overlay_data([longest] * (len(links) + 1), longest, longest)
        except OverlayError as e:
            raise OverlayError(e.cause, layer=layer_id, path=paths.dir)

    def _bind_diff(self, layer_id, paths, flags=0):
        layer_fd = self._open_roots_layer_dir(layer_id, layer_id)
        try:
            diff_fd = self._open_owned(layer_fd, DIFF, layer_id, paths.diff)
            try:
                mounts.bind_readonly(diff_fd, layer_fd, MERGED, where=paths.merged, flags=flags)
            finally:
                os.close(diff_fd)
        finally:
            os.close(layer_fd)

    # The home may belong to a user (the remapped root), who can rename l/ and any layer directory in it,
    # plant one of its own, or swap them back and forth while root mounts. So the kernel is never given a
    # name in the home to resolve: every lower is a diff/ root opened itself, by fd and without following a
    # name, in a layer directory that is root's and whose link file names the LINK the lower file lists.

    def _open_owned(self, layer_fd, name, layer_id, path, doing="mount"):
        """layer_fd/name as an O_PATH fd: a real directory on the home's filesystem (_open_part), owned by
        ids the maps give the remapped root (a root-only directory moved there is refused)."""
        fd = self._open_part(layer_fd, name, layer_id, path, doing)
        st = os.fstat(fd)
        try:
            to_container(st.st_uid, self.uid_maps)
            to_container(st.st_gid, self.gid_maps)
        except OverlayError:
            os.close(fd)
            raise OverlayError("%s/ belongs to %d:%d, which the uid/gid maps do not map; refusing to %s it"
                               % (name, st.st_uid, st.st_gid, doing), layer=layer_id, path=path)
        return fd

    def _open_roots_layer_dir(self, layer_id, mounting, doing="mount"):
        """The layer's directory opened from the home's fd (never through a symlink), refused unless it is
        root's as this layout makes every layer directory (Docker's too): one the home's owner made or moved
        there is not a layer. mounting: the layer whose mount needs it, for messages."""
        fd = self._open_layer_dir(layer_id)
        owner = os.fstat(fd).st_uid
        if owner != 0:
            os.close(fd)
            raise OverlayError("layer directory %s belongs to uid %d, not to root as every layer directory of "
                               "this layout; refusing to %s it" % (layer_id, owner, doing), layer=mounting,
                               path=self.layout.layer(layer_id).dir)
        return fd

    def _open_lowers(self, layer_fd, layer_id, fds, doing="mount"):
        """The diff/ of every layer below, nearest first, opened into fds (closed by the caller); and their
        paths, for the record. The lower file is read from the layer's open directory, each LINK resolved
        by reading l/<LINK> from l/'s fd, and the layer it names opened from the home's fd: a real directory,
        root's, whose link file (read from that fd) is that LINK; its diff/ opened from it (_open_owned)."""
        links = short_links.read_lower(layer_fd)
        if not links:
            raise OverlayError("the layer has no %s file" % short_links.LOWER_FILE, layer=layer_id,
                               path=self.layout.layer(layer_id).lower)
        link_fd = self._link_dir(layer_id, required=False)
        lowers, paths = [], []
        try:
            for link in links:
                lower = self._resolve_lower(link_fd, link)
                where = self.layout.layer(lower).diff
                if lower == layer_id:
                    raise OverlayError("its %s file names %s/%s: a link to the layer itself"
                                       % (short_links.LOWER_FILE, short_links.LINK_DIR, link), layer=layer_id)
                lower_fd = self._open_roots_layer_dir(lower, layer_id, doing)
                try:
                    if short_links.read_link_file(lower_fd) != link:
                        raise OverlayError("its %s file names %s/%s, a link to %s, whose own link is another one"
                                           % (short_links.LOWER_FILE, short_links.LINK_DIR, link, lower),
                                           layer=layer_id, path=self.layout.layer(lower).link)
                    fds.append(self._open_owned(lower_fd, DIFF, layer_id, where, doing))
                finally:
                    os.close(lower_fd)
                lowers.append(fds[-1])
                paths.append(where)
        except OverlayError as e:
            raise OverlayError(e.cause, layer=layer_id, path=e.path or self.layout.layer(layer_id).lower)
        finally:
            if link_fd is not None:
                os.close(link_fd)
        return lowers, paths

    def _mount_overlay(self, layer_id, paths, mount_label, flags=0):
        """The overlay of the layer's diff/ on every lower diff/, each named by the fd root opened and checked
        (/proc/self/fd/N, see _open_lowers), as are its work/ and merged/. A read-only mount (MS_RDONLY in
        flags: an image layer) stacks diff/ as the top lower, with no upper, so that nothing of the layer
        changes, not even overlay's own xattrs."""
        read_only = bool(flags & syscalls.MS_RDONLY)
        fds = []
        try:
            layer_fd = self._open_roots_layer_dir(layer_id, layer_id)
            fds.append(layer_fd)
            diff_fd = self._open_owned(layer_fd, DIFF, layer_id, paths.diff)
            fds.append(diff_fd)
            merged_fd = self._open_part(layer_fd, MERGED, layer_id, paths.merged)
            fds.append(merged_fd)
            work_fd = None
            if not read_only:
                work_fd = self._open_owned(layer_fd, WORK, layer_id, paths.work)
                fds.append(work_fd)
            lower_fds, lower_paths = self._open_lowers(layer_fd, layer_id, fds)
            if read_only:
                lower_fds, upper_fd = [diff_fd] + lower_fds, None
                shown = {"lowerdir": ":".join([paths.diff] + lower_paths)}
            else:
                upper_fd = diff_fd
                shown = {"lowerdir": ":".join(lower_paths), "upperdir": paths.diff, "workdir": paths.work}
            try:
                mounts.stacked_overlay_data([mounts.fd_path(fd) for fd in lower_fds],
                                            None if read_only else mounts.fd_path(upper_fd),
                                            None if read_only else mounts.fd_path(work_fd), mount_label)
            except OverlayError as e:
                raise OverlayError(e.cause, layer=layer_id, path=paths.dir)
            token = self.mount_records.new(layer_id, shown)
            shown_text = ",".join("%s=%s" % item for item in sorted(shown.items()))
            mounts.mount_overlay_stack(merged_fd, lower_fds, upper_fd, work_fd, token, mount_label,
                                       where=paths.merged, shown=shown_text, flags=flags)
            if read_only:
                return
            made = mounts.made_on(layer_fd, MERGED, merged_fd)
            try:
                self._chown_dir_at(work_fd, WORK)
            except OSError as e:
                self._undo_mount(layer_fd, MERGED, made, paths.merged)
                raise OverlayError("cannot chown work/work: %s" % e.strerror, layer=layer_id, path=paths.work)
        finally:
            for fd in fds:
                os.close(fd)

    # -- apply_diff -------------------------------------------------------------

    def _apply(self, paths, layer_id, parent, tmp, raw, compression, expected_diff_id, progress, recorder=None):
        """Docker's ApplyDiff on the layer's own parent: the tarball into diff/ only, overlay's whiteouts.
        Applied to a copy of diff/ in tmp and exchanged in once its digest is checked; a layer's diff/ is
        empty until its diff is applied, so the copy is an empty directory."""
        if (parent or None) != self.lower_layer(layer_id):
            raise OverlayError("a diff goes onto the layer's own parent (%s), not %s"
                               % (self.lower_layer(layer_id) or "none", parent or "none"), layer=layer_id)
        self._copy_from_layer(paths.diff, tmp[0], DIFF)  # its mode and owner too
        faults.point("apply.copied")
        result = self._apply_into(tmp, DIFF, raw, compression, expected_diff_id, layer_id, progress, recorder)
        faults.point("apply.before-rename")
        self._move_into_layer(tmp[0], DIFF, layer_id, exchange=True)
        faults.point("apply.after-rename")  # the diff is in, not yet recorded: the next run records it
        return self._result(result, False)

    def _build_applied(self, tmp_fd, temps, layer_id, parent, raw, compression, expected_diff_id, progress,
                       recorder=None):
        """The new layer's directory (as create makes it) with the tarball applied into its diff/."""
        self._populate(tmp_fd, layer_id, parent)
        faults.point("apply.copied")  # the seed's point after its copy: the layer's directory made, diff/ empty
        applied = self._apply_into((tmp_fd, temps[0]), DIFF, raw, compression, expected_diff_id, layer_id, progress,
                                   recorder)
        return self._result(applied, False)

    # -- naive diff --------------------------------------------------------------

    @contextlib.contextmanager
    def _changes(self, layer_id, parent):
        """Against the layer's own parent, read from its diff/ (and the parent's tree where diff/ has
        entries), as Docker's overlay2 reads diff/ only; against any other layer, the naive walk. The
        directories stay open until the block ends."""
        if (parent or None) != self.lower_layer(layer_id):
            with super(Overlay2Driver, self)._changes(layer_id, parent) as walked:
                yield walked
            return
        own = self._checked_diffs(layer_id, own_only=True)[0]
        parent_view = None
        try:
            parent_view = self._tree(parent)
            yield own_changes(own, parent_view), own
        finally:
            own.close()
            if parent_view is not None:
                parent_view.close()

    def diff(self, layer_id, parent, out, replay=None):
        """Against the layer's own parent, Docker 20.10's overlay2 Diff: the diff/ as it is, an opaque directory
        as its '.wh..wh..opq' and all the layer holds in it (with_opaque_dirs) rather than one whiteout per
        name of the parent's directory (or the tarball applied: replay).
        The changes and the size reported stay the change walk's, as changes() and diff_size() give them.
        Against another layer, the naive diff as in every layout."""
        if (parent or None) != self.lower_layer(layer_id):
            return super(Overlay2Driver, self).diff(layer_id, parent, out)
        if replay is not None:
            replayed = replay.replayed_diff(self, layer_id, parent, out)
            if replayed is not None:
                return replayed
        with self._changes(layer_id, parent) as (changes, own):
            exported_changes = with_opaque_dirs(changes)
            exported = exporter().export_changes(own, exported_changes, out, self.uid_maps, self.gid_maps)
            opaque = any(change.kind == OPAQUE_DIR for change in exported_changes)
            size = changes_size(own, changes) if opaque else exported.diff_size
        return DiffResult(exported.diff_id, exported.tar_size, changes, size)

    def _own_dir(self, layer_id):
        return self._checked_diffs(layer_id, own_only=True)[0]

    def _tree(self, layer_id):
        """The layer's diff/ over every lower diff/, as overlay stacks them; a base layer's diff/ alone."""
        if not layer_id:
            return None
        self._require(layer_id)
        return TreeView(self._checked_diffs(layer_id))

    def _checked_diffs(self, layer_id, own_only=False):
        """view_dirs.Dir roots of the layer's diff/ and (unless own_only) every lower diff/, nearest first, each
        opened and checked as a mount opens it (root's layer directory, its link file the LINK the lower file
        names, diff/ a real directory of the remapped root's on the home's filesystem)."""
        paths = self._require(layer_id)
        fds = []
        try:
            layer_fd = self._open_roots_layer_dir(layer_id, layer_id, "read")
            try:
                fds.append(self._open_owned(layer_fd, DIFF, layer_id, paths.diff, "read"))
                where = [paths.diff]
                if not own_only and short_links.read_lower(layer_fd):
                    where.extend(self._open_lowers(layer_fd, layer_id, fds, "read")[1])
            finally:
                os.close(layer_fd)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return self._view_roots(list(zip(fds, where)))


def _entries_problem(layer_fd):
    """None when the layer directory holds only an overlay2 layer's names, each of its type, and a diff/."""
    names = set(os.listdir(layer_fd))
    for name in sorted(names):
        if name not in _DIR_ENTRIES + _FILE_ENTRIES:
            return "the layer directory holds %r, which is not part of an overlay2 layer" % name
        st = lstat_at(layer_fd, name)
        if st is None:
            continue
        if name in _DIR_ENTRIES and not stat.S_ISDIR(st.st_mode):
            return "its %s is a symlink or not a directory" % name
        if name in _FILE_ENTRIES and not stat.S_ISREG(st.st_mode):
            return "its %s is a symlink or not a regular file" % name
    if DIFF not in names:
        return "the layer directory has no %s/ (damaged or half removed)" % DIFF
    if short_links.LOWER_FILE in names and WORK not in names:
        return "a layer with a %s file has no %s/" % (short_links.LOWER_FILE, WORK)
    return None


def _mark_committed(layer_fd):
    """The parent's committed file (empty, 0600), as Docker writes it when a layer is built on it: made
    without following a planted name, never blocking on a FIFO, left as it is when already there."""
    try:
        fd = os.open(COMMITTED, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600,
                     dir_fd=layer_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
            raise OverlayError("its %s is not a regular file" % COMMITTED)
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OverlayError("its %s is not a regular file" % COMMITTED)
    finally:
        os.close(fd)


__all__ = ["Overlay2Driver", "Overlay2Paths"]
