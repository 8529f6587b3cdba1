"""registries.conf and registries.conf.d: mirrors, blocked and insecure registries, locations, short names.

The pulls go to the real htpasswd and token registries of tests/registry.py;
their access logs say which one served what.
"""

import base64
import json
import os
import pwd
import shutil
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import registries_conf
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.sources import registry_endpoints
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
from fake_registry import FakeRegistry
from imagetools import Image
from registry import free_port, have_tools, registries


class Conf:
    """A registries.conf and a registries.conf.d of the test's own."""

    def __init__(self, root):
        self.path = os.path.join(root, "registries.conf")
        self.dir = os.path.join(root, "registries.conf.d")
        os.makedirs(self.dir)
        self.write("")  # named by the tests' runs, so it must exist

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


# -- what the files say ------------------------------------------------------------------------

def test_without_any_file_nothing_changes(conf):
    os.unlink(conf.path)
    loaded = registries_conf.load(None, conf.dir, "img", environ={"CONTAINERS_REGISTRIES_CONF": conf.path})
    assert loaded.files == [] and loaded.registries == {} and loaded.search is None
    for src, where in [("docker://debian:12", "docker.io/library/debian"), ("docker://reg.example/a/b", "reg.example/a/b")]:
        endpoint, = registries_conf.endpoints(loaded, parse_reference(src))
        assert "%s/%s" % (endpoint.reference.host, endpoint.reference.repository) == where


def test_an_empty_file_changes_nothing(conf):
    loaded = conf.load()
    assert loaded.files == [conf.path] and loaded.registries == {} and loaded.search is None


@pytest.mark.parametrize("missing", ["file", "directory-on-its-path"])
def test_a_registries_conf_the_task_names_must_exist(conf, missing):
    # as skopeo --registries-conf: a mistyped path would drop the blocks and mirrors it was meant to bring
    conf.write('[[registry]]\nprefix = "reg.example"\nblocked = true\n', "10-block.conf")
    path = conf.path if missing == "file" else os.path.join(conf.dir, "nowhere", "registries.conf")
    os.unlink(conf.path)
    with pytest.raises(ImageError) as e:
        registries_conf.load(path, conf.dir, "img", environ={})
    assert e.value.message == ("image img, path %s: the registries_conf file does not exist (without the option, "
                               "$CONTAINERS_REGISTRIES_CONF or else /etc/containers/registries.conf is read, if "
                               "there is one)" % path)


def test_a_missing_relative_registries_conf_is_named_by_the_path_it_was_looked_for_at(conf, monkeypatch):
    # with pull: controller the action plugin reads the option on the controller, relative to its directory
    monkeypatch.chdir(os.path.dirname(conf.path))
    with pytest.raises(ImageError) as e:
        registries_conf.load("mistyped.conf", conf.dir, "img", environ={})
    where = os.path.join(os.path.dirname(conf.path), "mistyped.conf")
    assert e.value.path == where and e.value.message.count("mistyped.conf") == 1


def test_a_missing_registries_conf_d_is_no_error(conf):
    loaded = registries_conf.load(conf.path, os.path.join(conf.dir, "none"), "img", environ={})
    assert loaded.files == [conf.path]


def test_mirrors_come_first_then_the_location(conf):
    conf.write('''
[[registry]]
prefix = "reg.example/team"
location = "internal.example:5000/mirrored/team"
insecure = true

[[registry.mirror]]
location = "m0.example/cache"

[[registry.mirror]]
location = "m1.example"
insecure = true
pull-from-mirror = "all"
''')
    assert conf.endpoints("docker://reg.example/team/app:1") == [
        ("mirror m0.example", "m0.example/cache/app", False),
        ("mirror m1.example", "m1.example/app", True),
        ("registry internal.example:5000", "internal.example:5000/mirrored/team/app", True)]
    # a prefix matches whole components only
    assert conf.endpoints("docker://reg.example/teammate/app") == [
        ("registry reg.example", "reg.example/teammate/app", False)]


