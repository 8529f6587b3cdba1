# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's side that overlay_apply_diff and overlay_image share: their modules read `src`.

With remote_src: true the module reads it on the managed host and the action
only runs the module. Otherwise the action decides what of src the host needs,
sends that into a temporary directory on the host and runs the module on it;
the directory is removed whatever happens. Each action says only what it sends.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase


class SourceAction(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super(SourceAction, self).run(tmp, task_vars)
        del tmp
        args = self._task.args.copy()
        try:
            remote_src = boolean(args.get("remote_src", False), strict=True)
        except TypeError as e:
            return dict(result, failed=True, msg="remote_src: %s" % to_text(e))
        return self._run_with_src(result, args, remote_src, task_vars)

    def _run_with_src(self, result, args, remote_src, task_vars):
        """The task's result: the module's answer merged into `result`, or `result` failed."""
        raise NotImplementedError

    def _run_module(self, args, task_vars):
        """The task's own module, with these arguments."""
        return self._execute_module(module_name=self._task.action, module_args=args, task_vars=task_vars)

    @contextlib.contextmanager
    def _host_tmpdir(self):
        """A temporary directory on the host for what is sent, removed when the block ends."""
        tmpdir = self._connection._shell.tmpdir
        if tmpdir is None:
            tmpdir = self._make_tmp_path()
        try:
            yield tmpdir
        finally:
            self._remove_tmp_path(tmpdir)
