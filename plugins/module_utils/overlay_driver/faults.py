# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named crash points, for proving that a run killed anywhere leaves a store the next run repairs.

Inert unless STRATA_OVERLAY_FAULT is set in the environment of the process,
as NAME or NAME:N; the process then kills itself with SIGKILL at the Nth time
it passes point NAME (default the first). With STRATA_OVERLAY_FAULT_WAIT set
to a path, it creates that file instead and waits there for a signal from
outside (SIGTERM, SIGINT). Reliability tests set them; nothing else should.
"""

import os
import signal
import time

ENV = "STRATA_OVERLAY_FAULT"
WAIT_ENV = "STRATA_OVERLAY_FAULT_WAIT"
_target, _sep, _nth = (os.environ.get(ENV) or "").partition(":")
_nth = int(_nth) if _nth.isdigit() else 1
_seen = 0


def point(name):
    """Die here if the environment asks for it."""
    global _seen
    if not _target or name != _target:
        return
    _seen += 1
    if _seen >= _nth:
        ready = os.environ.get(WAIT_ENV)
        if ready:
            with open(ready, "w"):
                pass
            time.sleep(120)  # the signal the test sends interrupts this
            return
        os.kill(os.getpid(), signal.SIGKILL)
