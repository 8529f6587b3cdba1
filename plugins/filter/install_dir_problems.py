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
  - Judges the entries on the way to a directory root installs a program into (for the
    C(strata.overlay.overlay_layers) role, the boot unit's restore program, which runs as root at boot), from
    what one run of C(stat --printf '%u|%g|%a|%F|%n\n' -- PATH...) printed of them (without following links).
  - An entry is a problem when it is not owned by root, or is writable by group (other than group 0) or by
    others without the sticky bit; whoever can write one of them can put another directory or program in its
    place. A symbolic link on the way is a problem unless root owns it.
  - Entries C(stat) printed nothing for do not exist yet; they are made by root when the program is installed.
  - The mode bits are judged; a POSIX ACL is not.
options:
  _input:
    description: The lines C(stat) printed, one per entry that exists.
    type: list
    elements: str
    required: true
  ancestors:
    description: The paths on the way, as P(strata.overlay.path_ancestors#filter) gives them.
    type: list
    elements: path
    required: true
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: Refuse an install directory another user could change
  ansible.builtin.fail:
    msg: "{{ problems | join('; ') }}"
  vars:
    problems: "{{ stat_run.stdout_lines | strata.overlay.install_dir_problems(ancestors=ancestors) }}"
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


def _entry(line):
    """The fields of one line `stat --printf '%u|%g|%a|%F|%n'` printed (the name last: it may hold '|'), or None."""
    fields = line.split("|", 4)
    if len(fields) != 5:
        return None
    uid, gid, mode, kind, path = fields
    try:
        return {"uid": int(uid), "gid": int(gid), "mode": int(mode, 8), "islnk": kind == "symbolic link",
                "path": path}
    except ValueError:
        return None


def _problem(entry):
    """Why another user could change what is in this entry, or None."""
    if entry["islnk"]:
        return None if entry["uid"] == 0 else "a symbolic link owned by uid %d" % entry["uid"]
    if entry["uid"] != 0:
        return "owned by uid %d, not by root" % entry["uid"]
    mode = entry["mode"]
    if mode & _STICKY:
        return None
    if mode & 0o002:
        return "writable by every user (mode %04o, no sticky bit)" % mode
    if mode & 0o020 and entry["gid"] != 0:
        return "writable by group %d (mode %04o)" % (entry["gid"], mode)
    return None


def install_dir_problems(lines, ancestors):
    if not isinstance(lines, list) or not isinstance(ancestors, list):
        raise AnsibleFilterError("install_dir_problems expects the lines of a stat run and a list of paths")
    by_path = {}
    for line in lines:
        entry = _entry(str(line))
        if entry is None:
            raise AnsibleFilterError("install_dir_problems: a line stat printed is not uid|gid|mode|type|name: %r"
                                     % (line,))
        by_path[entry["path"]] = entry
    out = []
    for path in ancestors:
        entry = by_path.get(path)
        if entry is not None:
            problem = _problem(entry)
            if problem:
                out.append("%s is %s" % (path, problem))
    return out


class FilterModule(object):
    def filters(self):
        return {"install_dir_problems": install_dir_problems}
