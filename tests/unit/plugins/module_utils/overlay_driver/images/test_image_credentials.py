"""Which credentials a pull uses: skopeo's order of auth files, and docker-credential-* helpers.

The helpers are real programs the test writes onto a PATH of its own; the
pulls go to the real htpasswd and token registries of tests/registry.py.
"""

import base64
import json
import os
import shutil
import signal
import sys
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import credentials
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.credentials import credentials_for
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
from registry import have_tools, registries

HOST = "registry.example.com"

HELPER = '''#!%(python)s
import json, sys, time
server = sys.stdin.read()
with open(%(log)r, "a") as f:
    f.write(json.dumps([sys.argv[1:], server]) + "\\n")
behaviour = %(behaviour)r
if behaviour == "hang":
    import subprocess
    subprocess.call(["/bin/sleep", "600"])  # a grandchild holding stdout open too
if behaviour == "escape":
    # a daemon in a session of its own (a keyring agent started on first use) keeps stdout open
    import subprocess
    daemon = subprocess.Popen(["/bin/sleep", "20"], start_new_session=True)
    with open(%(log)r + ".daemon", "w") as f:
        f.write(str(daemon.pid))
if behaviour == "flood":
    for _ in range(128):
        sys.stdout.write("x" * 65536)
    sys.stdout.flush()
    time.sleep(600)
if behaviour == "fail":
    sys.stderr.write("the keyring is locked\\n")
    sys.exit(3)
if behaviour == "garbage":
    print("not json")
    sys.exit(0)
answers = %(answers)r
if server not in answers:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = answers[server]
print(json.dumps({"ServerURL": server, "Username": user, "Secret": secret}))
'''


