# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's blob cache of `pull: controller`: each registry blob fetched once for a whole fleet.

Ansible runs a task's action in several forks at once, one per host, so
without coordination twenty hosts would make twenty registry pulls of every
blob. The cache is a directory of the controller user's own:

    <cache>/blobs/sha256/<hex>   a blob, named by its digest (as in an OCI layout); its mtime is its last use
    <cache>/locks/<hex>          flock(2)ed: shared by each fork using that blob, exclusive to remove it
    <cache>/locks/<hex>.fetch    flock(2)ed by the fork that fetches that blob
    <cache>/tmp/                 blobs being fetched (O_EXCL names), renamed into blobs/ once verified

A fork that finds a blob missing takes its fetch lock, looks again (another
fork may have fetched it meanwhile) and only then fetches it; the others wait
on that lock and find it there. A blob is verified against its
digest (and size) as it arrives, before it is renamed in, and again each time
it is about to be sent: a cached file whose content does not match its name is
never sent, it is removed and fetched again. A fork holds the shared lock of
each blob it hands out until it closes the cache, after the host got it, and
sets the blob's mtime then: that is the use a prune goes by.

A prune (the task's controller_cache_max_age / controller_cache_max_size,
chosen in cache_bounds.py) removes blobs under their exclusive lock taken
without waiting, so a blob a fork is fetching or sending is never removed, and
only regular files named by 64 hex digits in blobs/sha256/ are ever removed.

No two forks can wait for each other, whatever the order in which they use
blobs, because only one kind of wait can block for long and its holder waits
for no lock:
- locks/<hex> shared (a fork using the blob) waits only while a process holds
  it exclusively, and only a prune or a clear of abandoned temps does, taken
  without waiting, for the few system calls that unlink the blob or its temps,
  during which it waits for nothing; no fork ever takes it exclusively while
  waiting;
- locks/<hex>.fetch exclusive is waited for while holding shared locks (of
  this blob and of those handed out before); its holder is inside _fetch, which
  reads the registry and writes one temp, bounded by the blob's deadline, and
  takes no lock there; every other lock wait is without waiting (LOCK_NB).
So every chain of waits ends at a fork that is fetching, and a cycle (A holds
x and waits for y while B holds y and waits for x) would need a fetcher that
waits for a lock. A corrupt blob is replaced the same way as a missing one:
under its fetch lock, unlinked and renamed over, never with an exclusive wait
on the blob's own lock that a fork sending it holds.

A fetch that is killed (SIGKILL, a controller that lost power) leaves its temp
in tmp/. Its fetch lock went with it: the kernel drops an flock when its
holder dies. clear_abandoned removes the temps whose fetch lock is free, taken
without waiting, so the temp a running fetch writes (it holds that lock from
before it makes the temp until after the rename) is never touched, whatever
its age; a fetch also clears its own blob's before it starts.

