"""Unmount everything below DIR (deepest first) and remove it."""

import ctypes
import os
import shutil
import sys


def main(path):
    path = os.path.realpath(path)
    if not os.path.isdir(path):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    for point in sorted((p for p in points if p.startswith(path + "/")), key=len, reverse=True):
        libc.umount2(point.encode(), 2)
    shutil.rmtree(path)


if __name__ == "__main__":
    main(sys.argv[1])
