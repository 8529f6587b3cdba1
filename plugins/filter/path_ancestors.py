# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: path_ancestors
short_description: Every entry on the way to an absolute path, from the one in / down to the path itself
version_added: 0.2.0
description:
  - Splits an absolute path into the paths that lead to it, from the entry in C(/) down to the path itself
    (C(/usr/local/lib) gives C(/usr), C(/usr/local), C(/usr/local/lib)), so that one C(stat) of them all can be
    judged with P(strata.overlay.install_dir_problems#filter), as the overlay_layers role does.
  - A relative path, one holding a newline, or one with a C(.) or C(..) in it is an error, since as text
    C(/a/link/..) is C(/a), but the kernel goes wherever C(link) leads first, so the entries judged would
    not be those on the way.
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
    - The paths, the one in C(/) first and the path itself last; empty for C(/) itself.
  type: list
  elements: path
'''

import posixpath

from ansible.errors import AnsibleFilterError


def path_ancestors(path):
    if not isinstance(path, str) or not path.startswith("/") or "\n" in path:
        raise AnsibleFilterError("path_ancestors expects an absolute path without a newline, not %r" % (path,))
    if any(name in (".", "..") for name in path.split("/")):
        # judged as text, /a/link/.. is /a; the kernel goes wherever link leads first
        raise AnsibleFilterError("path_ancestors expects a path without . or .. in it, not %r" % (path,))
    out = []
    parent = "/"
    for name in posixpath.normpath(path).split("/"):
        if name:
            parent = posixpath.join(parent, name)
            out.append(parent)
    return out


class FilterModule(object):
    def filters(self):
        return {"path_ancestors": path_ancestors}