The files are sent to the hosts by path (an Ansible transfer reads a path), so
the path must be one that no other user can redirect: the cache and every
directory above it are opened from / one component at a time without
following symlinks others made (walk.py's GuardedWalk, as the layer home is),
directories above must be root's or the controller user's and not writable by
others (unless sticky, as /tmp), and the cache itself must be the controller
user's and writable by nobody else. It is made 0700 when missing.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import stat
import time

from ..walk import DIR_FLAGS, GuardedWalk, untrusted_reason
from .cache_bounds import CachedBlob
from .digests import VerifyingReader, hex_of, parse_digest
from .download import blob_stream
from .errors import ImageError

CHUNK = 1 << 20
ENV = "STRATA_OVERLAY_CONTROLLER_CACHE"
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO so named never blocks the open
BLOB_NAME = re.compile(r"^[0-9a-f]{64}\Z")
TEMP_NAME = re.compile(r"^([0-9a-f]{64})\.[0-9a-f]{16}\Z")  # tmp/<hex>.<random>, as _fetch names them
FETCH_LOCK = ".fetch"  # locks/<hex>.fetch: held by the one fork fetching that blob


def default_cache_dir(environ=None):
    """$STRATA_OVERLAY_CONTROLLER_CACHE, else $XDG_CACHE_HOME/strata.overlay, else ~/.cache/strata.overlay."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV):
        return environ[ENV]
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "strata.overlay")


def _refuse(path, cause):
    raise ImageError("refusing the controller's blob cache: %s" % cause, path=path)


class _CacheWalk(GuardedWalk):
    """The cache's path: directories above it root's or this user's and safe from others; symlinks on the way
    made by root or this user; missing directories made 0700 when make is true."""

    def __init__(self, path, make):
        self.uid = os.geteuid()
        GuardedWalk.__init__(self, path, _refuse, _make_private if make else None, owners={0, self.uid})

    def target(self, fd, where):
        st = os.fstat(fd)
        if st.st_uid != self.uid:
            _refuse(where, "it is owned by uid %d, not by uid %d who runs the play" % (st.st_uid, self.uid))
        if st.st_mode & 0o022:
            _refuse(where, "it is writable by %s (mode %o); chmod 0700 it"
                    % ("every user" if st.st_mode & 0o002 else "its group", stat.S_IMODE(st.st_mode)))
        reason = untrusted_reason(st, {self.uid}, set(), fd)
        if reason:
            _refuse(where, reason)

    def link_owners(self, dir_fd):
        return {0, self.uid}


def _make_private(dir_fd, name, last):
    """A missing directory of the cache's path, made 0700 (another fork may just have made it)."""
    del last
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass


def _subdir(parent_fd, name, where, make):
    """A directory of the cache, this user's and nobody else's, opened without following a symlink."""
    if make:
        _make_private(parent_fd, name, True)
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        _refuse(where, "cannot open it as a directory: %s" % e.strerror)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        _refuse(where, "it must be this user's and writable by nobody else (uid %d, mode %o)"
                % (st.st_uid, stat.S_IMODE(st.st_mode)))
    return fd


def _unlink_regular(dir_fd, name):
    """Unlink dir_fd/name if it is a regular file, looked at without following a link (unlink follows none either);
    True when nothing is left under the name, False when something else is there (left as it is)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return True
    if not stat.S_ISREG(st.st_mode):
        return False
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return True
    except OSError:  # swapped for a directory meanwhile
        return False
    return True


def _unlink_not_dir(dir_fd, name):
    """Unlink dir_fd/name (never through a link); False when it is a directory, which stays."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        return False
    return True


class BlobCache:
    """The cache at path, opened by fd; make=False (check mode) creates nothing, and a missing cache is None."""

    def __init__(self, path, make=True):
        self.path = None
        self._fds = []
        root_fd, real = _CacheWalk(os.path.abspath(os.path.expanduser(path)), make).open()
        if root_fd is None:
            raise FileNotFoundError(path)
        self._fds.append(root_fd)
        self.path = real
        try:
            blobs = self._open(root_fd, "blobs", make)
            self.blobs_fd = self._open(blobs, "blobs/sha256", make) if blobs is not None else None
            self.locks_fd = self._open(root_fd, "locks", make)
            self.tmp_fd = self._open(root_fd, "tmp", make)
        except BaseException:
            self.close()
            raise
        self.fetched = []  # digests this process fetched from the registry
        self.used = set()  # names (hex) of the blobs this process handed out: kept until close, never pruned

    @classmethod
    def existing(cls, path):
        """The cache if it is there (read-only use: check mode), else None."""
        try:
            return cls(path, make=False)
        except FileNotFoundError:
            return None

    def _open(self, parent_fd, relative, make):
        fd = _subdir(parent_fd, os.path.basename(relative), os.path.join(self.path, relative), make)
        if fd is not None:
            self._fds.append(fd)
        return fd

    def close(self):
        while self._fds:
            os.close(self._fds.pop())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def blob_path(self, digest):
        return os.path.join(self.path, "blobs", "sha256", hex_of(digest))

    # -- reading ------------------------------------------------------------------

    def _verified(self, name, descriptor):
        """Whether blobs/sha256/<name> is there, a regular file of this user, with the descriptor's size and
        digest (read whole by fd: a file whose content is not what its name says is never used)."""
        if self.blobs_fd is None:
            return False
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=self.blobs_fd)
        except FileNotFoundError:
            return False
        except OSError:  # a symlink (ELOOP) or worse: not a blob of ours
            return False
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():  # checked before fdopen: a directory is refused
            os.close(fd)
            return False
        with os.fdopen(fd, "rb") as f:
            if descriptor.size is not None and st.st_size != descriptor.size:
                return False
            digest = hashlib.sha256()
            for chunk in iter(lambda: f.read(CHUNK), b""):
                digest.update(chunk)
        return "sha256:" + digest.hexdigest() == descriptor.digest

    def read_verified(self, descriptor):
        """The bytes of a small blob (a config) if the cache holds it intact, else None. Writes nothing."""
        name = hex_of(parse_digest(descriptor.digest))
        if not self._verified(name, descriptor):
            return None
        with os.fdopen(os.open(name, _FILE_FLAGS, dir_fd=self.blobs_fd), "rb") as f:
            data = f.read()
        return data if "sha256:" + hashlib.sha256(data).hexdigest() == descriptor.digest else None

    # -- locks --------------------------------------------------------------------

    def _lock(self, name, how, wait=True):
        """An fd of locks/<name> holding flock(how), or None when wait is false and another process holds it.

        A prune removes a blob's lock file while it holds it, so the lock taken must be on the file that is
        there now: one that was removed while this process waited is no lock, and is taken again."""
        while True:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.locks_fd)
            try:
                fcntl.flock(fd, how if wait else how | fcntl.LOCK_NB)
                held = os.fstat(fd)
                try:
                    there = os.stat(name, dir_fd=self.locks_fd, follow_symlinks=False)
                except FileNotFoundError:
                    there = None
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            if there is not None and (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino):
                return fd
            os.close(fd)

    def _blob_id(self, name):
        """(device, inode, mtime) of blobs/sha256/<name> without following a link, or None."""
        try:
            st = os.stat(name, dir_fd=self.blobs_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino, st.st_mtime_ns

    def _keep(self, name, fd):
        """The blob is this process's until close: its shared lock held (no prune removes it before it is sent)
        and its use recorded as its mtime (atime is not kept on noatime or relatime mounts)."""
        self._fds.append(fd)
        self.used.add(name)
        os.utime(name, dir_fd=self.blobs_fd, follow_symlinks=False)

    # -- filling ------------------------------------------------------------------

    def blob(self, source, descriptor, image):
        """The path of the verified blob in the cache, fetched from source first unless it is there intact.

        The blob's lock is held shared from the look until the cache is closed, after the host got it: a
        prune (which takes it exclusively, without waiting) never removes a blob between its verification and
        its transfer. Fetching is serialized by a second lock, so a fork waits only for the fork fetching that
        blob, never for the forks still sending it."""
        name = hex_of(parse_digest(descriptor.digest, image))
        fd = self._lock(name, fcntl.LOCK_SH)
        try:
            if not self._verified(name, descriptor):
                fetching = self._fetch_lock(name, getattr(source, "deadlines", None), descriptor, image)
                try:
                    if not self._verified(name, descriptor):  # another fork may have fetched it meanwhile
                        if not _unlink_not_dir(self.blobs_fd, name):  # absent, or not what its name says
                            raise ImageError("the controller cache holds something that is not a blob file at %s: "
                                             "remove it, then run again" % self.blob_path(descriptor.digest),
                                             image=image, blob=descriptor.digest)
                        self._clear_temps(name)
                        self._fetch(source, descriptor, image, name)
                finally:
                    os.close(fetching)
            self._keep(name, fd)
        except BaseException:
            os.close(fd)
            raise
        return self.blob_path(descriptor.digest)

    def _fetch_lock(self, name, deadlines, descriptor, image):
        """The blob's fetch lock, waited for at most the task's own blob_deadline (when the source has one).

        Its holder takes no other lock while it fetches (no cycle, see above) and its own fetch is bounded by
        its deadline; but a run that was stopped (a playbook suspended with ^Z) or hung outside the network
        would hold it for ever: this run then fails naming the cache rather than waiting without a word. No
        timed wait exists for flock(2), so the lock is tried without waiting, with pauses that grow to 0.5 s."""
        if deadlines is None:
            return self._lock(name + FETCH_LOCK, fcntl.LOCK_EX)
        limit = deadlines.blob_seconds
        end = time.monotonic() + limit
        pause = 0.01
        while True:
            fd = self._lock(name + FETCH_LOCK, fcntl.LOCK_EX, wait=False)
            if fd is not None:
                return fd
            left = end - time.monotonic()
            if left <= 0:
                raise ImageError("the controller cache at %s is held by another run for more than %s s (it is fetching "
                                 "this blob, longer than this task's blob_deadline): try again once it is done or "
                                 "stopped" % (self.path, limit), image=image, blob=descriptor.digest)
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.5)

    def _clear_temps(self, name):
        """Temps of this blob left by a fork that was killed: only the lock holder writes them. As clear_abandoned,
        only regular files go: anything else so named stays (a symlink's target untouched) and fails no fetch."""
        for entry in os.listdir(self.tmp_fd):
            if entry.startswith(name + "."):
                _unlink_regular(self.tmp_fd, entry)

    def _fetch(self, source, descriptor, image, name):
        temp = "%s.%s" % (name, os.urandom(8).hex())
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=self.tmp_fd)
        try:
            with os.fdopen(fd, "wb") as out:
                with blob_stream(source, descriptor, image) as raw:
                    reader = VerifyingReader(raw, descriptor.digest, descriptor.size, image, None,
                                             name=descriptor.digest)
                    for chunk in iter(lambda: reader.read(CHUNK), b""):
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.rename(temp, name, src_dir_fd=self.tmp_fd, dst_dir_fd=self.blobs_fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self.tmp_fd)
            raise ImageError("cannot keep the blob in the controller's cache: %s" % e.strerror, image=image,
                             blob=descriptor.digest, path=self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=self.tmp_fd)
            raise
        self.fetched.append(descriptor.digest)

    # -- abandoned temps ----------------------------------------------------------

    def clear_abandoned(self):
        """Remove the temps of fetches that no longer run (killed mid-way); the names removed from tmp/.

        A temp is judged by its blob's fetch lock, taken without waiting under the blob's shared lock (as a
        fetch takes it): a fetch holds that lock from before it makes its temp until after it renamed or
        removed it, so a temp whose lock is free is no running fetch's, whatever its age, and one whose lock
        is held is left alone. Only regular files of this user named as _fetch names them are removed, each
        looked at without following a link: a symlink or anything else planted in tmp/ stays, and its target
        is never touched. The lock files of a blob that never arrived go too, as a prune removes them."""
        if self.tmp_fd is None or self.locks_fd is None:
            return []
        temps = {}
        for entry in os.listdir(self.tmp_fd):
            match = TEMP_NAME.match(entry)
            if match:
                temps.setdefault(match.group(1), []).append(entry)
        removed = []
        for name, entries in sorted(temps.items()):
            removed.extend(self._clear_if_abandoned(name, entries))
            self._drop_locks_of_missing(name)
        return removed

    def _clear_if_abandoned(self, name, entries):
        """The entries of tmp/ (temps of blob name) removed: none if its fetch lock is held."""
        try:
            using = self._lock(name, fcntl.LOCK_SH, wait=False)
        except OSError:  # a lock that is not a regular file of ours: not ours to judge
            return []
        if using is None:  # a prune holds it exclusively: next time
            return []
        try:
            try:
                fetching = self._lock(name + FETCH_LOCK, fcntl.LOCK_EX, wait=False)
            except OSError:
                return []
            if fetching is None:  # a running fetch: its temp is being written
                return []
            try:
                removed = []
                for entry in entries:
                    try:
                        st = os.stat(entry, dir_fd=self.tmp_fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                        continue
                    try:
                        os.unlink(entry, dir_fd=self.tmp_fd)  # unlink never follows a link, should one be there now
                    except OSError:  # gone meanwhile, or swapped for a directory: left alone
                        continue
                    removed.append(entry)
                return removed
            finally:
                os.close(fetching)
        finally:
            os.close(using)

    def _drop_locks_of_missing(self, name):
        """The lock files of a blob that is not in blobs/sha256/, removed under its exclusive lock taken without
        waiting (as a prune removes those of a blob it removed)."""
        if self.blobs_fd is None:
            return
        try:
            fd = self._lock(name, fcntl.LOCK_EX, wait=False)
        except OSError:
            return
        if fd is None:
            return
        try:
            if self._blob_id(name) is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name + FETCH_LOCK, dir_fd=self.locks_fd)
                os.unlink(name, dir_fd=self.locks_fd)
        finally:
            os.close(fd)

    # -- pruning ------------------------------------------------------------------

    def prune(self, bounds, now=None):
        """Remove the blobs bounds select (cache_bounds.py); the digests removed.

        Only regular files of this user named by 64 hex digits in blobs/sha256/ are candidates, looked at
        without following a link: anything else there is left alone. A blob this process used is never
        removed. Each is removed under its exclusive lock, taken without waiting: a blob another fork is
        fetching or about to send (it holds the lock) is skipped, and one used since it was looked at (its
        mtime moved) stays."""
        if bounds.unbounded or self.blobs_fd is None or self.locks_fd is None:
            return []
        now = time.time() if now is None else now
        seen = {}
        for name in os.listdir(self.blobs_fd):
            if not BLOB_NAME.match(name):
                continue
            try:
                st = os.stat(name, dir_fd=self.blobs_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                seen[name] = (st.st_dev, st.st_ino, st.st_mtime_ns), CachedBlob(
                    name, st.st_size, st.st_mtime, name not in self.used)
        removed = []
        for name in bounds.select([blob for _id, blob in seen.values()], now):
            try:
                fd = self._lock(name, fcntl.LOCK_EX, wait=False)
            except OSError:  # a lock that is not a regular file of ours: not ours to judge
                continue
            if fd is None:
                continue
            try:
                if self._blob_id(name) != seen[name][0]:
                    continue
                os.unlink(name, dir_fd=self.blobs_fd)
                # while held: _lock takes only the file that is there; nobody holds or waits for the fetch lock
                # without holding this one shared
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name + FETCH_LOCK, dir_fd=self.locks_fd)
                os.unlink(name, dir_fd=self.locks_fd)
                removed.append("sha256:" + name)
            finally:
                os.close(fd)
        return removed
