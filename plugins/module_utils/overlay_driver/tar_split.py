# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A layer's tarball kept as its framing only, to be written again byte for byte.

Docker's layer store and containers-storage keep, for every layer they apply,
the tar stream less the file contents (tar-split): exporting the layer later
replays the headers and reads each file's contents from the layer, so the
tarball that comes out is the one that went in and its digest is the applied
diff_id, not a second archive of the same tree with another digest.

The record is written while the tarball is applied (Recorder, fed by the
HashingReader every byte it hands out): every byte that is not a regular
file's contents is kept, and each file's contents become a reference: its
path inside the layer's own directory, its size and the mtime the applier
gave it. It is kept beside the layer's record, as root's own file.

A replay trusts nothing it reads: the record must be root's own regular
file and name the layer's current diff_id; each file is opened beneath the
layer's directory without following any symlink (each directory on the way
opened from its parent's fd with O_NOFOLLOW, a bounded number of them open
whatever the depth: _Parents), must be a regular file of the recorded size
and mtime, and is read for exactly that size; and the bytes replayed must
hash to the diff_id applied. Anything else (a record damaged or of another
layer, a file changed since it was applied, another file of the same size
and mtime at a recorded path) and the caller exports the layer from its
change walk instead.

The replay runs in a process of its own (Replay), writing through the
export's fd, while the export's process walks the changes it reports: that
halves the export's time on two cores, where a thread would wait for the
walk's interpreter lock at every system call.
"""

import os
import stat
import struct
import signal
import zlib

from . import faults
from .changes import changes_size
from .records import TAR_SPLIT_SUFFIX
from .results import DiffResult
from .state_files import open_regular, remove_entry, require_roots_own, write_atomic
from .syscalls import O_PATH

SUFFIX = TAR_SPLIT_SUFFIX
_MAGIC = b"strata-tar-split 1\n"
_SEGMENT = b"S"
_FILE = b"F"
_SEGMENT_HEADER = struct.Struct(">I")
_FILE_HEADER = struct.Struct(">HQq")  # path length, size, mtime in ns
_FLUSH_AT = 1 << 20  # raw bytes gathered before they are compressed as one segment
_MAX_SEGMENT = 1 << 20
_MAX_PATH = 4096
# A record beyond this is not kept (the layer is then exported from its change walk): headers compress
# twenty to one, so this is several million entries, and what a replay holds in memory stays bounded.
MAX_RECORD = 64 << 20
_READ = 64 << 10
_PATH_FLAGS = O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC  # opens nothing: a FIFO or a device is never opened
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ReplayMismatch(Exception):
    """The record cannot give this layer's tarball; the caller exports it from the change walk."""


class Recorder:
    """Fed every byte a HashingReader hands out, in order (take); told by the applier, before it reads a
    regular file's contents, where in the layer they go (file)."""

    def __init__(self):
        self._compress = zlib.compressobj(1)
        self._out = []
        self._size = 0
        self._raw = bytearray()
        self._file_left = 0
        self._pending = None
        self._paths = set()
        self._last = None
        self._taken = False
        self.dropped = False

    def file(self, parts, size, mtime_ns):
        """The next size bytes taken are the contents of parts (the entry's cleaned name) in the layer.
        Said again before any byte is taken (an entry retried after EEXIST), the last one holds."""
        if self.dropped:
            return
        if not -(1 << 63) <= mtime_ns < (1 << 63):  # no _FILE_HEADER field holds it: keep no record
            self._drop()
            return
        path = os.fsencode("/".join(parts))
        retried = self._last == path and not self._taken
        if path in self._paths and not retried:
            # written twice: the layer holds only the last contents, so the first reference would replay them
            self._drop()
            return
        self._paths.add(path)
        self._last, self._taken = path, False
        self._pending = (path, size, mtime_ns)  # a zero-size file too: its size is checked on replay

    def take(self, data):
        """Bytes the reader handed out, as bytes or a memoryview."""
        if self.dropped or not data:
            return
        self._taken = True
        if self._pending is not None:
            self._start_file()
        if self._file_left:
            used = min(self._file_left, len(data))
            self._file_left -= used
            data = data[used:]
            if not data:
                return
        self._raw += data
        if len(self._raw) >= _FLUSH_AT:
            self._flush_raw()

    def _start_file(self):
        path, size, mtime_ns = self._pending
        self._pending = None
        self._flush_raw()
        self._emit(_FILE + _FILE_HEADER.pack(len(path), size, mtime_ns) + path)
        self._file_left = size

    def _flush_raw(self):
        while self._raw:
            chunk = bytes(self._raw[:_MAX_SEGMENT])
            del self._raw[:_MAX_SEGMENT]
            self._emit(_SEGMENT + _SEGMENT_HEADER.pack(len(chunk)) + chunk)

    def _emit(self, frame):
        if self.dropped:
            return
        packed = self._compress.compress(frame)
        if packed:
            self._out.append(packed)
            self._size += len(packed)
            if self._size > MAX_RECORD:
                self._drop()

    def _drop(self):
        self.dropped = True
        self._out = []
        self._raw = bytearray()

    def finish(self, diff_id):
        """The record of the tarball whose digest is diff_id; None when it grew past MAX_RECORD."""
        if self.dropped:
            return None
        self._flush_raw()
        tail = self._compress.flush()
        if self.dropped or self._size + len(tail) > MAX_RECORD:
            return None
        return b"".join([_MAGIC, diff_id.encode("ascii"), b"\n"] + self._out + [tail])


