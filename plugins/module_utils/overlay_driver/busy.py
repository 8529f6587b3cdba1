# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which processes keep a mount busy, as `fuser -m` finds them.

An unmount that fails with EBUSY tells the operator nothing about why; the
kernel knows, but only /proc says it. A process uses a mount through its
working directory, its root, its executable, an open file descriptor or a
mapped file. Each is matched two ways: by the device of the object (what
fuser -m compares; overlay has a device of its own) and by the path the
process sees, at or below the mount point (covers objects whose device is
that of an underlying filesystem). Processes that vanish or cannot be read
during the scan are skipped: the scan only explains a failure, it decides
nothing.
"""

import os

_LINKS = (("cwd", "cwd"), ("root", "root"), ("exe", "exe"))
_MAX_REPORTED = 20


def _under(path, mount_point):
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def _matches(link, device, mount_point):
    try:
        target = os.readlink(link)
    except OSError:
        return False
    if _under(target, mount_point):
        return True
    if device is None:
        return False
    try:
        return os.stat(link).st_dev == device
    except OSError:
        return False


def _mapped(pid_dir, device, mount_point):
    """True when the process maps a file of the mount (shared library, mmapped file)."""
    wanted = (os.major(device), os.minor(device)) if device is not None else None
    try:
        with open(os.path.join(pid_dir, "maps")) as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) < 6:
                    continue
                path = fields[5].rstrip("\n")
                dev_major, _sep, dev_minor = fields[3].partition(":")
                try:
                    same_dev = (int(dev_major, 16), int(dev_minor, 16)) == wanted
                except ValueError:
                    same_dev = False
                if (same_dev and fields[4] != "0") or (path.startswith("/") and _under(path, mount_point)):
                    return True
    except OSError:
        return False
    return False


def _uses(pid_dir, device, mount_point):
    uses = [what for name, what in _LINKS if _matches(os.path.join(pid_dir, name), device, mount_point)]
    fd_dir = os.path.join(pid_dir, "fd")
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        fds = []
    if any(_matches(os.path.join(fd_dir, fd), device, mount_point) for fd in fds):
        uses.append("open fd")
    if _mapped(pid_dir, device, mount_point):
        uses.append("mmap")
    return uses


def _command(pid_dir):
    try:
        with open(os.path.join(pid_dir, "cmdline"), "rb") as f:
            argv = [a.decode("utf-8", "backslashreplace") for a in f.read().split(b"\0") if a]
        if argv:
            return " ".join(argv)
        with open(os.path.join(pid_dir, "comm"), "rb") as f:
            return "[%s]" % f.read().decode("utf-8", "backslashreplace").strip()
    except OSError:
        return "?"


def _own_device(mount_point):
    """The mount's device when it has one of its own (overlay), None for a bind mount.

    A bind mount shares its device with the filesystem it comes from, where
    matching by device would name every process working anywhere on it.
    """
    try:
        device = os.stat(mount_point).st_dev
        parent = os.stat(os.path.dirname(mount_point.rstrip("/")) or "/").st_dev
    except OSError:
        return None
    return device if device != parent else None


def processes_using(mount_point, proc="/proc"):
    """[{pid, command, uses}] for every process that uses the mount at mount_point.

    mount_point is the path as mountinfo and the processes see it (resolved).
    """
    device = _own_device(mount_point)
    own = os.getpid()
    found = []
    for name in os.listdir(proc):
        if not name.isdigit() or int(name) == own:
            continue
        pid_dir = os.path.join(proc, name)
        uses = _uses(pid_dir, device, mount_point)
        if uses:
            found.append({"pid": int(name), "command": _command(pid_dir), "uses": uses})
    return sorted(found, key=lambda p: p["pid"])


def describe(processes):
    """The processes as one sentence for an error message."""
    if not processes:
        return "no process found holding it (a mount below it or a kernel user such as a loop device or " \
               "an open namespace may)"
    shown = ["pid %d (%s: %s)" % (p["pid"], " ".join(p["command"].split())[:80], ", ".join(p["uses"]))
             for p in processes[:_MAX_REPORTED]]
    more = len(processes) - len(shown)
    return "held by %s%s" % ("; ".join(shown), " and %d more" % more if more > 0 else "")
