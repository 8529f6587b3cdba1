"""An image written as `docker pull` takes it (`debian:12`) fails saying what to write, before anything is made.

overlay_image reads the transport syntax of skopeo and podman; the bare names Docker's CLI takes are
no reference there, and the short name's two spellings (its Docker Hub full name, or `docker://NAME`
resolved by the host's registries.conf) are what the operator needs to read.
"""

import os

from ansible_collections.strata.overlay.plugins.modules import overlay_image


def test_a_bare_docker_name_fails_naming_both_spellings(run_module, home):
    res = run_module(overlay_image, {"src": "debian:12", "home": home})
    assert res.get("failed"), res
    assert "docker://docker.io/library/debian:12" in res["msg"], res["msg"]
    assert "docker://debian:12 to have the host's registries.conf resolve the short name 'debian'" in res["msg"]
    assert not os.path.exists(home)


def test_a_short_name_that_registries_conf_does_not_alias_is_told_the_entry_to_add(run_module, home, scratch):
    conf = os.path.join(scratch, "registries.conf")
    with open(conf, "w") as f:
        f.write('unqualified-search-registries = ["one.example", "two.example"]\n')
    res = run_module(overlay_image, {"src": "docker://debian:12", "home": home, "registries_conf": conf,
                                     "registries_conf_d": os.path.join(scratch, "none.d")})
    assert res.get("failed"), res
    assert "write the full name (docker://HOST/REPOSITORY, as docker://docker.io/library/debian)" in res["msg"]
    assert 'add an [aliases] entry ("debian" = "HOST/REPOSITORY")' in res["msg"]
    assert not os.path.exists(home)
