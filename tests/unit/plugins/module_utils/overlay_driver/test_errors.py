"""Errors of the host named with their errno and path; any other error left to the caller."""

import errno
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import host_error


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EMFILE])
def test_a_host_error_names_the_errno_the_path_and_what_to_do(code):
    named = host_error(OSError(code, os.strerror(code), "/srv/home/.strata/layers/x.json"), "app", "/srv/home")
    name = errno.errorcode[code]
    assert named.errno_name == name and named.layer == "app" and named.path == "/srv/home/.strata/layers/x.json"
    assert named.message.startswith("layer app, path /srv/home/.strata/layers/x.json: %s (%s): "
                                    % (name, os.strerror(code)))


def test_a_name_relative_to_a_directory_fd_is_given_beside_the_home():
    named = host_error(OSError(errno.EROFS, "Read-only file system", ".tmp-123"), None, "/srv/home")
    assert named.path == "/srv/home" and "EROFS (Read-only file system) at '.tmp-123': " in named.message


def test_bytes_names_and_errors_without_a_name():
    named = host_error(OSError(errno.ENOSPC, "No space left on device", b"caf\xe9"), "app", "/h")
    assert "at 'caf\\udce9'" in named.message
    assert host_error(OSError(errno.ENOSPC, "No space left on device"), "app", "/h").path == "/h"


@pytest.mark.parametrize("error", [OSError(errno.ENOENT, "No such file or directory", "/x"), ValueError("x"),
                                   OSError(errno.EACCES, "Permission denied")])
def test_other_errors_are_not_host_errors(error):
    assert host_error(error, "app", "/h") is None
