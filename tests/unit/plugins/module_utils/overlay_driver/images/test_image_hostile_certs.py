"""certs.d trust: files inside a root-owned registry directory that another user owns or may write.

certs.py says whoever can write certs.d "decides what is presented with the task's authority" and
checks the certs dir and the registry's directory (owner root, not group/other-writable); trusted_files.py
applies the same rule to each FILE too (the policy, registries.d). certs.d files are not checked: a CA
file any local user may rewrite is trusted for the registry (a MITM of every pull from it).
"""

import os
import pwd
import shutil
import ssl

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import certs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError


def _nobody():
    return pwd.getpwnam("nobody").pw_uid


@pytest.mark.parametrize("owner, mode", [("nobody", 0o644), ("root", 0o666), ("root", 0o664)])
def test_a_ca_file_another_user_may_write_is_not_trusted(tmp_path, pki, owner, mode):
    root = tmp_path / "certs.d"
    directory = root / "reg.example"
    directory.mkdir(parents=True)
    os.chmod(str(root), 0o755)
    os.chmod(str(directory), 0o755)
    ca = str(directory / "ca.crt")
    shutil.copyfile(pki[0], ca)  # stands for an attacker's CA: whoever may write the file chooses it
    if owner == "nobody":
        os.chown(ca, _nobody(), _nobody())
    os.chmod(ca, mode)
    context = ssl.create_default_context()
    before = len(context.get_ca_certs())
    try:
        certs.apply(context, "reg.example", (str(root),), "img")
    except ImageError as e:
        assert "ca.crt" in e.message
        return
    assert len(context.get_ca_certs()) == before, \
        "ca.crt owned by %s, mode %04o, was trusted for reg.example" % (owner, mode)


def test_a_client_key_another_user_owns_is_not_presented(tmp_path):
    from registry import Pki
    pki = Pki(str(tmp_path / "pki"))
    key, cert, _ca = pki.client_cert("client", "client-ca")
    root = tmp_path / "certs.d"
    directory = root / "reg.example"
    directory.mkdir(parents=True)
    shutil.copyfile(cert, str(directory / "client.cert"))
    shutil.copyfile(key, str(directory / "client.key"))
    for name in ("client.cert", "client.key"):
        os.chown(str(directory / name), _nobody(), _nobody())
        os.chmod(str(directory / name), 0o666)
    try:
        result = certs.apply(ssl.create_default_context(), "reg.example", (str(root),), "img")
    except ImageError:
        return
    pytest.fail("a client certificate/key owned by nobody, mode 0666, is presented: %r" % result.client_cert)