def save(dir_fd, layer_id, data):
    """The layer's record, replaced whole, root's own (0600), beside its JSON record."""
    write_atomic(dir_fd, layer_id + SUFFIX, data)


def remove(dir_fd, layer_id):
    remove_entry(dir_fd, layer_id + SUFFIX)


class OpenRecord:
    """A layer's record, open, and the diff_id the replay must come to: anything else is no replay of it."""

    def __init__(self, f, diff_id):
        self.file = f
        self.diff_id = diff_id

    def replayed_diff(self, driver, layer_id, parent, out):
        """tar_split.replayed_diff of this record, for a driver's diff, which then needs no lookup of this module."""
        return replayed_diff(driver, layer_id, parent, out, self)

    def close(self):
        self.file.close()


def open_record(dir_fd, layer_id, diff_id):
    """The layer's record (OpenRecord) when it is root's own regular file naming diff_id; else None."""
    if dir_fd is None or not diff_id:
        return None
    f = open_regular(dir_fd, layer_id + SUFFIX)
    if f is None:
        return None
    try:
        st = os.fstat(f.fileno())
        require_roots_own(st)
        if st.st_size > MAX_RECORD + 1024 or f.readline(len(_MAGIC) + 1) != _MAGIC \
                or f.readline(128) != diff_id.encode("ascii") + b"\n":
            raise ValueError("not this layer's record")
    except (OSError, ValueError):
        f.close()
        return None
    return OpenRecord(f, diff_id)


class _Frames:
    """The record's frames, decompressed a bounded piece at a time."""

    def __init__(self, f):
        self._f = f
        self._inflate = zlib.decompressobj()
        self._buf = b""
        self._pos = 0

    def _fill(self, n):
        """Whether n bytes are there from the position; False only at the record's end."""
        while len(self._buf) - self._pos < n:
            if self._inflate.eof:
                if self._f.read(1):
                    raise ReplayMismatch("the record has data after its end")
                return False
            data = self._inflate.unconsumed_tail or self._f.read(_READ)
            if not data:
                raise ReplayMismatch("the record is truncated")
            try:
                more = self._inflate.decompress(data, _READ)
            except zlib.error as e:
                raise ReplayMismatch("the record is damaged: %s" % e)
            if self._inflate.unused_data:
                raise ReplayMismatch("the record has data after its end")
            self._buf = self._buf[self._pos:] + more
            self._pos = 0
        return True

    def _take(self, n):
        if not self._fill(n):
            raise ReplayMismatch("the record ends inside a frame")
        pos = self._pos
        self._pos = pos + n
        return self._buf[pos:pos + n]

    def __iter__(self):
        while self._fill(1):
            kind = self._take(1)
            if kind == _SEGMENT:
                length = _SEGMENT_HEADER.unpack(self._take(_SEGMENT_HEADER.size))[0]
                if length > _MAX_SEGMENT:
                    raise ReplayMismatch("a segment of %d bytes" % length)
                yield kind, self._take(length)
            elif kind == _FILE:
                length, size, mtime_ns = _FILE_HEADER.unpack(self._take(_FILE_HEADER.size))
                if not 0 < length <= _MAX_PATH:
                    raise ReplayMismatch("a path of %d bytes" % length)
                yield kind, (self._take(length), size, mtime_ns)
            else:
                raise ReplayMismatch("an unknown frame %r" % kind)


