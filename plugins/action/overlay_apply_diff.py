# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send a layer tarball from the controller, but only when the host needs it.

With diff_id given, the module is asked first without src; a layer that
already has that diff answers from its record, and nothing is sent. Otherwise
src goes to a temporary file on the host (like ansible.builtin.unarchive),
which is always removed. Check mode sends it too: a check run reads and
verifies the tarball, so it fails where the real run would.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.strata.overlay.plugins.plugin_utils.source_action import SourceAction


class ActionModule(SourceAction):

    def _run_with_src(self, result, args, remote_src, task_vars):
        if remote_src:
            result.update(self._run_module(args, task_vars))
            return result

        src = args.get("src")
        if args.get("diff_id"):
            # Ask first: a layer that already has this diff needs nothing from the controller.
            probe = dict(args, remote_src=True)
            probe.pop("src", None)
            answer = self._run_module(probe, task_vars)
            if not answer.get("needs_src") or src is None:
                result.update(answer)
                return result
        elif src is None:
            return dict(result, failed=True, msg="src is required (or diff_id of a diff the layer already has)")
        try:
            local = self._find_needle("files", src)
        except AnsibleError as e:
            return dict(result, failed=True, msg="layer %s: src %s not found on the controller: %s"
                        % (args.get("id"), src, to_text(e)))

        with self._host_tmpdir() as tmpdir:
            remote = self._connection._shell.join_path(tmpdir, "layer.tar")
            self._transfer_file(local, remote)
            self._fixup_perms2((tmpdir, remote))
            result.update(self._run_module(dict(args, src=remote, remote_src=True), task_vars))
        return result
