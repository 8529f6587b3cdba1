"""Write the layer tarballs the integration targets use into DIR; print their diff_ids as JSON."""

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import sys
import tarfile


def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main(out):
    base = layer([("etc", None, 0o755), ("etc/motd", b"base\n", 0o644), ("etc/old.conf", b"old\n", 0o644),
                  ("srv", None, 0o755), ("srv/a", b"a\n", 0o644), ("usr/bin", None, 0o755),
                  ("usr/bin/tool", b"#!/bin/sh\n", 0o755)])
    child = layer([("etc/motd", b"child\n", 0o644), ("etc/.wh.old.conf", b"", 0o600), ("srv", None, 0o755),
                   ("srv/.wh..wh..opq", b"", 0o600), ("srv/b", b"b\n", 0o644)])
    other = layer([("other", b"x\n", 0o644)])
    hostile = layer([("ok", b"fine\n", 0o644), ("../../escape", b"pwn\n", 0o644)])
    files = {
        "base.tar.gz": gzip.compress(base),
        "base.tar": base,
        "child.tar.xz": lzma.compress(child),
        "child.tar.bz2": bz2.compress(child),
        "other.tar": other,
        "hostile.tar": hostile,
        "truncated.tar.gz": gzip.compress(base)[:-20],
    }
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    digests = {name: "sha256:" + hashlib.sha256(data).hexdigest()
               for name, data in (("base", base), ("child", child), ("other", other))}
    print(json.dumps(digests))


if __name__ == "__main__":
    main(sys.argv[1])
