# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: restore_program_plan
short_description: Which files of the boot unit's restore program the overlay_layers role must copy or remove
version_added: 0.2.0
description:
  - Compares the collection's driver package on the controller (the source files) with what one
    M(ansible.builtin.find) run (C(get_checksum=true), C(file_type=any)) read of the installed copy on the host.
  - A source file is copied when the host has no regular file of its name, or one whose SHA-1, mode (C(0644)),
    owner or group (C(root), 0) differ. The restore program runs as root at boot, so a file of the wrong
    owner or mode is put back like a changed one.
  - An installed file that is no longer in the package is removed, since the restore program could import it.
  - This way an unchanged host costs one read of the installed copy, not one module run per file.
options:
  _input:
    description: The paths of the package's source files on the controller.
    type: list
    elements: path
    required: true
  installed:
    description: The C(files) of the M(ansible.builtin.find) run on the installed package directory.
    type: list
    elements: dict
    required: true
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: Show what the install would do
  ansible.builtin.debug:
    msg: "{{ sources | strata.overlay.restore_program_plan(installed=found.files) }}"
'''

RETURN = r'''
_value:
  description: C(install), the source paths to copy, and C(stale), the installed paths to remove, each sorted.
  type: dict
'''

import hashlib
import os

from ansible.errors import AnsibleFilterError

INSTALLED_MODE = "0644"


def _sha1(path):
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _in_place(entry, checksum):
    """True when the installed entry is the source file as the role installs it."""
    return (entry.get("isreg") is True and entry.get("checksum") == checksum
            and entry.get("mode") == INSTALLED_MODE and entry.get("uid") == 0 and entry.get("gid") == 0)


def restore_program_plan(sources, installed):
    if not isinstance(sources, list) or not isinstance(installed, list):
        raise AnsibleFilterError("restore_program_plan expects a list of source paths and the files of a find run")
    by_name = {}
    for entry in installed:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise AnsibleFilterError("restore_program_plan: installed holds an entry without a path: %r" % (entry,))
        by_name[os.path.basename(entry["path"])] = entry
    names = set()
    copy = []
    for source in sources:
        name = os.path.basename(str(source))
        names.add(name)
        entry = by_name.get(name)
        if entry is None or not _in_place(entry, _sha1(str(source))):
            copy.append(str(source))
    remove = [entry["path"] for name, entry in by_name.items() if name not in names]
    return {"install": sorted(copy), "stale": sorted(remove)}


class FilterModule(object):
    def filters(self):
        return {"restore_program_plan": restore_program_plan}
