# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checkout carries nothing that belongs to one machine.

A tracked symlink to a directory outside the checkout (a virtualenv of another
checkout, say) makes a fresh clone use, and `make deps` rebuild, whatever that
link points at on the machine it was committed on.
"""

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tracked():
    try:
        out = subprocess.run(["git", "-C", ROOT, "ls-files", "-s", "-z"], check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for entry in out.decode().split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            yield meta.split()[0], path


def test_no_tracked_symlink_leaves_the_checkout():
    leaving = []
    for mode, path in _tracked():
        if mode != "120000":
            continue
        target = subprocess.run(["git", "-C", ROOT, "cat-file", "-p", ":" + path],
                                check=True, capture_output=True, text=True).stdout
        resolved = os.path.normpath(os.path.join(ROOT, os.path.dirname(path), target))
        if os.path.isabs(target) or not resolved.startswith(ROOT + os.sep):
            leaving.append("%s -> %s" % (path, target))
    assert not leaving


def test_nothing_tracked_is_ignored():
    ignored = subprocess.run(["git", "-C", ROOT, "ls-files", "-ci", "--exclude-standard"],
                             check=True, capture_output=True, text=True).stdout.split()
    assert not ignored