def test_the_longest_prefix_wins_and_wildcards_match_hosts(conf):
    conf.write('''
[[registry]]
prefix = "*.example.com"
[[registry.mirror]]
location = "wild-mirror.local"

[[registry]]
prefix = "a.example.com/special"
location = "special.local/s"
''')
    assert conf.endpoints("docker://a.example.com/special/x") == [("registry special.local", "special.local/s/x",
                                                                   False)]
    assert conf.endpoints("docker://b.example.com:5000/x/y") == [
        ("mirror wild-mirror.local", "wild-mirror.local/x/y", False),
        ("registry b.example.com:5000", "b.example.com:5000/x/y", False)]
    assert conf.endpoints("docker://example.com/x") == [("registry example.com", "example.com/x", False)]


@pytest.mark.parametrize("pull_from_mirror, by_tag, by_digest", [
    ("all", True, True), ("digest-only", False, True), ("tag-only", True, False)])
def test_pull_from_mirror(conf, pull_from_mirror, by_tag, by_digest):
    conf.write('[[registry]]\nprefix = "reg.example"\n[[registry.mirror]]\nlocation = "m.example"\n'
               'pull-from-mirror = "%s"\n' % pull_from_mirror)
    digest = "sha256:" + "a" * 64
    assert ("mirror m.example" in [e[0] for e in conf.endpoints("docker://reg.example/x:1")]) == by_tag
    assert ("mirror m.example" in [e[0] for e in conf.endpoints("docker://reg.example/x@" + digest)]) == by_digest


def test_mirror_by_digest_only(conf):
    conf.write('[[registry]]\nprefix = "reg.example"\nmirror-by-digest-only = true\n'
               '[[registry.mirror]]\nlocation = "m.example"\n')
    assert [e[0] for e in conf.endpoints("docker://reg.example/x:1")] == ["registry reg.example"]


def test_blocked_is_refused(conf):
    path = conf.write('\n[[registry]]\nprefix = "reg.example/forbidden"\nblocked = true\n')
    with pytest.raises(ImageError) as e:
        conf.endpoints("docker://reg.example/forbidden/x")
    assert "registries.conf blocks pulls from reg.example/forbidden/x" in e.value.message
    assert "%s:2" % path in e.value.message
    assert conf.endpoints("docker://reg.example/allowed")[0][0] == "registry reg.example"


def test_later_files_override_earlier_ones(conf):
    conf.write('unqualified-search-registries = ["one.example", "two.example"]\nshort-name-mode = "permissive"\n'
               '[[registry]]\nprefix = "reg.example"\nblocked = true\n[aliases]\n"a" = "one.example/a"\n'
               '"b" = "one.example/b"\n')
    conf.write('[[registry]]\nprefix = "reg.example"\nlocation = "new.example"\n', "50-unblock.conf")
    conf.write('unqualified-search-registries = ["three.example"]\n[aliases]\n"b" = "three.example/bee"\n',
               "60-search.conf")
    conf.write('[[registry]]\nprefix = "ignored"\nblocked = true\n', "70-not-a-conf.txt")
    loaded = conf.load()
    assert loaded.files == [conf.path, os.path.join(conf.dir, "50-unblock.conf"),
                            os.path.join(conf.dir, "60-search.conf")]
    assert conf.endpoints("docker://reg.example/x") == [("registry new.example", "new.example/x", False)]
    assert loaded.search == ["three.example"] and loaded.short_name_mode == "permissive"
    assert conf.endpoints("docker://a") == [("registry one.example", "one.example/a", False)]
    assert conf.endpoints("docker://b:2") == [("registry three.example", "three.example/bee", False)]


def test_short_names_need_an_alias(conf):
    conf.write('[aliases]\n"debian" = "docker.io/library/debian"\n"app" = "reg.example/team/app"\n')
    assert conf.endpoints("docker://app:1") == [("registry reg.example", "reg.example/team/app", False)]
    assert conf.endpoints("docker://debian@sha256:" + "b" * 64) == [
        ("registry docker.io", "docker.io/library/debian", False)]
    for src in ("docker://ubuntu", "docker://library/ubuntu:22.04"):
        with pytest.raises(ImageError) as e:
            conf.endpoints(src)
        assert "is a short name, and registries.conf (%s) has no alias for it" % conf.path in e.value.message
    # written with a host, the name is no short name
    assert conf.endpoints("docker://docker.io/library/ubuntu")[0][1] == "docker.io/library/ubuntu"