class World:
    """A HOME, an XDG_RUNTIME_DIR and a PATH holding only the helpers written into it."""

    def __init__(self, root):
        self.root = root
        self.home = os.path.join(root, "home")
        self.runtime = os.path.join(root, "run")
        self.bin = os.path.join(root, "bin")
        self.log = os.path.join(root, "helper.log")
        for path in (self.home, self.runtime, self.bin):
            os.makedirs(path)
        self.environ = {"HOME": self.home, "XDG_RUNTIME_DIR": self.runtime, "PATH": self.bin}

    def write_json(self, path, document):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(document, f)
        return path

    def runtime_auth(self, document):
        return self.write_json(os.path.join(self.runtime, "containers", "auth.json"), document)

    def config_auth(self, document):
        return self.write_json(os.path.join(self.home, ".config", "containers", "auth.json"), document)

    def docker_config(self, document):
        return self.write_json(os.path.join(self.home, ".docker", "config.json"), document)

    def helper(self, name, answers=None, behaviour="answer"):
        path = os.path.join(self.bin, "docker-credential-" + name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(HELPER % {"python": sys.executable, "log": self.log, "behaviour": behaviour,
                              "answers": dict(answers or {})})
        os.chmod(path, 0o755)

    def calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def lookup(self, registry_auth=None, host=HOST, repository="team/app", **kw):
        return credentials_for(registry_auth, host, repository, "img", environ=self.environ, **kw)


@pytest.fixture
def world(tmp_path):
    return World(str(tmp_path))


def entry(user, password):
    return {"auth": base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def names(creds):
    return None if creds is None else (creds.username, creds.password)


# -- the order of the files --------------------------------------------------------------------

FILES = ("runtime_auth", "config_auth", "docker_config")


@pytest.mark.parametrize("present", [
    ("runtime_auth", "config_auth", "docker_config"),
    ("config_auth", "docker_config"),
    ("runtime_auth", "docker_config"),
    ("docker_config",),
    ("config_auth",),
])
def test_the_first_file_with_credentials_wins_in_skopeos_order(world, present):
    for which in FILES:
        if which in present:
            getattr(world, which)({"auths": {HOST: entry(which, "pw-" + which)}})
    assert names(world.lookup()) == (present[0], "pw-" + present[0])


def test_a_file_without_the_registry_passes_on_to_the_next(world):
    world.runtime_auth({"auths": {"other.example.com": entry("other", "x")}})
    world.config_auth({"auths": {}})
    world.docker_config({"auths": {HOST: entry("docker", "pw")}})
    assert names(world.lookup()) == ("docker", "pw")
    assert world.lookup(host="nowhere.example.com") is None


def test_without_xdg_runtime_dir_podmans_run_directory_is_first(world):
    del world.environ["XDG_RUNTIME_DIR"]
    assert credentials.default_auth_files(world.environ) == [
        "/run/containers/%d/auth.json" % os.geteuid(),
        os.path.join(world.home, ".config", "containers", "auth.json"),
        os.path.join(world.home, ".docker", "config.json")]
    world.environ.update(XDG_CONFIG_HOME=os.path.join(world.root, "cfg"), DOCKER_CONFIG=os.path.join(world.root, "d"))
    assert credentials.default_auth_files(world.environ)[1:] == [
        os.path.join(world.root, "cfg", "containers", "auth.json"), os.path.join(world.root, "d", "config.json")]


def test_a_given_auth_file_or_registry_auth_file_is_read_alone(world):
    world.runtime_auth({"auths": {HOST: entry("runtime", "pw")}})
    given = world.write_json(os.path.join(world.root, "given.json"), {"auths": {"other.example.com": entry("o", "x")}})
    assert world.lookup({"auth_file": given}) is None
    world.environ["REGISTRY_AUTH_FILE"] = given
    assert world.lookup() is None
    assert names(world.lookup({"username": "inline", "password": "pw"})) == ("inline", "pw")
    os.unlink(given)
    with pytest.raises(ImageError) as e:
        world.lookup({"auth_file": given})
    assert "cannot read auth_file" in e.value.message and e.value.path == given


def test_an_unreadable_default_file_is_an_error_naming_it(world):
    path = world.config_auth({})
    with open(path, "w", encoding="utf-8") as f:
        f.write("{not json")
    with pytest.raises(ImageError) as e:
        world.lookup()
    assert "not valid JSON" in e.value.message and e.value.path == path


# -- helpers ---------------------------------------------------------------------------------

def test_cred_helpers_come_before_auths_and_creds_store_after(world):
    world.helper("per-host", {HOST: ("from-per-host", "s1")})
    world.helper("store", {HOST: ("from-store", "s2"), "https://index.docker.io/v1/": ("hub", "s3")})
    world.docker_config({"credHelpers": {HOST: "per-host"}, "credsStore": "store",
                         "auths": {HOST: entry("from-auths", "pw")}})
    assert names(world.lookup()) == ("from-per-host", "s1")
    assert world.calls() == [[["get"], HOST]]
    world.docker_config({"credsStore": "store", "auths": {HOST: entry("from-auths", "pw")}})
    assert names(world.lookup()) == ("from-auths", "pw")
    world.docker_config({"credsStore": "store", "auths": {HOST: {}}})  # docker login's marker beside a store
    assert names(world.lookup()) == ("from-store", "s2")
    assert names(world.lookup(host="docker.io", repository="library/debian")) == ("hub", "s3")
    assert world.calls()[-1] == [["get"], "https://index.docker.io/v1/"]


def test_a_helper_with_nothing_for_the_registry_passes_on_to_the_next_file(world):
    world.helper("empty", {})
    world.config_auth({"credHelpers": {HOST: "empty"}})
    world.docker_config({"auths": {HOST: entry("docker", "pw")}})
    assert names(world.lookup()) == ("docker", "pw")
    assert world.calls() == [[["get"], HOST]]
    world.docker_config({"credsStore": "empty"})
    assert world.lookup() is None


@pytest.mark.parametrize("setup, fragments", [
    (lambda w: None, ["docker-credential-absent", "not installed", "credHelpers in"]),
    (lambda w: w.helper("absent", behaviour="fail"), ["docker-credential-absent", "exit status 3",
                                                      "the keyring is locked"]),
    (lambda w: w.helper("absent", behaviour="garbage"), ["docker-credential-absent", "did not answer JSON"]),
    (lambda w: w.helper("absent", {HOST: ("<token>", "refresh-secret")}), ["docker-credential-absent", "identity token"]),
])
def test_a_helper_that_is_missing_or_fails_is_named(world, setup, fragments):
    setup(world)
    path = world.docker_config({"credHelpers": {HOST: "absent"}})
    with pytest.raises(ImageError) as e:
        world.lookup()
    for fragment in fragments:
        assert fragment in e.value.message
    assert "refresh-secret" not in e.value.message
    assert path in e.value.message or "docker-credential-absent" in e.value.message


def test_a_helper_that_hangs_is_killed_with_what_it_started(world):
    world.helper("slow", behaviour="hang")
    world.docker_config({"credsStore": "slow"})
    with pytest.raises(ImageError) as e:
        world.lookup(timeout=1)
    assert "docker-credential-slow did not answer within 1s" in e.value.message


def test_a_helper_that_answers_and_leaves_a_daemon_holding_stdout_is_heard(world):
    # its answer is used when it exits; the daemon's open stdout is not waited for (it sleeps longer
    # than the timeout, so waiting for its end of file would be "did not answer")
    world.helper("agent", {HOST: ("user", "pw")}, behaviour="escape")
    world.docker_config({"credsStore": "agent"})
    try:
        assert names(world.lookup(timeout=5)) == ("user", "pw")
    finally:
        with open(world.log + ".daemon", encoding="utf-8") as f:
            daemon = int(f.read())
        try:
            os.kill(daemon, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_helper_that_floods_stdout_is_stopped_at_the_bound(world):
    # 8 MiB and still running: reading stops past MAX_ANSWER bytes and the helper is killed, it is not
    # read into memory until the timeout
    world.helper("flood", behaviour="flood")
    world.docker_config({"credsStore": "flood"})
    with pytest.raises(ImageError) as e:
        world.lookup(timeout=20)
    assert "docker-credential-flood answered more than 65536 bytes" in e.value.message


@pytest.mark.parametrize("name", ["../../bin/sh", "/bin/sh", "", "a b", 7])
def test_a_helper_name_that_is_not_a_plain_suffix_is_refused(world, name):
    world.docker_config({"credHelpers": {HOST: name}})
    with pytest.raises(ImageError) as e:
        world.lookup()
    assert "not a plain program suffix" in e.value.message


def test_the_secret_never_shows(world):
    world.helper("store", {HOST: ("user", "top-secret-value")})
    world.docker_config({"credsStore": "store"})
    creds = world.lookup()
    assert "top-secret-value" not in repr(creds)


# -- pulls from the real registries ------------------------------------------------------------

@pytest.fixture(scope="module")
def pushed():
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    work = tempfile.mkdtemp(prefix="strata-credentials-")
    try:
        with registries(directory=os.path.join(work, "registries")) as regs:
            images = imagebuild.sample_images()
            layout = os.path.join(work, "layout")
            imagebuild.write_oci_layout(layout, {"base": images["base"]})
            for registry in (regs.basic, regs.token):
                imagebuild.push(regs, "oci:%s:base" % layout, "base", "gzip", registry=registry)
            yield regs, images["base"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("which", ["basic", "token"])
@pytest.mark.parametrize("how", ["credHelpers", "credsStore"])
def test_pull_with_the_credentials_a_helper_gives(pushed, world, monkeypatch, scratch, which, how):
    regs, image = pushed
    registry = getattr(regs, which)
    world.helper("strata-test", {registry.host: (regs.USER, regs.PASSWORD)})
    if how == "credHelpers":
        world.docker_config({"credHelpers": {registry.host: "strata-test"}})
    else:
        world.docker_config({"credsStore": "strata-test", "auths": {registry.host: {}}})
    for key in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PATH", world.bin + os.pathsep + os.environ.get("PATH", os.defpath))
    monkeypatch.setenv("HOME", world.home)
    monkeypatch.setenv("XDG_RUNTIME_DIR", world.runtime)
    home = os.path.join(scratch, "home")
    result = stage_image(LayerStore(home), registry.ref("base", "gzip"), ca_path=regs.pki.ca_crt)
    assert result.top == image.chain_ids[-1]
    assert world.calls() == [[["get"], registry.host]]


def test_a_pull_whose_helper_has_other_credentials_is_refused(pushed, world, monkeypatch, scratch):
    regs, _image = pushed
    world.helper("strata-test", {regs.basic.host: (regs.USER, "wrong-password")})
    world.docker_config({"credHelpers": {regs.basic.host: "strata-test"}})
    monkeypatch.setenv("PATH", world.bin + os.pathsep + os.environ.get("PATH", os.defpath))
    monkeypatch.setenv("HOME", world.home)
    monkeypatch.setenv("XDG_RUNTIME_DIR", world.runtime)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    with pytest.raises(ImageError) as e:
        stage_image(LayerStore(os.path.join(scratch, "home")), regs.basic.ref("base", "gzip"),
                    ca_path=regs.pki.ca_crt)
    assert "refused the credentials of %s" % regs.USER in e.value.message
    assert "wrong-password" not in e.value.message
