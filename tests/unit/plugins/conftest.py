"""Fixtures shared by the tests that talk to a fake registry over TLS (the image code, its modules, the action)."""

import os
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import retry

from fake_registry import FakeRegistry, make_ca


@pytest.fixture(scope="session")
def pki():
    """A throwaway CA with a server certificate for 127.0.0.1, made once and removed at the end."""
    directory = tempfile.mkdtemp(prefix="strata-pki-")
    yield make_ca(directory)
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


@pytest.fixture
def server(pki):
    """A fake registry over TLS with the pki's certificate, stopped after the test."""
    registry = FakeRegistry(tls=(pki[1], pki[2])).start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def waits(monkeypatch):
    """The waits between attempts, recorded instead of slept."""
    recorded = []
    monkeypatch.setattr(retry, "sleep", recorded.append)
    return recorded
