# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image's gzip layer through the igzip program (ISA-L), as containerd reads it, its framing held to zlib's.

igzip stops silently at junk after a member, so after the blob it is fed one
more member of random bytes behind an extra field of random length: its
answer stands only when it exits 0 and gives back exactly those bytes. Else
the reader raises GzipRecheck and the caller reads the blob again through
zlib, whose verdict is the one reported (docs/images.md). Only overlay_image
ships this file: the fleet modules read their tarballs through zlib.
"""

import os
import struct
import threading
import zlib

from ..decompress import CHUNK, feed
from ..errors import LayerFormatError
from ..fscheck import igzip_program

_SENTINEL_BYTES = 32


class GzipRecheck(LayerFormatError):
    """igzip's answer could not be proven to be zlib's: read the stream again through zlib."""


_MAX_EXTRA = 0xFFFF - 12  # the sentinel's extra field: its 12 bytes of header besides, 65535 at most


def _extra_length():
    """Uniform over 0.._MAX_EXTRA (not modulo: 0..11 would be twice as likely): a blob ending in an open extra
    field takes in the sentinel's header only if it guessed this length."""
    while True:
        length = struct.unpack("<H", os.urandom(2))[0]
        if length <= _MAX_EXTRA:
            return length


def _sentinel_member(data):
    """data as a gzip member behind an extra field of random length and bytes, no NUL among them (an open
    name or comment would end at one)."""
    extra = bytes(b % 255 + 1 for b in os.urandom(_extra_length()))
    packer = zlib.compressobj(1, zlib.DEFLATED, -15)
    body = packer.compress(data) + packer.flush()
    header = b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" + struct.pack("<H", len(extra)) + extra
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


def _first_member_is_plain(head):
    """Deflate, no reserved flag bits (zlib refuses them, igzip reads on)."""
    return len(head) >= 4 and head[2] == 8 and not head[3] & 0xE0


def _widen_pipe(fd):
    """1 MiB, not 64 KiB: fewer wake-ups."""
    try:
        import fcntl  # pylint: disable=import-outside-toplevel

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK)
    except (ImportError, OSError):
        pass


class IgzipProcess:
    """igzip -dc, its framing held to zlib's (docs/images.md): its answer stands (`proven`) only when it exits 0
    and gives back the sentinel member fed after the blob; else GzipRecheck, and zlib reads the blob again."""

    def __init__(self, raw, exe):
        import subprocess  # pylint: disable=import-outside-toplevel

        self._sentinel = os.urandom(_SENTINEL_BYTES)
        self._proc = subprocess.Popen([exe, "-dc", "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, bufsize=0)
        self._out = self._proc.stdout.fileno()
        _widen_pipe(self._out)
        _widen_pipe(self._proc.stdin.fileno())
        self._fed = 0
        self._feed_error = None
        self._held = b""  # its last _SENTINEL_BYTES may be the sentinel
        self._checked = False
        self._recheck = None
        self.proven = False  # igzip's answer stood (check)
        self._feeder = threading.Thread(target=self._feed, args=(raw,), name="igzip-feeder", daemon=True)
        try:
            self._feeder.start()
        except BaseException:
            self.close()
            self._proc.stdin.close()
            raise

    def _feed(self, raw):
        fd = self._proc.stdin.fileno()
        self._fed, self._feed_error = feed(raw, lambda data: self._write(fd, data), self._proc.stdin.close,
                                           lambda: _sentinel_member(self._sentinel))

    @staticmethod
    def _write(fd, data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def read(self, n=-1):
        while len(self._held) <= _SENTINEL_BYTES:
            data = os.read(self._out, CHUNK)
            if not data:
                self.check()
                return b""
            self._held = self._held + data if self._held else data
        give = len(self._held) - _SENTINEL_BYTES
        if n is not None and 0 <= n < give:
            give = n
        data, self._held = self._held[:give], self._held[give:]
        return data

    def check(self):
        """GzipRecheck unless igzip's answer stands, raised again by every later call."""
        if not self._checked:
            self._checked = True
            self._feeder.join()
            rc = self._proc.wait()
            if rc == 0 and self._feed_error is None and self._fed and self._held == self._sentinel:
                self.proven = True
            else:
                self._recheck = GzipRecheck("igzip's answer is not provably zlib's (exit status %d): the layer is "
                                            "read again through zlib" % rc)
        if self._recheck is not None:
            raise self._recheck

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()


def igzip_reader(source, head):
    """open_decompressed's gzip_reader: igzip's reader of the stream, or None to leave it to zlib."""
    if not _first_member_is_plain(head):
        return None
    exe = igzip_program()
    if not exe:
        return None
    try:
        return IgzipProcess(source, exe)
    except (OSError, RuntimeError):
        return None  # igzip cannot run here (another machine's binary, no interpreter, no thread): zlib reads it
