# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: install_dir_problems
short_description: Why a user other than root could change what is installed in a directory
version_added: 0.2.0
description:
  - Judges the directories on the way to a directory root installs a program into (for
    the C(strata.overlay.overlay_layers) role, the boot unit's restore program, which runs as root at boot), from
    what one M(ansible.builtin.find) run read of them (C(file_type=any), C(hidden=true), not following links).
  - An entry is a problem when it is not owned by root, or is writable by group (other than group 0) or by
    others without the sticky bit; whoever can write one of them can put another directory or program in its
    place. A symbolic link on the way is a problem unless root owns it.
  - Entries the find run did not return do not exist yet; they are made by root when the program is installed.
  - The mode bits are judged; a POSIX ACL is not visible to M(ansible.builtin.find).
options:
  _input:
    description: The C(files) of the M(ansible.builtin.find) run.
    type: list
    elements: dict
    required: true
  ancestors:
    description: The entries on the way, as P(strata.overlay.path_ancestors#filter) gives them.
    type: list
    elements: dict
    required: true
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: Refuse an install directory another user could change
  ansible.builtin.fail:
    msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ found.files | strata.overlay.install_dir_problems(ancestors=ancestors) }}"
  when: problems | length > 0
'''

RETURN = r'''
_value:
  description: One message per entry that is a problem, naming it, its owner and mode; empty when there is none.
  type: list
  elements: str
'''

from ansible.errors import AnsibleFilterError

_STICKY = 0o1000


def _problem(entry):
    """Why another user could change what is in this entry, or None."""
    if entry.get("islnk"):
        return None if entry.get("uid") == 0 else "a symbolic link owned by uid %s" % entry.get("uid")
    if entry.get("uid") != 0:
        return "owned by uid %s, not by root" % entry.get("uid")
    try:
        mode = int(str(entry.get("mode")), 8)
    except ValueError:
        return "of unknown mode %r" % (entry.get("mode"),)
    if mode & _STICKY:
        return None
    if mode & 0o002:
        return "writable by every user (mode %04o, no sticky bit)" % mode
    if mode & 0o020 and entry.get("gid") != 0:
        return "writable by group %s (mode %04o)" % (entry.get("gid"), mode)
    return None


def install_dir_problems(found, ancestors):
    if not isinstance(found, list) or not isinstance(ancestors, list):
        raise AnsibleFilterError("install_dir_problems expects the files of a find run and a list of ancestors")
    by_path = {e.get("path"): e for e in found if isinstance(e, dict)}
    out = []
    for ancestor in ancestors:
        entry = by_path.get(ancestor.get("path"))
        if entry is None:
            continue
        problem = _problem(entry)
        if problem:
            out.append("%s is %s" % (ancestor["path"], problem))
    return out


class FilterModule(object):
    def filters(self):
        return {"install_dir_problems": install_dir_problems}
