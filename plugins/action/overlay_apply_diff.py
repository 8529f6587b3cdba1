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
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args.copy()
        module_name = self._task.action
        try:
            remote_src = boolean(args.get("remote_src", False), strict=True)
        except TypeError as e:
            return dict(result, failed=True, msg="remote_src: %s" % to_text(e))
        if remote_src:
            result.update(self._execute_module(module_name=module_name, module_args=args, task_vars=task_vars))
            return result

        src = args.get("src")
        if args.get("diff_id"):
            # Ask first: a layer that already has this diff needs nothing from the controller.
            probe = dict(args, remote_src=True)
            probe.pop("src", None)
            answer = self._execute_module(module_name=module_name, module_args=probe, task_vars=task_vars)
            if not answer.get("needs_src") or src is None:
                result.update(answer)
                return result
        elif src is None:
            return dict(result, failed=True, msg="src is required (or diff_id of a diff the layer already has)")
        missing = self._missing_src(args, src, result)
        if missing:
            return missing
        local = self._find_needle("files", src)

        tmpdir = self._connection._shell.tmpdir
        if tmpdir is None:
            tmpdir = self._make_tmp_path()
        remote = self._connection._shell.join_path(tmpdir, "layer.tar")
        try:
            self._transfer_file(local, remote)
            self._fixup_perms2((tmpdir, remote))
            module_args = dict(args, src=remote, remote_src=True)
            result.update(self._execute_module(module_name=module_name, module_args=module_args,
                                               task_vars=task_vars))
        finally:
            self._remove_tmp_path(tmpdir)
        return result

    def _missing_src(self, args, src, result):
        try:
            self._find_needle("files", src)
        except AnsibleError as e:
            return dict(result, failed=True, msg="layer %s: src %s not found on the controller: %s"
                        % (args.get("id"), src, to_text(e)))
        return None
