"""Run the real module files as separate processes, the way Ansible runs them on a host."""

import importlib
import json
import os
import subprocess
import sys
import tempfile

_PKG = importlib.import_module("ansible_collections.strata.overlay")
REPO = os.path.realpath(list(_PKG.__path__)[0])
# the directory that holds ansible_collections/
PYTHONPATH = os.path.dirname(os.path.dirname(os.path.dirname(list(_PKG.__path__)[0])))


def start(module, args, fault=None, env=None):
    """Start a module process; returns (Popen, argsfile)."""
    fd, argsfile = tempfile.mkstemp(prefix="strata-args-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    extra = env
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    env.pop("STRATA_OVERLAY_FAULT", None)
    if fault:
        env["STRATA_OVERLAY_FAULT"] = fault
    env.update(extra or {})
    path = os.path.join(REPO, "plugins", "modules", module + ".py")
    proc = subprocess.Popen([sys.executable, path, argsfile], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    return proc, argsfile


def finish(proc, argsfile):
    out, err = proc.communicate()
    os.unlink(argsfile)
    result = None
    if out.strip():
        try:
            result = json.loads(out)
        except ValueError:
            result = {"unparsed": out.decode(errors="replace")}
    return proc.returncode, result, err.decode(errors="replace")


def run(module, args, fault=None):
    return finish(*start(module, args, fault))


def recorded_layout(home):
    """The layout a home was written in (its .strata/layout.json): a test run on each layout checks
    that its module processes wrote the home in the layout it names."""
    with open(os.path.join(home, ".strata", "layout.json")) as f:
        return json.load(f)["layout"]
