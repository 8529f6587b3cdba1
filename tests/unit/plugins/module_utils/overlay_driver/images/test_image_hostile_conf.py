"""Attacks on registries.conf / registries.conf.d reading, compared with containers/image (sysregistriesv2).

Each test states what containers-registries.conf(5) / containers/image does; the module must do the same.
"""

import os
import pwd

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import registries_conf
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference


class Conf:
    def __init__(self, root):
        self.path = os.path.join(root, "registries.conf")
        self.dir = os.path.join(root, "registries.conf.d")
        os.makedirs(self.dir)

    def write(self, text, name=None):
        path = self.path if name is None else os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def load(self):
        return registries_conf.load(self.path, self.dir, "img", environ={})

    def endpoints(self, src):
        return [(e.what, "%s/%s" % (e.reference.host, e.reference.repository), e.insecure)
                for e in registries_conf.endpoints(self.load(), parse_reference(src))]


@pytest.fixture
def conf(tmp_path):
    return Conf(str(tmp_path))


# -- short names found through unqualified-search-registries = ["docker.io"] ---------------------------------
# containers/image builds each candidate with reference.ParseNormalizedNamed(registry + "/" + name), so
# `debian` searched on docker.io is docker.io/library/debian, and FindRegistry() is called with that
# normalized Name(): prefixes and mirror rewrites see "docker.io/library/debian".

def test_search_on_docker_hub_mirror_gets_the_library_namespace(conf):
    conf.write('unqualified-search-registries = ["docker.io"]\n'
               '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
               '[[registry.mirror]]\nlocation = "mirror.example"\n')
    # written in full, the mirror is asked for library/debian
    assert conf.endpoints("docker://docker.io/library/debian:12")[0][1] == "mirror.example/library/debian"
    # the same image found by the search must go to the same mirror path
    assert conf.endpoints("docker://debian:12")[0][1] == "mirror.example/library/debian"


def test_search_on_docker_hub_cannot_bypass_a_blocked_prefix(conf):
    conf.write('unqualified-search-registries = ["docker.io"]\n'
               '[[registry]]\nprefix = "docker.io/library/debian"\nlocation = "docker.io/library/debian"\n'
               'blocked = true\n')
    with pytest.raises(ImageError):
        conf.endpoints("docker://docker.io/library/debian:12")  # blocked, as it should be
    with pytest.raises(ImageError) as e:
        print(conf.endpoints("docker://debian:12"))  # the same image by its short name must be blocked too
    assert "blocks pulls" in e.value.message


def test_search_on_docker_hub_location_rewrite_keeps_library(conf):
    conf.write('unqualified-search-registries = ["docker.io"]\n'
               '[[registry]]\nprefix = "docker.io/library"\nlocation = "internal.example/hub-library"\n')
    assert conf.endpoints("docker://docker.io/library/debian")[0][1] == "internal.example/hub-library/debian"
    assert conf.endpoints("docker://debian")[0][1] == "internal.example/hub-library/debian"


# -- mirror-by-digest-only together with pull-from-mirror --------------------------------------------------
# containers/image postProcessRegistries: "cannot set mirror usage mirror-by-digest-only for the registry
# (...) and pull-from-mirror for per-mirror (...) at the same time" -- the file is refused.
# Letting the per-mirror value win would have a registry the operator marked mirror-by-digest-only
# get its tag pulls served by the mirror.

@pytest.mark.parametrize("pull", ["all", "tag-only"])
def test_mirror_by_digest_only_with_pull_from_mirror_is_refused(conf, pull):
    conf.write('[[registry]]\nprefix = "reg.example"\nmirror-by-digest-only = true\n'
               '[[registry.mirror]]\nlocation = "m.example"\npull-from-mirror = "%s"\n' % pull)
    try:
        got = conf.endpoints("docker://reg.example/x:1")
    except ImageError:
        return  # refused: as containers/image
    assert "mirror m.example" not in [e[0] for e in got], \
        "mirror-by-digest-only registry sends a tag pull to its mirror: %r" % got


