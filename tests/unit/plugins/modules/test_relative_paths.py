"""A relative home or dest is refused by every module before anything is touched.

A module resolves a relative path against its working directory on the host, which is not the
playbook's: over SSH it is the login user's home, locally wherever ansible-playbook was started.
A `home: srv/layers` would then make a second layer home there, and a `dest: export/app.tar`
write the tarball there, each reported as a success.
"""

import os

import pytest

from ansible_collections.strata.overlay.plugins.modules import (
    overlay_apply_diff, overlay_diff, overlay_home, overlay_image, overlay_info, overlay_layer, overlay_mount)

from imagebuild import Image, write_oci_layout
from layertools import TarBuilder


@pytest.fixture
def in_scratch(scratch, monkeypatch):
    """The module's working directory is the scratch tmpfs, where a relative path would land."""
    monkeypatch.chdir(scratch)
    return scratch


@pytest.mark.parametrize("module,args", [
    (overlay_layer, {"id": "base"}),
    (overlay_apply_diff, {"id": "base", "src": "SRC", "remote_src": True}),
    (overlay_mount, {"id": "base", "holder": "web"}),
    (overlay_info, {}),
    (overlay_home, {"state": "present"}),
    (overlay_image, {"src": "oci:/nonexistent/layout:latest", "remote_src": True}),
], ids=["overlay_layer", "overlay_apply_diff", "overlay_mount", "overlay_info", "overlay_home", "overlay_image"])
def test_a_relative_home_is_refused_and_nothing_is_made(run_module, in_scratch, module, args):
    src = os.path.join(in_scratch, "base.tar")
    with open(src, "wb") as f:
        f.write(TarBuilder().file("motd", "hello\n").bytes())
    args = {k: (src if v == "SRC" else v) for k, v in args.items()}
    res = run_module(module, dict(args, home="srv/layers"))
    assert res.get("failed"), res
    assert "home must be an absolute path" in res["msg"] and "'srv/layers'" in res["msg"]
    assert sorted(os.listdir(in_scratch)) == ["base.tar"]


def test_a_relative_dest_is_refused_and_nothing_is_written(run_module, in_scratch, home):
    src = os.path.join(in_scratch, "base.tar")
    with open(src, "wb") as f:
        f.write(TarBuilder().file("motd", "hello\n").bytes())
    assert not run_module(overlay_apply_diff, {"id": "base", "home": home, "src": src, "remote_src": True}).get("failed")
    os.mkdir(os.path.join(in_scratch, "export"))
    res = run_module(overlay_diff, {"id": "base", "home": home, "dest": "export/base.tar"})
    assert res.get("failed"), res
    assert "dest must be an absolute path" in res["msg"] and "'export/base.tar'" in res["msg"]
    assert os.listdir(os.path.join(in_scratch, "export")) == []


def test_a_relative_src_on_the_host_is_refused_and_nothing_is_made(run_module, in_scratch, home):
    with open(os.path.join(in_scratch, "base.tar"), "wb") as f:
        f.write(TarBuilder().file("motd", "hello\n").bytes())
    res = run_module(overlay_apply_diff, {"id": "base", "home": home, "src": "base.tar", "remote_src": True})
    assert res.get("failed"), res
    assert "src must be an absolute path" in res["msg"] and "'base.tar'" in res["msg"]
    assert "remote_src: false" in res["msg"]
    assert not os.path.exists(home)


@pytest.mark.parametrize("transport", ["oci", "oci-archive", "docker-archive"])
def test_a_relative_image_path_on_the_host_is_refused_and_nothing_is_made(run_module, in_scratch, home, transport):
    os.mkdir(os.path.join(in_scratch, "images"))
    write_oci_layout(os.path.join(in_scratch, "images"), {"v1": Image([TarBuilder().file("a", "a\n").bytes()])})
    src = "%s:images:v1" % transport if transport != "docker-archive" else "docker-archive:images"
    res = run_module(overlay_image, {"src": src, "home": home, "remote_src": True})
    assert res.get("failed"), res
    assert "src's PATH must be an absolute path" in res["msg"] and repr(src) in res["msg"]
    assert "%s:/srv/images/" % transport in res["msg"]
    assert not os.path.exists(home)


@pytest.mark.parametrize("option", ["auth_file", "ca_path", "certs_dir", "registries_conf", "registries_conf_d",
                                    "registries_d", "registry_auth"])
def test_a_relative_file_of_a_pull_on_the_host_is_refused(run_module, in_scratch, home, option):
    os.mkdir(os.path.join(in_scratch, "conf"))
    value = {"auth_file": "conf"} if option == "registry_auth" else "conf"
    res = run_module(overlay_image, {"src": "docker://127.0.0.1:9/app:v1", "home": home, option: value,
                                     "retries": 0})
    assert res.get("failed"), res
    name = "registry_auth.auth_file" if option == "registry_auth" else option
    assert res["msg"].startswith("%s must be an absolute path, got 'conf'" % name), res["msg"]
    assert not os.path.exists(home)