@pytest.mark.parametrize("mode, search, expected", [
    (None, ["one.example"], ["one.example/ubuntu"]),
    ("enforcing", ["one.example"], ["one.example/ubuntu"]),
    ("enforcing", ["one.example", "two.example"], None),
    ("permissive", ["one.example", "two.example"], ["one.example/ubuntu", "two.example/ubuntu"]),
    ("disabled", ["one.example", "two.example"], ["one.example/ubuntu", "two.example/ubuntu"]),
    ("permissive", [], None),
])
def test_short_names_and_search_registries(conf, mode, search, expected):
    text = "unqualified-search-registries = [%s]\n" % ", ".join('"%s"' % s for s in search)
    if mode:
        text += 'short-name-mode = "%s"\n' % mode
    conf.write(text)
    if expected is None:
        with pytest.raises(ImageError) as e:
            conf.endpoints("docker://ubuntu")
        assert "short name" in e.value.message
    else:
        assert [e[1] for e in conf.endpoints("docker://ubuntu")] == expected


@pytest.mark.parametrize("text, line, fragment", [
    ('[registries.search]\nregistries = ["docker.io"]\n', 1, "v1 format"),
    ('credential-helpers = ["x"]\n', 1, "the key 'credential-helpers' is not supported here"),
    ('[[registry]]\nprefix = "a.example"\nremap = true\n', 3, "the [[registry]] key 'remap' is not supported"),
    ('[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\nlocation = "m"\nweight = "1"\n', 5,
     "the [[registry.mirror]] key 'weight'"),
    ('[[registry]]\nprefix = "a.example"\ninsecure = "yes"\n', 3, "insecure must be true or false"),
    ('[[registry]]\nblocked = true\n', 1, "needs a prefix or a location"),
    ('[[registry]]\nprefix = "*.a.example"\nlocation = "b.example"\n', 3, "takes no location"),
    ('[[registry]]\nprefix = "a.*.example"\n', 2, "a wildcard is only"),
    ('[[registry]]\nprefix = "https://a.example"\n', 2, "is not HOST[:PORT][/PATH]"),
    ('[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\ninsecure = true\n', 3, "needs a location"),
    ('[[registry]]\nprefix = "a.example"\n[[registry.mirror]]\nlocation = "m.example"\n'
     'pull-from-mirror = "sometimes"\n', 5, "pull-from-mirror must be one of all, digest-only, tag-only"),
    ('[[registry]]\nprefix = "a.example"\n[[registry]]\nlocation = "a.example"\n', 3, "a second [[registry]]"),
    ('short-name-mode = "lenient"\n', 1, "short-name-mode must be one of"),
    ('unqualified-search-registries = "docker.io"\n', 1, "must be a list of registry hosts"),
    ('[aliases]\n"x" = "x"\n', 2, "must be a full name"),
    ('[aliases]\n"x" = "reg.example/x:1"\n', 2, "without tag or digest"),
    ('a = 1\n', 1, "only strings, booleans"),
])
def test_what_is_not_understood_is_refused_naming_file_and_line(conf, text, line, fragment):
    path = conf.write(text, "10-bad.conf")
    with pytest.raises(ImageError) as e:
        conf.load()
    assert "line %d:" % line in e.value.message and fragment in e.value.message
    assert e.value.path == path


def test_the_default_paths_and_the_environment(conf):
    assert (registries_conf.DEFAULT_CONF, registries_conf.DEFAULT_CONF_D) == (
        "/etc/containers/registries.conf", "/etc/containers/registries.conf.d")
    conf.write('[[registry]]\nprefix = "reg.example"\nblocked = true\n')
    loaded = registries_conf.load(None, conf.dir, "img", environ={"CONTAINERS_REGISTRIES_CONF": conf.path})
    assert loaded.files == [conf.path]


# -- pulls from the real registries ------------------------------------------------------------

