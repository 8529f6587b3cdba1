"""Hostile and unusual auth files and helpers given to the credential lookup (credentials.py, auth.py,
credential_helpers.py), held to containers/image (pkg/docker/config/config.go) and containers-auth.json(5)."""

import base64
import json
import os
import sys

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.credentials import credentials_for
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError

HOST = "registry.example.com"

HELPER = '''#!%(python)s
import json, sys
server = sys.stdin.read()
answers = %(answers)r
if server not in answers:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = answers[server]
print(json.dumps({"ServerURL": server, "Username": user, "Secret": secret}))
sys.exit(%(status)d)
'''


class World:
    def __init__(self, root):
        self.root = root
        self.home = os.path.join(root, "home")
        self.runtime = os.path.join(root, "run")
        self.bin = os.path.join(root, "bin")
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

    def docker_config(self, document):
        return self.write_json(os.path.join(self.home, ".docker", "config.json"), document)

    def helper(self, name, answers, status=0):
        path = os.path.join(self.bin, "docker-credential-" + name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(HELPER % {"python": sys.executable, "answers": dict(answers), "status": status})
        os.chmod(path, 0o755)

    def lookup(self, host=HOST, repository="team/app"):
        return credentials_for(None, host, repository, "img", environ=self.environ)


@pytest.fixture
def world(tmp_path):
    return World(str(tmp_path))


def b64(text):
    return base64.b64encode(text.encode()).decode()


def names(creds):
    return None if creds is None else (creds.username, creds.password)


def test_a_helper_failing_after_its_answer_does_not_put_the_secret_in_the_message(world):
    # credential_helpers.py: "its Secret never appears in a message". A helper that writes its answer and
    # then exits non-zero (a wrapper script whose clean-up fails) has its stdout quoted in the error.
    world.helper("wrapped", {HOST: ("user", "hunter2-top-secret")}, status=2)
    world.docker_config({"credsStore": "wrapped"})
    with pytest.raises(ImageError) as e:
        world.lookup()
    assert "hunter2-top-secret" not in e.value.message, e.value.message


# -- which entry and which helper server a lookup uses, as containers/image (pkg/docker/config/config.go) --

def test_podman_login_docker_io_through_a_cred_helper_is_found(world):
    # `podman login docker.io` with credHelpers {"docker.io": NAME} stores the credentials in the helper under
    # "docker.io", and skopeo asks the helper for "docker.io" (reference.Domain of the image): so does the lookup
    world.helper("pass", {"docker.io": ("hubuser", "hubsecret")})
    world.runtime_auth({"credHelpers": {"docker.io": "pass"}})
    assert names(world.lookup(host="docker.io", repository="library/private")) == ("hubuser", "hubsecret")


def test_docker_login_through_the_same_cred_helper_is_still_found_after_podmans(world):
    # `docker login` stores Docker Hub's credentials in the helper under "https://index.docker.io/v1/": the
    # helper is asked for that when it has nothing for "docker.io", and "docker.io" wins when it has both
    world.helper("pass", {"https://index.docker.io/v1/": ("dockeruser", "dockersecret")})
    world.runtime_auth({"credHelpers": {"docker.io": "pass"}})
    assert names(world.lookup(host="docker.io", repository="library/private")) == ("dockeruser", "dockersecret")
    world.helper("pass", {"https://index.docker.io/v1/": ("dockeruser", "dockersecret"),
                          "docker.io": ("hubuser", "hubsecret")})
    assert names(world.lookup(host="docker.io", repository="library/private")) == ("hubuser", "hubsecret")
    world.helper("pass", {})
    assert world.lookup(host="docker.io", repository="library/private") is None


def test_an_url_key_is_matched_by_its_host_as_containers_image_does(world):
    # an http:// or https:// key is cut to its host whatever its path (`docker login` wrote URLs such as
    # https://host/some/path/ for years): its credentials are the whole registry's
    world.docker_config({"auths": {"https://%s/artifactory/api/docker/" % HOST: {"auth": b64("ci:pw")}}})
    assert names(world.lookup(repository="team/app")) == ("ci", "pw")
    assert names(world.lookup(repository="artifactory/x")) == ("ci", "pw")


def test_a_literal_host_key_wins_over_an_url_key_for_the_same_host(world):
    # containers/image tries the keys as written before the URLs it cuts to a host
    world.docker_config({"auths": {"http://%s" % HOST: {"auth": b64("plain-url:pw1")},
                                   "https://%s/some/path/" % HOST: {"auth": b64("url:pw2")},
                                   HOST: {"auth": b64("host:pw3")}}})
    assert names(world.lookup()) == ("host", "pw3")


def test_a_namespace_called_v1_or_v2_stays_repository_scoped(world):
    # `podman login registry.example.com/v2` stores a key for the namespace "v2" (a valid repository
    # component): it is used for repositories under registry.example.com/v2 only, not for the whole registry
    world.runtime_auth({"auths": {HOST + "/v2": {"auth": b64("v2-robot:pw")},
                                  HOST + "/v1/": {"auth": b64("v1-robot:pw")}}})
    assert world.lookup(repository="team/app") is None
    assert names(world.lookup(repository="v2/app")) == ("v2-robot", "pw")
    assert names(world.lookup(repository="v1/app")) == ("v1-robot", "pw")


@pytest.mark.parametrize("stale", [{"auth": b64("stale:")}, {"auth": b64(":pw")},
                                   {"username": "stale", "password": ""}])
def test_an_entry_with_an_empty_username_or_password_does_not_shadow_the_next_file(world, stale):
    # an entry counts only with both a username and a password; without them the next file is read, and an
    # empty password is never sent
    world.runtime_auth({"auths": {HOST: stale}})
    world.docker_config({"auths": {HOST: {"auth": b64("real:pw")}}})
    assert names(world.lookup()) == ("real", "pw")
    world.docker_config({"auths": {}})
    assert world.lookup() is None


def test_an_identity_token_entry_is_refused_not_sent_as_basic(world):
    # Docker writes an identity-token login (ACR, ECR...) as an `auth` of "USER:" beside the `identitytoken`:
    # identity tokens are not supported, so the entry is the documented error (worded as a helper's token is),
    # never Basic credentials with an empty password, and the token never shows
    world.runtime_auth({"auths": {HOST: {"auth": b64("00000000-0000-0000-0000-000000000000:"),
                                         "identitytoken": "refresh-token-value"}}})
    world.docker_config({"auths": {HOST: {"auth": b64("real:pw")}}})
    with pytest.raises(ImageError) as e:
        world.lookup()
    assert "holds an identity token (OAuth refresh), which is not supported" in e.value.message
    assert "refresh-token-value" not in e.value.message
