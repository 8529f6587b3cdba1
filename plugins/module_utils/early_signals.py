# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SIGTERM and SIGINT while a module is still starting end in a JSON failure, not in rc -15.

Every module imports this first, right below its documentation: importing Ansible and the
store takes a quarter of a second, and a signal in that time used to kill the process
silently. Until run_module() installs its own handlers (common.catch_signals), nothing on
the host has been touched, so the handler here only reports and exits.
"""

import json
import os
import signal

from .overlay_driver import faults

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _report_and_exit(signum, _frame):
    name = signal.Signals(signum).name
    result = {"failed": True, "changed": False, "interrupted": name,
              "msg": "interrupted by %s while the module was starting; nothing was changed" % name}
    # os.write and os._exit: the interrupted code may hold stdout's buffer or any lock
    os.write(1, json.dumps(result).encode("utf-8") + b"\n")
    os._exit(1)


def install():
    for sig in SIGNALS:
        signal.signal(sig, _report_and_exit)


install()
faults.point("module.start")
