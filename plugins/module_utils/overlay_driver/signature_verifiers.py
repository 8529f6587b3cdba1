# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which signature verifiers this host has: what a signature policy can rely on here.

The `gpg` program verifies simple signing (signedBy); the `openssl` program
or the Python `cryptography` module verify sigstore signatures. overlay_info
and the preflight role report them, so an operator learns before a pull that
a policy needing a missing verifier will refuse every image it covers.
Kept outside images/: overlay_info runs on every host and ships no image code.
"""

import shutil
import subprocess

VERSION_TIMEOUT = 10  # seconds for `PROGRAM --version`


def _program(names, args):
    for name in names:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            proc = subprocess.run([path] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL, timeout=VERSION_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return {"path": path, "version": None}
        first = proc.stdout.decode("utf-8", "replace").splitlines()[:1]
        return {"path": path, "version": first[0].strip() if first and proc.returncode == 0 else None}
    return None


def _python_module():
    try:
        import cryptography  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return {"version": getattr(cryptography, "__version__", None)}


def host_verifiers():
    """{"gpg": {path, version} or None, "openssl": {path, version} or None, "cryptography": {version} or None}:
    the verifiers present (version is the program's first `--version` line, or the module's version)."""
    return {"gpg": _program(("gpg", "gpg2"), ["--version"]),
            "openssl": _program(("openssl",), ["version"]),
            "cryptography": _python_module()}