# -- wildcard prefixes with a port -----------------------------------------------------------------------
# containers/image loadConfigFile: a `*.` prefix containing any of "/@:" is refused ("Wildcarded prefix
# should be in the format: *.example.com"). Accepted, `*.example.com:5000` could never match anything, and
# a `blocked = true` written with it would silently block nothing.

def test_wildcard_prefix_with_port_is_not_silently_ignored(conf):
    conf.write('[[registry]]\nprefix = "*.example.com:5000"\nblocked = true\n')
    with pytest.raises(ImageError):
        print(conf.endpoints("docker://a.example.com:5000/x/y:1"))


# -- aliases whose value has no registry -----------------------------------------------------------------
# containers/image parseShortNameValue: `invalid alias "team/app": must contain registry and repository`
# (the first component must contain "." or ":" or be localhost). Accepted, it would pull from a host
# literally named "team".

def test_alias_value_without_a_registry_is_refused(conf):
    conf.write('[aliases]\n"app" = "team/app"\n')
    with pytest.raises(ImageError):
        print(conf.endpoints("docker://app:1"))


# -- the same location twice with conflicting blocked / insecure ------------------------------------------
# containers/image postProcessRegistries: "registry '...' is defined multiple times with conflicting
# 'blocked' setting" -- refused.

def test_same_location_with_conflicting_blocked_is_refused(conf):
    conf.write('[[registry]]\nprefix = "a.example/one"\nlocation = "internal.example"\nblocked = true\n'
               '[[registry]]\nprefix = "a.example/two"\nlocation = "internal.example"\n')
    with pytest.raises(ImageError):
        conf.load()


# -- who may write registries.conf.d ---------------------------------------------------------------------
# registries.d (lookaside), the policy and certs.d are read only when root's alone (trusted_files.py,
# certs.py). registries.conf.d decides insecure=true and where pulls go, but a drop-in owned by another
# user, world-writable, or a symlink to a file elsewhere is read as if root wrote it.

def _nobody():
    return pwd.getpwnam("nobody").pw_uid


def test_world_writable_drop_in_owned_by_another_user_is_not_trusted(conf):
    conf.write('[[registry]]\nprefix = "reg.example"\nblocked = true\n')
    evil = conf.write('[[registry]]\nprefix = "reg.example"\nlocation = "attacker.example"\ninsecure = true\n',
                      "99-evil.conf")
    os.chown(evil, _nobody(), _nobody())
    os.chmod(evil, 0o666)
    try:
        got = conf.endpoints("docker://reg.example/app:1")
    except ImageError as e:
        assert "trust" in e.message or "owned" in e.message or "writable" in e.message
        return
    pytest.fail("a drop-in owned by nobody, mode 0666, unblocked reg.example and redirected it: %r" % got)


def test_world_writable_registries_conf_d_directory_is_not_trusted(conf):
    os.chmod(conf.dir, 0o777)  # no sticky bit: anyone can add a drop-in
    conf.write('[[registry]]\nprefix = "reg.example"\nlocation = "attacker.example"\ninsecure = true\n',
               "50-x.conf")
    try:
        got = conf.endpoints("docker://reg.example/app:1")
    except ImageError:
        return
    pytest.fail("a drop-in in a world-writable registries.conf.d redirected the pull: %r" % got)


def test_symlinked_drop_in_to_a_user_file_is_not_followed(conf, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    target = home / "mine.conf"
    target.write_text('[[registry]]\nprefix = "reg.example"\nlocation = "attacker.example"\ninsecure = true\n')
    os.chown(str(home), _nobody(), _nobody())
    os.chown(str(target), _nobody(), _nobody())
    os.symlink(str(target), os.path.join(conf.dir, "50-link.conf"))
    try:
        got = conf.endpoints("docker://reg.example/app:1")
    except ImageError:
        return
    pytest.fail("a symlink in registries.conf.d to a file another user owns was read: %r" % got)
