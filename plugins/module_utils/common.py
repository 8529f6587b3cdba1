# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every strata.overlay module shares: common options and the one way to run a manager.

Kept free of Ansible imports; run_module() gets the AnsibleModule instance. Kept free of the driver as
well (the store, the layout drivers): a module that only reads what it needs, as overlay_image_info does,
ships and compiles only that.
"""

import os
import signal
import traceback

from .overlay_driver.errors import Interrupted, NeedsSource, OverlayError, host_error
from .overlay_driver.layout import DEFAULT_HOME, LAYOUTS

_MAP_SPEC = dict(
    container_id=dict(type="int", required=True),
    host_id=dict(type="int", required=True),
    size=dict(type="int", required=True),
)

COMMON_ARGS = dict(
    home=dict(type="path", default=DEFAULT_HOME),
    # no default: "not given" means the maps recorded with the home
    uid_maps=dict(type="list", elements="dict", options=_MAP_SPEC),
    gid_maps=dict(type="list", elements="dict", options=_MAP_SPEC),
    # no default either: "not given" means the layout recorded with the home (overlay for a new one)
    layout=dict(type="str", choices=sorted(LAYOUTS)),
)


# Options that mean the same in every module that takes them.
LAYER_ID = dict(type="str", required=True)
PARENT_ID = dict(type="str", default="")  # empty: a base layer


def flag(default=False):
    """A bool option, off unless said otherwise."""
    return dict(type="bool", default=default)


def one_of(*choices):
    """A str option among choices, the first by default (state: what the module makes so)."""
    return dict(type="str", choices=list(choices), default=choices[0])


def argument_spec(**specific):
    """A module's own options with the common ones (home and its id maps)."""
    spec = dict(COMMON_ARGS)
    spec.update(specific)
    return spec


_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _interrupt(signum, _frame):
    # The first signal unwinds the run; later ones must not cut short the cleanup it starts.
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def catch_signals():
    """SIGTERM and SIGINT become an Interrupted exception: the store undoes what it half-made
    (temp dirs, view mounts, a layer created for an apply, the temp file of a diff) and the
    module fails with JSON instead of dying silently or printing a traceback."""
    for sig in _SIGNALS:
        signal.signal(sig, _interrupt)


def _fail(module, error):
    """An OverlayError as the module's failure: msg, and the layer, path and errno it names."""
    fail = {"msg": error.message}
    if error.layer:
        fail["layer_id"] = error.layer
    if error.path:
        fail["path"] = error.path
    if getattr(error, "errno_name", None):
        fail["errno"] = error.errno_name
    if isinstance(error, NeedsSource):
        fail["needs_src"] = True  # read by the action plugin: send src and ask again
    if getattr(error, "failed_at", None):
        fail["failed_at"] = error.failed_at  # overlay_image_info: which part of the run failed
    module.fail_json(**fail)


# Paths a module acts at on the host. A relative one would be taken from the module's working directory there,
# which is not the playbook's (over SSH the login user's home): a second layer home, or a tarball, made where
# nobody looks, and reported as a success.
ABSOLUTE_PATHS = ("home", "dest")


def require_absolute_paths(params):
    """Refuse a relative home or dest before anything is opened or made."""
    for name in ABSOLUTE_PATHS:
        require_absolute_host_path(name, params.get(name))


def require_absolute_host_path(name, value, written=None, fix=""):
    """Refuse a relative path the module would use on the host, before anything is opened or made.

    written is what the task wrote when the path is part of it (an image reference); fix says what to write
    instead, appended to the message.
    """
    if value and not os.path.isabs(value):
        raise OverlayError("%s must be an absolute path, got %r: a relative one would be taken from the module's "
                           "working directory on the host (the login user's home over SSH), not the playbook's%s"
                           % (name, written or value, fix))


def run_module(module, manager_class):
    """Run the manager; every failure becomes failed/msg, never a traceback in msg.

    module is a LayerModule (layer_module.py): a failure names the error's path without its file stats.
    """
    catch_signals()
    try:
        require_absolute_paths(module.params)
        manager = manager_class(module.params, module.check_mode, module._diff)
        result = manager.run()
    except Interrupted as e:
        layer = module.params.get("id")
        module.fail_json(msg="%sinterrupted by %s; what the run had half made was undone"
                         % ("layer %s: " % layer if layer else "", e.signal_name), interrupted=e.signal_name)
    except OverlayError as e:
        _fail(module, e)
    except Exception as e:  # pylint: disable=broad-except
        layer = module.params.get("id")
        named = host_error(e, layer, module.params.get("home"))
        if named is not None:
            _fail(module, named)
        prefix = "layer %s: " % layer if layer else ""
        module.fail_json(msg="%sunexpected error: %s: %s" % (prefix, type(e).__name__, e),
                         exception=traceback.format_exc())
    module.exit_json(**result)
