"""Attacks on the credential lookup (credentials.py, auth.py, credential_helpers.py), compared with
containers/image (pkg/docker/config/config.go) and containers-auth.json(5)."""

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
