# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AnsibleModule of every module here: results and failures returned as run_module made them.

AnsibleModule.exit_json and fail_json pass the result through add_path_info,
which, for a returned `path` (else `dest`) that exists, adds the uid, gid,
owner, group, mode, state, secontext and *size* of that file (ansible-core
2.17 to 2.19 alike). Here `path` is a layer's merged/ directory and `size` the
size of the layer's diff, both at the top level of the result as DESIGN.md
fixes for overlay_apply_diff (and `dest` beside `size` for overlay_diff); the
file stats would overwrite the size and add keys these modules do not return.
Every module's failure may name a `path` too (run_module puts the error's path
there): the file the error is about, whose stats are no part of the failure.
A subclass that returns its results as they are is the supported way to say
so: AnsibleModule itself, and any other module, is left as it is.

The managers put what the user should see as warnings in the result's
`warnings`; passing that key to exit_json or fail_json is deprecated in
ansible-core 2.19 (and prints a deprecation of its own), so each is handed
to AnsibleModule.warn, which every supported release returns the same way.
"""

from ansible.module_utils.basic import AnsibleModule


class LayerModule(AnsibleModule):
    """AnsibleModule whose results are returned as the manager made them, without file stats."""

    def add_path_info(self, kwargs):
        return kwargs

    def _warn_from(self, kwargs):
        for warning in kwargs.pop("warnings", None) or []:
            self.warn(warning)

    def exit_json(self, **kwargs):
        self._warn_from(kwargs)
        super().exit_json(**kwargs)

    def fail_json(self, *args, **kwargs):
        self._warn_from(kwargs)
        super().fail_json(*args, **kwargs)
