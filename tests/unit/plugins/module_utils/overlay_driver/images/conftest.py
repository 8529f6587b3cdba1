"""Fixtures shared by the image tests that talk to a fake registry over TLS."""

import os
import tempfile

import pytest

from fake_registry import make_ca


@pytest.fixture(scope="session")
def pki():
    """A throwaway CA with a server certificate for 127.0.0.1, made once and removed at the end."""
    directory = tempfile.mkdtemp(prefix="strata-pki-")
    yield make_ca(directory)
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)
