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
  - An entry is a problem when it is not owned by root, or is writable by its group (any group, root's too,
    since a POSIX ACL that lets another user write shows in the group bits) or by every user; whoever can write one
    of them can put another directory or program in its place. A sticky directory (C(/tmp)) is no problem
    when the next entry on the way exists (only its owner, root, may rename or remove it), but it is when
    that entry does not exist yet, since anybody could make it first; the last path is judged as if the
    directory below it did not exist.
  - A symbolic link on the way is always a problem, root's too, since the directories it leads to are not among
    those judged. Name the directory it leads to instead.
  - Entries C(stat) printed nothing for do not exist yet; they are made by root when the program is installed.
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


def _problem(entry, next_missing):
    """Why another user could change what is in this entry, or None. next_missing: the next entry on the
    way does not exist yet (always so for the last one), so whoever can write this one could make it."""
    if entry["islnk"]:
        return ("a symbolic link (the directories it leads to are not judged here: name the directory it leads "
                "to)" if entry["uid"] == 0 else "a symbolic link owned by uid %d" % entry["uid"])
    if entry["uid"] != 0:
        return "owned by uid %d, not by root" % entry["uid"]
    mode = entry["mode"]
    if mode & 0o002:
        who = "every user"
    elif mode & 0o020:
        who = "group %d or an ACL entry" % entry["gid"]
    else:
        return None
    if not mode & _STICKY:
        return "writable by %s (mode %04o, no sticky bit)" % (who, mode)
    if next_missing:
        return "writable by %s (mode %04o) and what comes next on the way is not there yet: any of them could " \
               "make it first" % (who, mode)
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
    for index, path in enumerate(ancestors):
        entry = by_path.get(path)
        if entry is not None:
            next_missing = index + 1 == len(ancestors) or ancestors[index + 1] not in by_path
            problem = _problem(entry, next_missing)
            if problem:
                out.append("%s is %s" % (path, problem))
    return out


class FilterModule(object):
    def filters(self):
        return {"install_dir_problems": install_dir_problems}