@pytest.fixture(scope="module")
def pushed():
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    work = tempfile.mkdtemp(prefix="strata-registries-conf-")
    try:
        with registries(directory=os.path.join(work, "registries")) as regs:
            image = imagebuild.sample_images()["base"]
            layout = os.path.join(work, "layout")
            imagebuild.write_oci_layout(layout, {"base": image})
            digests = {}
            for registry in (regs.basic, regs.token):
                digests[registry.host] = imagebuild.push(regs, "oci:%s:base" % layout, "base", "gzip",
                                                         registry=registry)
            yield regs, image, digests
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pull(pushed, scratch, conf, src, **kw):
    """stage_image with an auth file holding the credentials of both registries: a mirror gets only those
    found for its own host, never registry_auth's username and password."""
    regs = pushed[0]
    auth_file = os.path.join(scratch, "auth.json")
    with open(auth_file, "w", encoding="utf-8") as f:
        secret = base64.b64encode(regs.creds.encode()).decode()
        auths = {host: {"auth": secret} for host in (regs.basic.host, regs.token.host)}
        f.write(json.dumps({"auths": auths}))
    kw.setdefault("registry_auth", {"auth_file": auth_file})
    kw.setdefault("ca_path", regs.pki.ca_crt)
    return stage_image(LayerStore(os.path.join(scratch, "home")), src, registries_conf=conf.path,
                       registries_conf_d=conf.dir, **kw)


def served(registry, mark):
    return [path for _method, path, status in registry.requests(mark) if status == 200 and path != "/v2/"]


def test_the_mirror_serves_the_whole_pull(pushed, scratch, conf):
    regs, image, _digests = pushed
    conf.write('[[registry]]\nprefix = "%s"\n[[registry.mirror]]\nlocation = "%s"\n'
               % (regs.token.host, regs.basic.host))
    marks = regs.basic.log_mark(), regs.token.log_mark()
    result = pull(pushed, scratch, conf, regs.token.ref("base", "gzip"))
    assert result.top == image.chain_ids[-1]
    assert served(regs.token, marks[1]) == []
    assert len([p for p in served(regs.basic, marks[0]) if "/blobs/" in p]) == 1 + len(image.chain_ids)


@pytest.mark.parametrize("mirror", ["missing-repository", "nothing-listening"])
def test_a_mirror_without_the_image_passes_on_to_the_registry(pushed, scratch, conf, mirror):
    regs, image, _digests = pushed
    location = "%s/nothing-here" % regs.basic.host if mirror == "missing-repository" else "127.0.0.1:%d" % free_port()
    conf.write('[[registry]]\nprefix = "%s"\n[[registry.mirror]]\nlocation = "%s"\n' % (regs.token.host, location))
    mark = regs.token.log_mark()
    result = pull(pushed, scratch, conf, regs.token.ref("base", "gzip"))
    assert result.top == image.chain_ids[-1]
    assert any("/manifests/" in p for p in served(regs.token, mark))


def test_when_no_place_has_the_image_each_is_named(pushed, scratch, conf):
    regs, _image, _digests = pushed
    dead = "127.0.0.1:%d" % free_port()
    conf.write('[[registry]]\nprefix = "%s"\n[[registry.mirror]]\nlocation = "%s/nothing-here"\n'
               '[[registry.mirror]]\nlocation = "%s"\n' % (regs.token.host, regs.basic.host, dead))
    with pytest.raises(ImageError) as e:
        pull(pushed, scratch, conf, regs.token.ref("absent", "gzip"))
    message = e.value.message
    assert "mirror %s: manifest gzip not found in nothing-here/absent" % regs.basic.host in message
    assert "mirror %s: cannot reach" % dead in message
    assert "registry %s: manifest gzip not found in absent" % regs.token.host in message


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_a_digest_only_mirror_serves_pulls_by_digest_only(pushed, scratch, conf, by):
    regs, image, digests = pushed
    conf.write('[[registry]]\nprefix = "%s"\n[[registry.mirror]]\nlocation = "%s"\npull-from-mirror = "digest-only"\n'
               % (regs.token.host, regs.basic.host))
    mark = regs.basic.log_mark()
    src = regs.token.ref("base", "gzip" if by == "tag" else digests[regs.token.host])
    assert pull(pushed, scratch, conf, src).top == image.chain_ids[-1]
    assert bool(served(regs.basic, mark)) == (by == "digest")


