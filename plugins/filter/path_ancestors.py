# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: path_ancestors
short_description: Every directory on the way to an absolute path, as the directory and the name in it
version_added: 0.2.0
description:
  - Splits an absolute path into the entries that lead to it, from the one in C(/) down to the path itself,
    each as its parent directory (C(dir)), its name there (C(name)), a regular expression matching that name
    only (C(pattern)) and its whole path (C(path)).
  - What one M(ansible.builtin.find) run needs to read them all (C(paths) the C(dir)s, C(patterns) the
    C(pattern)s with C(use_regex=true)), which the overlay_layers role judges with
    P(strata.overlay.install_dir_problems#filter).
  - A relative path is an error; C(.) and C(..) are resolved as text first (C(/a/b/../c) is C(/a/c)).
options:
  _input:
    description: An absolute path.
    type: path
    required: true
author:
  - Strata Overlay maintainers (@strata-overlay)
'''

EXAMPLES = r'''
- name: The entries on the way to the restore program's directory
  ansible.builtin.debug:
    msg: "{{ '/usr/local/lib/strata-overlay' | strata.overlay.path_ancestors }}"
'''

RETURN = r'''
_value:
  description:
    - One dict per entry (C(dir), C(name), C(pattern), C(path)), the one in C(/) first; empty for C(/) itself.
  type: list
  elements: dict
'''

import posixpath
import re

from ansible.errors import AnsibleFilterError


def path_ancestors(path):
    if not isinstance(path, str) or not path.startswith("/"):
        raise AnsibleFilterError("path_ancestors expects an absolute path, not %r" % (path,))
    out = []
    parent = "/"
    for name in posixpath.normpath(path).split("/"):
        if not name:
            continue
        entry = posixpath.join(parent, name)
        # find matches from the start of the name (re.match); \Z ends it, where $ would allow a newline after it
        out.append({"dir": parent, "name": name, "pattern": re.escape(name) + r"\Z", "path": entry})
        parent = entry
    return out


class FilterModule(object):
    def filters(self):
        return {"path_ancestors": path_ancestors}
