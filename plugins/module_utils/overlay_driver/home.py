# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layer home, opened once and never trusted by path.

Root writes and deletes under the home, so a home that another user could
redirect (own it, or write to it or to any directory above it) would let that
user point root's writes and removals anywhere. The path is therefore walked
from / one component at a time with O_NOFOLLOW, each directory checked as it
is opened; symlinks on the way are followed only when a trusted user made
them. A mistyped home must never become a place where cleanup deletes: `/`
and directories holding anything but layer directories and .strata are
refused. The bookkeeping directories are then opened relative to the home's
fd, and must be real 0700 directories of real root.

With id maps the home and the layer directories belong to the remapped root
(the seed's layout), and on most hosts some user can act as that uid
(/etc/subuid gives it away). So nothing root keeps for itself lives where that
uid can write: .strata and everything in it (records, maps, the lock, temp
dirs of layers being built) is root's 0700, and every writer takes back a
.strata, and each directory in it, that an earlier version gave to the
remapped root. The recorded maps decide who owns everything, so they are
believed only from a file root owns and nobody else can write.
"""

import errno
import json
import os
import stat

from .errors import OverlayError
from .ids import validate_layer_id
from .layout import (CONFIG_CACHE_DIR, IMAGE_RECORDS_DIR, LAYER_ENTRIES, LINK_DIR, MADE_MERGED_DIR, MOUNTS_DIR,
                     OVERLAY2_ENTRIES, RECORDS_DIR, STATE_DIR, TMP_DIR, is_link_id)
from .state_files import read_json, require_roots_own, write_atomic
from .syscalls import O_PATH
from .walk import DIR_FLAGS, GuardedWalk, untrusted_reason

MAPS_FILE = "maps.json"
LAYOUT_FILE = "layout.json"
# .strata's directories made when first written, and opened then (the home keeps no fd of them)
WRITTEN_LATER = (IMAGE_RECORDS_DIR, CONFIG_CACHE_DIR, MADE_MERGED_DIR, MOUNTS_DIR)


_ACLS = ("system.posix_acl_access", "system.posix_acl_default")


def _seal(fd, path):
    """A directory just chowned to root made root's 0700, with no ACL, and checked so: its owner until the chown
    could change its mode, or give itself an ACL entry (one that newly made files inherit too), by a descriptor
    it kept, between the look at the directory and the chown; the chown keeps both. Only the two ACL names are
    looked at: the list of all (which that user can make too long to list, E2BIG) is not."""
    try:
        os.fchmod(fd, 0o700)
        for acl in _ACLS:
            try:
                os.removexattr(fd, acl)
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
                    raise
        st = os.fstat(fd)
        left = [acl for acl in _ACLS if _has_xattr(fd, acl)]
    except OSError as e:
        _refuse(path, "it could not be made a 0700 directory of root's with no ACL: %s" % e.strerror)
    if st.st_uid != 0 or st.st_mode & 0o077 or left:
        _refuse(path, "it could not be made a 0700 directory of root's with no ACL (it is %o, uid %d%s)"
                % (stat.S_IMODE(st.st_mode), st.st_uid, ", with %s" % ", ".join(left) if left else ""))


def _has_xattr(fd, name):
    try:
        os.getxattr(fd, name)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.EOPNOTSUPP):
            return False
        raise
    return True


def _refuse(path, cause):
    raise OverlayError("refusing this layer home: %s" % cause, path=path)


# what nearly every layer holds: an overlay2 layer its diff/, a seed layer its root/ or its upper/
_FIRST_LOOK = ("diff", "upper", "root")


def home_entries(home_fd):
    """(name, lstat) of each entry of the home but .strata, in name order, read by the home's fd. An entry
    removed since the listing (a concurrent run removing a layer) is skipped: there is nothing left to judge."""
    for name in sorted(os.listdir(home_fd)):
        if name == STATE_DIR:
            continue
        try:
            st = os.stat(name, dir_fd=home_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield name, st


def is_layer_name(name):
    try:
        validate_layer_id(name)
    except OverlayError:
        return False
    return True


class HomeDirs:
    """The home's directory fds: home, .strata, .strata/layers, .strata/tmp (None while missing).

    Opened in two steps: the path is walked and checked (ancestors owned by
    root); then settle() checks the home against its (remapped) root, which
    the id maps recorded in .strata name, and a writer creates what is
    missing. exists is False when the home is not there (a check or
    read-only run creates nothing); path is the resolved path then too.
    """

    def __init__(self, path):
        self.requested = path
        self.root_uid = self.root_gid = 0
        self.maps_recorded = False  # recorded_maps() found root's maps.json
        self.strays = []  # names in the home the remapped root left that are no layer (settle)
        self.link_dirs = []  # root's directories of short links only: l/ renamed, by anyone (settle)
        self.fd = self.state_fd = self.records_fd = self.tmp_fd = None
        self.path = os.path.abspath(path)
        try:
            if self.path == "/":
                _refuse(self.path, "it is /")
            self.fd, self.path = GuardedWalk(self.path, _refuse).open()
            if self.fd is not None:
                self.state_fd = self._open_state()
        except BaseException:
            self.close()
            raise

    def _open_state(self):
        """.strata, opened before its owner can be checked: the maps recorded in it name the owner."""
        try:
            return os.open(STATE_DIR, DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                _refuse(os.path.join(self.path, STATE_DIR), "it is a symlink or not a directory")
            raise

    def _read_root_record(self, name, what):
        """(data, path) of the record file name in .strata, data None if there is none. Only a file of root's
        that nobody else can write is believed: what it says decides who owns, and how to read, every layer."""
        path = os.path.join(self.path, STATE_DIR, name)
        try:
            return read_json(self.state_fd, name, check=require_roots_own), path
        except (OSError, ValueError) as e:
            raise OverlayError("the home's recorded %s cannot be read: %s" % (what, e), path=path)

    def recorded_maps(self):
        """The maps written with the home ({"uid_maps": [...], "gid_maps": [...]}), None if none.

        Only a file of root's that nobody else can write is believed: whoever
        could write it could hand root's files to any uid.
        """
        self.maps_recorded = False
        if self.state_fd is None:
            return None
        data, path = self._read_root_record(MAPS_FILE, "id maps")
        if data is not None and not (isinstance(data, dict) and isinstance(data.get("uid_maps"), list)
                                     and isinstance(data.get("gid_maps"), list)):
            raise OverlayError("the home's recorded id maps are not in the expected format", path=path)
        self.maps_recorded = data is not None
        return data

    def record_maps(self, uid_maps, gid_maps):
        payload = json.dumps({"uid_maps": uid_maps, "gid_maps": gid_maps}, sort_keys=True, indent=1)
        write_atomic(self.state_fd, MAPS_FILE, payload.encode() + b"\n", 0o600)

    def recorded_layout(self):
        """The layout written with the home ("overlay", "overlay2"), None if none was recorded.

        Believed only from root's own file, as the maps are: the layout decides which driver
        reads and writes every layer directory.
        """
        if self.state_fd is None:
            return None
        data, path = self._read_root_record(LAYOUT_FILE, "layout")
        if data is None:
            return None
        if not (isinstance(data, dict) and isinstance(data.get("layout"), str)):
            raise OverlayError("the home's recorded layout is not in the expected format", path=path)
        return data["layout"]

    def record_layout(self, layout):
        payload = json.dumps({"layout": layout}, sort_keys=True, indent=1)
        write_atomic(self.state_fd, LAYOUT_FILE, payload.encode() + b"\n", 0o600)

    def settle(self, root_uid, root_gid, create):
        """Check the home against its (remapped) root; a writer creates what is missing, and takes back
        each bookkeeping directory an earlier version gave the remapped root (a reader changes nothing)."""
        self.root_uid, self.root_gid = root_uid, root_gid
        try:
            if self.fd is None:
                if not create:
                    return
                self.fd, self.path = GuardedWalk(self.path, _refuse, self._make).open()
                self.state_fd = self._open_state()
            reason = untrusted_reason(os.fstat(self.fd), {0, root_uid}, {0, root_gid}, self.fd)
            if reason:
                _refuse(self.path, reason)
            self._check_contents()
            where = os.path.join(self.path, STATE_DIR)
            if self.state_fd is not None:
                # .strata itself is taken back only with root's own maps.json in it: one that the
                # remapped root made in its home (before any writer did) holds no file of root's
                if create and not self.maps_recorded and os.fstat(self.state_fd).st_uid != 0:
                    _refuse(where, "it must be a 0700 directory owned by root (it is uid %d, and holds no id "
                            "maps of root's)" % os.fstat(self.state_fd).st_uid)
                self._check_private(self.state_fd, where, repair=create)
            elif create:
                self.state_fd = self.open_private(self.fd, STATE_DIR, True, self.path)
            if self.state_fd is not None:
                self.records_fd = self.open_private(self.state_fd, RECORDS_DIR, create, where)
                # what an earlier version left in tmp/ is only ever removed (cleanup), never read
                self.tmp_fd = self.open_private(self.state_fd, TMP_DIR, create, where, contents_read=False)
                if create:
                    self._take_back_all(where)
        except BaseException:
            self.close()
            raise

    # -- opening ----------------------------------------------------------

    def _make(self, dir_fd, name, last):
        """A missing ancestor becomes root's 0755 directory, the home the remapped root's 0700 one."""
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            return
        if last:
            os.chown(name, self.root_uid, self.root_gid, dir_fd=dir_fd, follow_symlinks=False)
        else:
            os.chmod(name, 0o755, dir_fd=dir_fd)

    def _check_contents(self):
        """Only .strata and layer directories, so that a home named by mistake (/var/lib) is refused.

        A directory with a layer's name holding at least one of a layer's names
        is a layer: what else is in it, or a swapped entry, is that layer's
        damage (damage.py), never the home's. Under id maps the remapped root
        owns the home and the layer directories, and what runs in a layer acts
        as it: a name it left in the home (a stray) is reported (self.strays),
        not fatal, unless such names outnumber the layers of a home that holds
        no .strata of root's (then this is plainly not a layer home). Anything
        else not shaped like a layer (root's, another user's) is refused.
        """
        self.strays = []
        self.link_dirs = []
        layers = 0
        for name, st in home_entries(self.fd):
            if name == LINK_DIR and stat.S_ISDIR(st.st_mode) and st.st_uid == 0:
                continue  # the overlay2 layout's short links, root's (overlay2_driver.py checks each one)
            if is_layer_name(name) and stat.S_ISDIR(st.st_mode) and self._looks_like_layer(name):
                layers += 1
            elif stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and self._holds_only_short_links(name):
                self.link_dirs.append(name)  # l/ renamed (its links are made again in l/, short_link_repair.py)
            elif self.root_uid != 0 and st.st_uid == self.root_uid:
                if not (is_layer_name(name) and stat.S_ISDIR(st.st_mode)):
                    self.strays.append(name)  # a directory with a layer's name is listed as a damaged layer
            else:
                _refuse(self.path, "it holds %r, which is not a layer directory (is this the right home?)" % name)
        if len(self.strays) > layers and not self._has_own_state():
            _refuse(self.path, "it holds %s, which are not layer directories, and fewer layers (is this the right "
                    "home?)" % ", ".join(repr(n) for n in self.strays))

    def _has_own_state(self):
        """A .strata of root's: this process's kind made the home (the remapped root cannot make one)."""
        return self.state_fd is not None and os.fstat(self.state_fd).st_uid == 0

    def _holds_only_short_links(self, name):
        """A directory of overlay2's short links and nothing else: l/ under another name. The remapped root
        may rename l/ in the home it owns; that must not make root refuse the home (the links are made
        again in l/ from the layers' link files)."""
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except OSError:
            return False
        try:
            names = os.listdir(fd)
            return bool(names) and all(is_link_id(n) and stat.S_ISLNK(os.lstat(n, dir_fd=fd).st_mode) for n in names)
        finally:
            os.close(fd)

    def _looks_like_layer(self, name):
        """Holds one of a layer's names at least (what else is in it is the layer's damage).

        The names nearly every layer of either layout has are looked up first, by stat in the directory
        opened O_PATH without following a symlink (a home of 1,000 layers is opened by every call); only a
        directory holding none of them is listed."""
        try:
            fd = os.open(name, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except FileNotFoundError:
            return True  # removed by a concurrent run since the listing: nothing to judge
        try:
            for inside in _FIRST_LOOK:
                try:
                    os.stat(inside, dir_fd=fd, follow_symlinks=False)
                    return True
                except FileNotFoundError:
                    continue
        finally:
            os.close(fd)
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return True  # removed by a concurrent run since the listing: nothing to judge
        try:
            inside = set(os.listdir(fd))
        finally:
            os.close(fd)
        return bool(inside & set(LAYER_ENTRIES + OVERLAY2_ENTRIES))

    def open_private(self, parent_fd, name, create, where, contents_read=True):
        """A bookkeeping directory: a real directory of root's, 0700 (made so, or repaired, by a writer).

        Only a directory that was there at the first look is ever taken back (one an earlier version gave the
        remapped root). One that was missing is made and must then be root's: .strata is made in the home,
        which the remapped root owns, and it can put a directory of its own making (records, maps, planted
        entries) under that name before the mkdir or rename it over the new empty one before the open. Taking
        that back would hand root a directory of the user's, read as root's own bookkeeping. contents_read:
        what is in it is read as root's (a directory taken back must then hold root's files only)."""
        path = os.path.join(where, name)
        try:
            fd = self._open_dir(parent_fd, name, path)
        except FileNotFoundError:
            if not create:
                return None
            return self._make_private(parent_fd, name, path)
        # the four every writer takes back whatever they hold (_take_back_all): a reader or a check run reads them
        # as that writer would, whatever mode their owner set
        later = parent_fd == self.state_fd and name in WRITTEN_LATER
        try:
            self._check_private(fd, path, repair=create, contents_read=contents_read and not later, any_mode=later)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _take_back_all(self, where):
        """Each bookkeeping directory made when first written (WRITTEN_LATER) that is there, taken back by every
        writer as layers/ and tmp/ are, not only when something is written in it: until then the remapped root an
        earlier version gave it to could remove or rename root's files in it (by a descriptor it opened while
        .strata was its own). Whatever that user put in one stays, and is never believed: each of their readers
        takes only root's own files (a record, a remembered config, a mark), so a planted file blocks no writer;
        nor does a mode that user set. Every one is taken back before the first refusal is raised."""
        refused = None
        for name in WRITTEN_LATER:
            path = os.path.join(where, name)
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=self.state_fd)
            except (FileNotFoundError, NotADirectoryError):
                continue  # made when first written; or not a directory, which its users judge (as before)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    continue  # a symlink, likewise: never followed
                raise
            try:
                self._check_private(fd, path, repair=True, contents_read=False, any_mode=True)
            except OverlayError as e:
                refused = refused or e
            finally:
                os.close(fd)
        if refused is not None:
            raise refused

    @staticmethod
    def _open_dir(parent_fd, name, path):
        try:
            return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                _refuse(path, "it is a symlink or not a directory")
            raise

    def _make_private(self, parent_fd, name, path):
        """A missing bookkeeping directory made (root's 0700) and opened; whatever is under the name then must be
        root's 0700 (this run's, or a concurrent first run's), never taken back."""
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)  # root's: this process makes it
        except FileExistsError:
            pass  # a concurrent first run made it (or someone else did: checked below)
        try:
            fd = self._open_dir(parent_fd, name, path)
        except FileNotFoundError:
            _refuse(path, "it was removed as it was made (does another user own the directory it is in?)")
        st = os.fstat(fd)
        if st.st_uid != 0 or st.st_mode & 0o077:
            os.close(fd)
            _refuse(path, "it was replaced as it was made: it must be a 0700 directory owned by root, and the "
                    "one there now is %o, uid %d, which is left as it is; remove it (or move it away) if you do "
                    "not know it, then run again" % (stat.S_IMODE(st.st_mode), st.st_uid))
        return fd

    def _check_private(self, fd, path, repair=False, contents_read=True, any_mode=False):
        """Root's 0700. One of the remapped root's 0700 (as earlier versions made them; any_mode: of any mode) is
        read as it is, and a writer (repair) takes it back for root, on the fd it opened; anything else is refused.

        Earlier versions gave the remapped root the directories only: every file in them root wrote. A file
        of that user's in one (a record with holders of its choosing, one it still holds open for writing),
        or a directory it could write, was never root's, and taking the directory back would make root read it
        as its own (contents_read): it is then closed (root's, mode 0) and refused, naming the entry, by this
        run and every later one until it is put right. Never handed back: the take-back runs before the home's
        lock, and another writer may already use it as root's."""
        st = os.fstat(fd)
        if st.st_uid == 0 and not st.st_mode & 0o077:
            if not st.st_mode & 0o700:
                _refuse(path, "it was closed (mode 0) when it was taken back from uid %d holding a file that is not "
                        "root's own; remove what is not root's in it (or, if you trust it, chown it to root), then "
                        "chmod 0700 %s and run again" % (self.root_uid, path))
            return
        if st.st_uid not in ((self.root_uid, 0) if any_mode else (self.root_uid,)) \
                or (st.st_mode & 0o077 and not any_mode):
            _refuse(path, "it must be a 0700 directory owned by root (it is %o, uid %d); if you trust what is in it, "
                    "chown root:root and chmod 0700 it" % (stat.S_IMODE(st.st_mode), st.st_uid))
        if repair:
            os.fchown(fd, 0, 0)  # first: from here on that user cannot add, rename or chmod anything in it
            _seal(fd, path)  # a failure leaves it root's
            if contents_read:
                try:
                    self._require_roots_entries(fd, path)
                except BaseException:
                    os.fchmod(fd, 0)  # closed: every later run refuses it until it is put right
                    raise

    def _require_roots_entries(self, fd, path):
        """Each entry of a directory being taken back: a file root's and writable by root only, a directory
        root's or the remapped root's, 0700 (taken back in turn when it is opened; one of WRITTEN_LATER of any
        mode, which every writer takes back as it is, and whose readers believe only root's files)."""
        for name in sorted(os.listdir(fd)):
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):  # of any mode if it is one the writer takes back so (_take_back_all)
                sound = st.st_uid in (0, self.root_uid) and (not st.st_mode & 0o077 or name in WRITTEN_LATER)
            else:
                sound = st.st_uid == 0 and not st.st_mode & 0o022
            if not sound:
                if stat.S_ISLNK(st.st_mode):
                    fix = "a symlink is never root's bookkeeping: remove it (rm does not follow it)"
                elif stat.S_ISDIR(st.st_mode):
                    fix = "if you trust it, chown -R it to root and chmod it 0700; if not, remove it"
                else:
                    fix = "if you trust it, chown it to root and chmod it go-w; if not, remove it"
                _refuse(path, "it belonged to uid %d (as earlier versions left it) and holds %r, which is %o, uid %d: "
                        "not root's own, so that user could have written it. The directory is root's now, and "
                        "closed (mode 0) until it is put right: %s, then chmod 0700 %s and run again"
                        % (self.root_uid, name, stat.S_IMODE(st.st_mode), st.st_uid, fix, path))

    def close(self):
        for attr in ("tmp_fd", "records_fd", "state_fd", "fd"):
            fd = getattr(self, attr)
            if fd is not None:
                setattr(self, attr, None)
                os.close(fd)

    # -- reading ----------------------------------------------------------

    @property
    def exists(self):
        return self.fd is not None

    def is_layer_dir(self, layer_id):
        """A real directory of that name that is no directory of short links only (l/ renamed, link_dirs)."""
        if self.fd is None or layer_id in self.link_dirs:
            return False
        try:
            st = os.stat(layer_id, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return stat.S_ISDIR(st.st_mode)

    def layer_ids(self):
        """The layer directories; l/ renamed to a layer's name (link_dirs) is no layer, nor a damaged one."""
        if self.fd is None:
            return []
        return sorted(n for n in os.listdir(self.fd) if is_layer_name(n) and self.is_layer_dir(n))

    def read_only(self):
        """Whether the home's filesystem is mounted read-only."""
        if self.fd is None:
            return False
        return bool(os.statvfs(self.fd).f_flag & os.ST_RDONLY)
