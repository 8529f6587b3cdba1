# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a home holds of an image, read without the store, its lock or the layout drivers.

overlay_image_info answers from here, and through it a re-staging of an image
that is already there: the module ships and compiles the home's reader and its
records, not the applier, the copy or the change walk the drivers bring. It
reads what a read-only store reads (the home walked and checked against its
recorded root, root's own records only) and changes nothing: no lock, no
cleanup of what killed runs left, no repair. A layer is the image's when its
directory is there and its record names exactly that diff on exactly that
parent, as staging judges it (stage.store_has); whether its files are whole is
overlay_info's question, not this one's.
"""

import os
import stat

from .errors import OverlayError
from .home import WRITTEN_LATER, HomeDirs
from .ids import maps_as_dicts, parse_maps, root_pair, validate_layer_id
from .image_records import ImageRecords
from .layout import LINK_DIR, LOWER_ID, MADE_MERGED_DIR, RECORDS_DIR, ROOT, STATE_DIR, TMP_DIR, is_link_id
from .records import TAR_SPLIT_SUFFIX, load_record


class HomeView:
    """An opened home, for reading only; close() it (or use it as a context manager)."""

    def __init__(self, path, uid_maps=None, gid_maps=None):
        """uid_maps and gid_maps as a task gives them (None: not given); given, they must be the home's."""
        self.dirs = HomeDirs(path)
        try:
            recorded = self.dirs.recorded_maps()
            if recorded is None:
                kept = (parse_maps(uid_maps or [], "uid_maps"), parse_maps(gid_maps or [], "gid_maps"))
            else:
                kept = (parse_maps(recorded["uid_maps"], "recorded uid_maps"),
                        parse_maps(recorded["gid_maps"], "recorded gid_maps"))
                for what, given, theirs in (("uid_maps", uid_maps, kept[0]), ("gid_maps", gid_maps, kept[1])):
                    if given is not None and maps_as_dicts(parse_maps(given, what)) != maps_as_dicts(theirs):
                        raise OverlayError("the home was set up with %s %s; this call passes %s. The maps decide "
                                           "who owns every file in the home: leave %s out to use the recorded ones"
                                           % (what, maps_as_dicts(theirs) or "[] (identity)",
                                              maps_as_dicts(parse_maps(given, what)) or "[]", what),
                                           path=self.dirs.path)
            self.dirs.settle(*root_pair(*kept), create=False)
            self.layout = self.dirs.recorded_layout()
        except BaseException:
            self.dirs.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.dirs.close()

    @property
    def exists(self):
        return self.dirs.exists

    @property
    def path(self):
        return self.dirs.path

    def read_only(self):
        return self.dirs.read_only()

    def has_layer(self, layer_id, diff_id, parent):
        """The layer is there, its record naming exactly this diff on exactly this parent."""
        if not self.dirs.is_layer_dir(layer_id):
            return False
        try:
            record = load_record(self.dirs.records_fd, layer_id, os.path.join(self.dirs.path, STATE_DIR))
        except OverlayError:
            return False  # staging names what is wrong with it
        return record.diff_id == diff_id and (record.parent or "") == (parent or "")

    def upkeep_due(self):
        """Why a writer's run (overlay_image's own) would change something in this home beside staging, or None.

        A writer records the maps and the layout a home lacks, takes back and seals the bookkeeping directories
        an earlier version gave the remapped root, clears what killed runs left in tmp/, prunes records and
        marks of layers that are gone and the record temp files of killed writes, drops a killed apply's
        overlay parts (the seed's layout), and removes overlay2's short links to no layer and makes its lost
        ones again. Each is looked for here as the writer's own code finds it (named at each test), and only
        what the writer would change: what it leaves as it is (or refuses, which opening the home here
        refuses alike) is no upkeep, or the fast path would be off for good. None means a writer would find
        none of it to do: the overlay_image action answers for the module only then. Cheap: a listing of
        .strata, tmp/, the records and l/, and a stat per layer (a read of its link file when l/ is short)."""
        dirs = self.dirs
        if not dirs.exists or dirs.state_fd is None or dirs.records_fd is None or dirs.tmp_fd is None:
            return "the home has no bookkeeping yet"
        if not dirs.maps_recorded or self.layout is None:
            return "the home records no id maps or no layout"
        where = os.path.join(dirs.path, STATE_DIR)
        for name, fd in ((where, dirs.state_fd), (RECORDS_DIR, dirs.records_fd), (TMP_DIR, dirs.tmp_fd)):
            if not _settled(fd):  # HomeDirs.settle: taken back from the remapped root
                return "%s is not root's 0700" % name
        for name in WRITTEN_LATER:  # HomeDirs._take_back_all
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirs.state_fd)
            except OSError:
                continue  # missing, or no directory: left as it is
            try:
                if not _settled(fd):
                    return "%s is not root's 0700" % name
                if name == MADE_MERGED_DIR and any(not dirs.is_layer_dir(n) and _regular(fd, n) for n in os.listdir(fd)):
                    return "%s marks a layer that is gone" % name  # MadeMerged.prune
            finally:
                os.close(fd)
        if os.listdir(dirs.tmp_fd):  # GraphDriver._clear_tmp
            return "tmp/ holds what a killed run left"
        layers = set(dirs.layer_ids())
        for name in os.listdir(dirs.records_fd):  # LayerStore._prune_orphan_records
            if name.startswith(".tmp-") and _unlinkable(dirs.records_fd, name):
                return "the records hold %s, a write a killed run left" % name
            for suffix in (".json", TAR_SPLIT_SUFFIX):
                layer_id = name[:-len(suffix)]
                if name.endswith(suffix) and _is_layer_id(layer_id) and layer_id not in layers and \
                        _unlinkable(dirs.records_fd, name):
                    return "the records hold %s, of a layer that is gone" % name
        return self._layout_upkeep(layers)

    def _layout_upkeep(self, layers):
        if self.layout == "overlay":
            for layer_id in layers:  # Driver._repair: a killed apply_diff's overlay parts beside its root/
                if _exists_in_layer(self.dirs.fd, layer_id, ROOT) and \
                        _exists_in_layer(self.dirs.fd, layer_id, LOWER_ID):
                    return "layer %s holds both root/ and lower-id" % layer_id
            return None
        if self.layout != "overlay2":
            return "the home's layout %r is not one this reader knows" % self.layout
        try:
            fd = os.open(LINK_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dirs.fd)
        except FileNotFoundError:
            return "l/ is missing" if layers else None
        except OSError:
            return None  # no directory: a writer makes nothing there, and refuses it where it is needed
        try:
            names = os.listdir(fd)
            for name in names:  # Overlay2Driver._repair: a link of our shape to no layer's diff/
                try:
                    target = os.readlink(name, dir_fd=fd)
                except OSError:
                    continue
                parts = target.split("/")
                if len(parts) == 3 and parts[0] == ".." and parts[2] == "diff" and _is_layer_id(parts[1]) and \
                        not _exists_in_layer(self.dirs.fd, parts[1], "diff"):
                    return "l/%s leads to no layer" % name
            if len(names) >= len(layers):  # Overlay2Driver._links_look_whole: nothing can have been lost
                return None
            for layer_id in sorted(layers):  # short_link_repair.plan: a layer's own LINK, missing from l/
                link = _in_layer(self.dirs.fd, layer_id, lambda fd: _read_small(fd, "link"))
                if link is not None and is_link_id(link) and not _exists_in(fd, link):
                    return "l/%s of layer %s is missing" % (link, layer_id)
        finally:
            os.close(fd)
        return None

    def has_record_for(self, reference, platform):
        """Whether the home records an image staged from reference for platform (os/arch[/variant]); True when
        its records cannot be read (then only the registry can tell)."""
        if self.dirs.state_fd is None:
            return False
        try:
            return any(r.reference == reference and r.platform == platform for r in ImageRecords(self.dirs).all())
        except (OSError, OverlayError):
            return True

    def records_image(self, record):
        """Whether the home's image record under record.name is exactly record (staging would write none)."""
        if self.dirs.state_fd is None:
            return False
        try:
            return not ImageRecords(self.dirs).would_change(record)
        except (OSError, OverlayError):
            return False


def _settled(fd):
    """Root's, writable by root alone: a bookkeeping directory a writer leaves as it is (HomeDirs._check_private
    takes back and seals any other it does not refuse)."""
    st = os.fstat(fd)
    return st.st_uid == 0 and not st.st_mode & 0o077


def _exists_in(dir_fd, path):
    try:
        os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _in_layer(dir_fd, layer_id, read):
    """read(fd) of the layer's directory, opened without following a link (None when it is none): in a remapped
    home the remapped root may put a link to anywhere in the place of a layer's name, and a path through it
    (O_NOFOLLOW holds for its last part only) would tell whether something exists there, or read it."""
    try:
        fd = os.open(layer_id, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return read(fd)
    finally:
        os.close(fd)


def _exists_in_layer(dir_fd, layer_id, name):
    return bool(_in_layer(dir_fd, layer_id, lambda fd: _exists_in(fd, name)))


def _unlinkable(dir_fd, name):
    """There and no directory (store._unlinkable_at)."""
    try:
        return not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _regular(dir_fd, name):
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _is_layer_id(name):
    try:
        validate_layer_id(name)
    except OverlayError:
        return False
    return True


def _read_small(dir_fd, path, limit=64):
    """The text of a small file (a layer's link file), never following a link nor blocking; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