def test_a_blocked_registry_is_never_asked(pushed, scratch, conf):
    regs, _image, _digests = pushed
    conf.write('[[registry]]\nprefix = "%s/base"\nblocked = true\n' % regs.basic.host)
    mark = regs.basic.log_mark()
    with pytest.raises(ImageError) as e:
        pull(pushed, scratch, conf, regs.basic.ref("base", "gzip"))
    assert "registries.conf blocks pulls from %s/base" % regs.basic.host in e.value.message
    assert regs.basic.requests(mark) == []
    assert [n for n in os.listdir(os.path.join(scratch, "home")) if not n.startswith(".")] == []


def test_a_location_and_an_alias_say_where_a_name_is(pushed, scratch, conf):
    regs, image, _digests = pushed
    conf.write('[[registry]]\nprefix = "registry.example.com/team"\nlocation = "%s"\n'
               '[aliases]\n"base" = "registry.example.com/team/base"\n' % regs.basic.host)
    assert pull(pushed, scratch, conf, "docker://registry.example.com/team/base:gzip").top == image.chain_ids[-1]
    assert pull(pushed, scratch, conf, "docker://base:gzip").top == image.chain_ids[-1]
    with pytest.raises(ImageError) as e:
        pull(pushed, scratch, conf, "docker://other:gzip")
    assert "'other' is a short name" in e.value.message


def test_an_insecure_registry_is_reached_without_verifying_its_certificate(pushed, scratch, conf):
    regs, image, _digests = pushed
    conf.write('[[registry]]\nlocation = "%s"\n' % regs.basic.host)
    with pytest.raises(ImageError) as e:
        pull(pushed, scratch, conf, regs.basic.ref("base", "gzip"), ca_path=None)
    assert "does not verify" in e.value.message
    conf.write('[[registry]]\nlocation = "%s"\ninsecure = true\n' % regs.basic.host)
    assert pull(pushed, scratch, conf, regs.basic.ref("base", "gzip"), ca_path=None).top == image.chain_ids[-1]


def test_the_modules_registries_conf_options(pushed, scratch, conf):
    regs, _image, _digests = pushed
    conf.write('[[registry]]\nprefix = "%s"\nblocked = true\n' % regs.basic.host, "99-block.conf")
    params = {"src": regs.basic.ref("base", "gzip"), "home": os.path.join(scratch, "home"), "uid_maps": [],
              "gid_maps": [], "platform": None, "registry_auth": regs.auth, "validate_certs": True,
              "ca_path": regs.pki.ca_crt, "registries_conf": conf.path, "registries_conf_d": conf.dir}
    with pytest.raises(ImageError) as e:
        ImageManager(params, check_mode=True).run()
    assert "registries.conf blocks" in e.value.message


@pytest.mark.parametrize("text, src, registry_auth, fragment", [
    ('[[registry]]\nprefix = "reg.example"\nblocked = true\n', "docker://reg.example/app:1", None,
     "registries.conf blocks"),
    ('[[registry]]\nprefix = "reg.example"\nweight = "2"\n', "docker://reg.example/app:1", None,
     "'weight' is not supported"),
    ('unqualified-search-registries = ["a.example", "b.example"]\nshort-name-mode = "permissive"\n',
     "docker://app:1", {"username": "u", "password": "p"}, "is searched in 2 (a.example, b.example"),
])
def test_a_refusing_or_bad_registries_conf_fails_before_the_home_is_made(
        conf, scratch, text, src, registry_auth, fragment):
    conf.write(text)
    home = os.path.join(scratch, "home")
    params = {"src": src, "home": home, "uid_maps": [], "gid_maps": [],
              "platform": None, "registry_auth": registry_auth, "validate_certs": True, "ca_path": None,
              "registries_conf": conf.path, "registries_conf_d": conf.dir}
    with pytest.raises(ImageError) as e:
        ImageManager(params).run()
    assert fragment in e.value.message
    assert not os.path.exists(home)


# -- credentials and mirrors (fake registries that record what they were sent) ------------------------