class _Parents:
    """The directory of each recorded file, opened beneath the layer's own directory: each directory on the way
    from its parent's fd without following a symlink (O_NOFOLLOW|O_DIRECTORY), so that no name reaches past the
    layer or through a symlink in it: what openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) ensures, at the cost of
    one open per directory rather than one resolution per file.

    The directories of the last file's path are kept for the next one, one level at a time, with no recursion:
    a tarball lists a directory's files together, so most files find theirs open, and another directory is
    opened from the deepest one the two paths share. Only the deepest KEEP levels stay open, as in walk.DirStack:
    a path nearly PATH_MAX long of one-letter names (about 2,000 levels) would otherwise hold as many fds and
    run a module (1024) out of them. A later path that parts from the last one above the levels still open is
    walked again from the layer's own directory."""

    KEEP = 32

    def __init__(self, own_fd):
        self._own_fd = own_fd
        self._parent = None  # the last file's directory, as the record names it (self._fds[-1]); None: none kept
        self._names = []  # the names of the levels kept below own_fd, outermost first
        self._fds = []  # their fds, None for the outer ones closed (all of those below len - KEEP)

    def open_file(self, path):
        parent, _sep, name = path.rpartition(b"/")
        _check_name(name, path)
        where = os.open(name, _PATH_FLAGS, dir_fd=self._dir(parent) if parent else self._own_fd)
        try:
            if not stat.S_ISREG(os.fstat(where).st_mode):
                raise ReplayMismatch("%s is no longer a regular file" % os.fsdecode(path))
            # the inode checked; O_NONBLOCK: a lease its owner holds on it fails the open at once, never blocks it
            return os.open("/proc/self/fd/%d" % where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        finally:
            os.close(where)

    def _dir(self, parent):
        if parent == self._parent:
            return self._fds[-1]
        self._parent = None
        names = parent.split(b"/")
        shared = 0
        while shared < min(len(names), len(self._names)) and names[shared] == self._names[shared]:
            shared += 1
        self._cut(shared)
        if self._fds and self._fds[-1] is None:  # the levels shared were closed: from the layer's own again
            self._cut(0)
        for name in names[len(self._fds):]:
            _check_name(name, parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=self._fds[-1] if self._fds else self._own_fd)
            self._fds.append(fd)
            self._names.append(name)
            outer = len(self._fds) - self.KEEP - 1
            if outer >= 0 and self._fds[outer] is not None:
                os.close(self._fds[outer])
                self._fds[outer] = None
        self._parent = parent
        return self._fds[-1]

    def _cut(self, depth):
        """Close the levels kept below the first depth ones."""
        while len(self._fds) > depth:
            self._names.pop()
            fd = self._fds.pop()
            if fd is not None:
                os.close(fd)

    def close(self):
        self._parent = None
        self._cut(0)


def _check_name(name, path):
    if not name or name in (b".", b".."):
        raise ReplayMismatch("the record names %r" % path)


def replay(f, own_fd, writer):
    """Write the recorded tarball to writer (tar_export.HashingWriter), each file's contents read from the
    layer's own directory own_fd. ReplayMismatch (or OSError) when the layer no longer matches it; what was
    written by then is the caller's to discard."""
    parents = _Parents(own_fd)
    try:
        for kind, value in _Frames(f):
            if kind == _SEGMENT:
                writer.write(value)
                continue
            path, size, mtime_ns = value
            fd = parents.open_file(path)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size != size or st.st_mtime_ns != mtime_ns:
                    raise ReplayMismatch("%s changed since it was applied" % os.fsdecode(path))
                if not writer.copy_from(fd, size):
                    raise ReplayMismatch("%s shrank while it was read" % os.fsdecode(path))
            finally:
                os.close(fd)
    finally:
        parents.close()


def target_fd(out):
    """The fd a replay writes out through (-1: out keeps nothing, as a check run's; None: out has no fd of
    its own, and the export is left to the change walk)."""
    if getattr(out, "discards", False):
        return -1
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        return None
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()
    return fd


def restart(out):
    """out emptied again, for the export from the change walk."""
    if callable(getattr(out, "restart", None)):
        out.restart()
        return
    out.seek(0)
    out.truncate()


class _FdOut:
    """HashingWriter's out in the replay's process: the export's own fd, or nothing (-1)."""

    def __init__(self, fd):
        self.fd = fd

    def write(self, data):
        return os.write(self.fd, data) if self.fd >= 0 else len(data)


class Replay:
    """The recorded tarball (an OpenRecord) written to out's fd (hashed, and the digest sent back) by a
    process of its own, while the caller walks the layer's changes for what the export reports. A thread would share the
    interpreter's lock with the walk, and the replay's few system calls per file would each wait for it.

    The process is forked before any thread of the export starts, writes nothing but out's fd and one line
    to its pipe, and ends with os._exit, whatever happens: no cleanup of the caller's runs twice."""

    def __init__(self, record, own_fd, out_fd):
        # imported before the fork, so that the process never takes the import lock another thread may hold
        from .tar_export import HashingWriter  # pylint: disable=import-outside-toplevel

        self._pid = None
        read_end, write_end = os.pipe()
        try:
            self._pid = os.fork()
        except BaseException:
            os.close(read_end)
            os.close(write_end)
            raise
        if self._pid == 0:  # pragma: no cover  (the child's coverage is not collected)
            code = 1
            try:
                os.close(read_end)
                code = _replay_process(record.file, own_fd, HashingWriter(_FdOut(out_fd)), write_end)
            finally:
                os._exit(code)  # pylint: disable=protected-access
        os.close(write_end)
        self._read_end = read_end

    def cancel(self):
        """Stop the process, if result has not waited for it: nothing is written to out after this."""
        if self._pid is None:
            return
        try:
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap()

    def _reap(self):
        pid, self._pid = self._pid, None
        os.close(self._read_end)
        while True:
            try:
                return os.waitpid(pid, 0)[1]
            except InterruptedError:
                continue

    def result(self):
        """(diff_id, tarball bytes) once all is written; None when the layer did not match the record (or a read
        failed): the export is then made from the change walk, which names any real error itself."""
        line = b""
        while True:
            data = os.read(self._read_end, 256)
            if not data or len(line) > 256:
                break
            line += data
        status = self._reap()
        words = line.split()
        if status != 0 or len(words) != 2 or not words[0].startswith(b"sha256:") or not words[1].isdigit():
            return None
        return words[0].decode("ascii"), int(words[1])


def _replay_process(record, own_fd, writer, result_fd):
    """The replay's process: 0 and "diff_id size" written to result_fd once the tarball is out through writer
    (a tar_export.HashingWriter), else 1."""
    try:
        replay(record, own_fd, writer)
    except BaseException:  # pylint: disable=broad-except  # a mismatch, a signal, a failed read: the walk's turn
        writer.abandon()
        return 1
    diff_id = writer.close()
    os.write(result_fd, ("%s %d\n" % (diff_id, writer.size)).encode("ascii"))
    return 0


def replayed_diff(driver, layer_id, parent, out, record):
    """driver.diff from the tar-split record (an OpenRecord): the tarball replayed by a process of its own into
    out's fd while the changes are walked in this one. None when the layer does not match the record or the
    bytes replayed are not the diff_id applied (out is then emptied again), or out has no fd to write through."""
    out_fd = target_fd(out)
    if out_fd is None:
        return None
    own = driver._own_dir(layer_id)  # pylint: disable=protected-access
    try:
        try:
            replay = Replay(record, own.fileno(), out_fd)
        except OSError:
            return None  # no process to be had (EAGAIN, ENOMEM, EMFILE): nothing written yet, the walk exports
        written = None
        try:
            faults.point("diff.replaying")
            with driver._changes(layer_id, parent) as (changes, walked):  # pylint: disable=protected-access
                size = changes_size(walked, changes)
            written = replay.result()
        finally:
            replay.cancel()  # after an error or a signal here, nothing more is written to out
    finally:
        own.close()
    if written is None or written[0] != record.diff_id:
        # the checks per file passed but the bytes are not the tarball applied (an entry that put another
        # file of the same size and mtime at a recorded path): no replay, whatever its digest
        restart(out)
        return None
    return DiffResult(written[0], written[1], changes, size)
