# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every module call of the overlay_layers role passes overlay_layout.

A call that leaves it out reads or writes the home in whatever layout the home
has, or in the seed's for a new home: a play that names overlay2 would be
answered by a call that never heard of it. (overlay_preflight passes no layout
on purpose: its read is reused only when overlay_layout is empty, vars/main.yml.)
"""

import glob
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TASKS = os.path.join(ROOT, "roles", "overlay_layers", "tasks")
LAYOUT = "{{ overlay_layout | default(omit, true) }}"


def _tasks(tasks):
    for task in tasks or []:
        yield task
        for part in ("block", "rescue", "always"):
            yield from _tasks(task.get(part))


def _module_calls():
    for path in sorted(glob.glob(os.path.join(TASKS, "*.yml"))):
        with open(path) as f:
            for task in _tasks(yaml.safe_load(f)):
                for key, args in task.items():
                    if key.startswith("strata.overlay.overlay_"):
                        yield os.path.basename(path), task.get("name"), key, args


def test_the_role_calls_modules():
    assert len(list(_module_calls())) >= 8


def test_every_module_call_passes_overlay_layout():
    missing = ["%s: %s (%s)" % (path, name, module) for path, name, module, args in _module_calls()
               if (args or {}).get("layout") != LAYOUT]
    assert missing == []
