"""Which signature verifiers the host has: the gpg and openssl programs, the Python cryptography module."""

import os
import shutil
import sys

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import fscheck
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import signature_verifiers
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.signature_verifiers import host_verifiers


def test_the_verifiers_this_host_has():
    found = host_verifiers()
    assert found["gpg"] == {"path": shutil.which("gpg"), "version": found["gpg"]["version"]}
    assert found["gpg"]["version"].startswith("gpg (GnuPG) ")
    assert found["openssl"]["path"] == shutil.which("openssl") and found["openssl"]["version"].startswith("OpenSSL")
    assert found["cryptography"]["version"]


def test_missing_verifiers_are_null(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import fails
    assert host_verifiers() == {"gpg": None, "openssl": None, "cryptography": None}


def test_a_program_that_fails_has_no_version(monkeypatch, tmp_path):
    fake = tmp_path / "gpg"
    fake.write_text("#!/bin/sh\necho 'not a version'\nexit 3\n")
    os.chmod(str(fake), 0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert host_verifiers()["gpg"] == {"path": str(fake), "version": None}


def test_overlay_info_reports_them_when_asked(home):
    assert fscheck.host_status(home, verifiers=True)["signature_verifiers"]["gpg"]["path"] == shutil.which("gpg")


def test_overlay_info_runs_no_verifier_unless_asked(home, monkeypatch):
    """Every overlay_info (and the action plugin's probe of a host) would otherwise run gpg and openssl."""
    ran = []
    monkeypatch.setattr(signature_verifiers, "host_verifiers", lambda: ran.append(1) or {})
    status = fscheck.host_status(home)
    assert status["signature_verifiers"] is None
    assert ran == []