@pytest.fixture
def no_auth_files(tmp_path, monkeypatch):
    """No credential file of this machine's user is read: only what a test gives."""
    empty = tmp_path / "no-auth-files"
    empty.mkdir()
    for name in ("HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.setenv(name, str(empty))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    return empty


@pytest.fixture
def fakes(pki):
    started = []

    def start(**kw):
        started.append(FakeRegistry(tls=(pki[1], pki[2]), **kw).start())
        return started[-1]
    yield start
    for server in started:
        server.stop()


def _basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


@pytest.mark.parametrize("mirror_has_own", [False, True])
def test_registry_auth_password_never_goes_to_a_mirror(conf, fakes, pki, scratch, no_auth_files, mirror_has_own):
    """registry_auth's username and password are the registry's: a mirror on another host gets only the
    credentials an auth file holds for it, and without any it is passed over for the registry."""
    primary = fakes(auth="basic", users={"alice": "registry-secret"})
    mirror = fakes(auth="basic", users={"m": "mirror-secret"})
    image = Image()
    primary.push("team/app", image)
    mirror.push("team/app", image)
    conf.write('[[registry]]\nprefix = "%s"\n[[registry.mirror]]\nlocation = "%s"\n' % (primary.netloc, mirror.netloc))
    auth = {"username": "alice", "password": "registry-secret"}
    if mirror_has_own:
        auth_file = no_auth_files / "auth.json"
        auth_file.write_text('{"auths": {"%s": {"auth": "%s"}}}' % (mirror.netloc, _basic("m", "mirror-secret")[6:]))
        auth["auth_file"] = str(auth_file)
    result = stage_image(LayerStore(os.path.join(scratch, "home")), "docker://%s/team/app:v1" % primary.netloc,
                         registry_auth=auth, ca_path=pki[0], registries_conf=conf.path, registries_conf_d=conf.dir)
    assert result.top == image.ids[-1]
    sent_to_mirror = [h.get("Authorization") for _p, h in mirror.requests]
    assert _basic("alice", "registry-secret") not in sent_to_mirror
    served_by_primary = [p for p, _h in primary.requests if "/blobs/" in p]
    if mirror_has_own:
        assert _basic("m", "mirror-secret") in sent_to_mirror and served_by_primary == []
    else:
        assert served_by_primary, "the mirror refused, so the registry served the pull"


@pytest.mark.parametrize("search", [1, 2])
def test_registry_auth_password_never_goes_to_a_search_registry_the_operator_did_not_name(
        conf, fakes, pki, scratch, no_auth_files, search):
    """A short name searched in several registries would carry registry_auth's password to each one tried
    before the one that has the image: refused before any is asked. With one search registry the name says
    where it goes, and the pull goes on."""
    first = fakes(auth="basic", users={"alice": "registry-secret"})
    second = fakes(auth="basic", users={"alice": "registry-secret"})
    image = Image()
    second.push("team/app", image)
    hosts = [first.netloc, second.netloc][-search:]
    conf.write('unqualified-search-registries = [%s]\nshort-name-mode = "permissive"\n'
               % ", ".join('"%s"' % h for h in hosts))
    auth = {"username": "alice", "password": "registry-secret"}

    def stage():
        return stage_image(LayerStore(os.path.join(scratch, "home")), "docker://team/app:v1", registry_auth=auth,
                           ca_path=pki[0], registries_conf=conf.path, registries_conf_d=conf.dir)
    if search == 1:
        assert stage().top == image.ids[-1]
        return
    searched = r"short name 'team/app' is searched in 2 \(%s, %s" % (first.netloc, second.netloc)
    with pytest.raises(ImageError, match=searched):
        stage()
    assert first.requests == [] and second.requests == []


def test_a_short_name_whose_search_registries_all_lead_to_one_host_may_carry_registry_auth(conf):
    """The password would go to one host only (b.example's location is a.example; mirrors never get it)."""
    conf.write('unqualified-search-registries = ["a.example", "b.example"]\nshort-name-mode = "permissive"\n'
               '[[registry]]\nprefix = "b.example"\nlocation = "a.example"\n'
               '[[registry.mirror]]\nlocation = "mirror.example"\n')
    found = registry_endpoints(parse_reference("docker://app:1"), conf.path, conf.dir, {"username": "u", "password": "p"})
    assert [(e.reference.host, e.mirror) for e in found] == [("a.example", False), ("mirror.example", True),
                                                             ("a.example", False)]


# -- what containers/image refuses or normalizes, held to it (containers-registries.conf(5)) --------------------

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
