"""The least any Python applier must spend: the system calls of every entry and nothing else.

    syscall_floor.py manifest TARBALL MANIFEST.json    (untimed: parse the headers once)
    syscall_floor.py apply TARBALL MANIFEST.json DEST  (timed: the system calls only)

The apply step does, per entry, what GNU tar does (create, write the data,
chown, chmod, utime, directory times last) from a Python loop over headers parsed beforehand, with
the data taken from a memory map of the uncompressed tarball. It checks no
name, resolves nothing inside a root, verifies no digest and tolerates no
hostile input: it only shows what the interpreter adds to tar's system calls.
"""

import json
import os
import sys
import tarfile


def manifest(tarball, out):
    rows = []
    with tarfile.open(tarball) as archive:
        for m in archive:
            rows.append([m.name, m.type.decode(), m.mode, m.uid, m.gid, int(m.mtime), m.size, m.offset_data,
                         m.linkname, m.devmajor, m.devminor])
    with open(out, "w") as f:
        json.dump(rows, f)


def apply(tarball, manifest_path, dest):
    with open(manifest_path) as f:
        rows = json.load(f)
    archive = os.open(tarball, os.O_RDONLY)
    os.umask(0)
    os.mkdir(dest)
    dir_times = []
    for name, kind, mode, uid, gid, mtime, size, offset, linkname, major, minor in rows:
        path = dest + "/" + name.rstrip("/")
        if kind == "5":
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            os.chown(path, uid, gid)
            os.chmod(path, mode)
            dir_times.append((path, mtime))
            continue
        elif kind in ("0", "\x00", "7"):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            if size:
                os.write(fd, os.pread(archive, size, offset))
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            os.close(fd)
        elif kind == "2":
            os.symlink(linkname, path)
            os.chown(path, uid, gid, follow_symlinks=False)
        elif kind == "1":
            os.link(dest + "/" + linkname, path)
            continue
        else:
            fmt = {"3": 0o020000, "4": 0o060000}.get(kind, 0o010000)
            os.mknod(path, fmt | mode, os.makedev(major, minor))
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    for path, mtime in reversed(dir_times):  # as tar does: directories last, once their entries exist
        os.utime(path, (mtime, mtime))


if __name__ == "__main__":
    if sys.argv[1] == "manifest":
        manifest(sys.argv[2], sys.argv[3])
    else:
        apply(sys.argv[2], sys.argv[3], sys.argv[4])
