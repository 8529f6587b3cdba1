# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Room for many descriptors at once, under RLIMIT_NOFILE.

An overlay2 mount names each of its lowers by a directory root opened
itself (/proc/self/fd/N), so a layer on Docker's 128 lowers holds about 130
descriptors open at once. Hosts and Ansible runs may start with a soft
limit of 1024 or less: the soft limit is raised up to the hard one when it
is too low, and a hard limit too low to mount the layer is said before
anything is mounted.
"""

import os
import resource

from .errors import OverlayError


def open_descriptors():
    """How many descriptors the process holds now."""
    return len(os.listdir("/proc/self/fd"))


def ensure_free(count, what, change=True):
    """count more descriptors can be open at once: the soft RLIMIT_NOFILE raised (never past the hard one)
    when it is too low. Returns the limit then in force: every descriptor number stays below it.
    OverlayError naming both limits when even the hard one is too low; what says what needs them.
    change=False (a check run) only says whether the limit could be raised: nothing is changed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = open_descriptors() + count
    if soft == resource.RLIM_INFINITY or need <= soft:
        return soft
    if hard != resource.RLIM_INFINITY and need > hard:
        raise OverlayError("%s needs %d descriptors open at once, %d with those this process holds, over its "
                           "open-file limit (RLIMIT_NOFILE, soft %d, hard %d): raise it (ulimit -n, LimitNOFILE=)"
                           % (what, count, need, soft, hard))
    if change:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return need


__all__ = ["ensure_free", "open_descriptors"]
