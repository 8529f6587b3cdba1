"""Credentials from registry_auth and auth files, and WWW-Authenticate challenges."""

import base64
import json
import os

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.credentials import credentials_for
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.challenge import (
    parse_challenges, pick)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def auth_file(tmp_path):
    def write(document):
        path = os.path.join(str(tmp_path), "auth.json")
        with open(path, "w") as f:
            f.write(document if isinstance(document, str) else json.dumps(document))
        return {"auth_file": path}
    return write


def test_inline_credentials_win_and_never_show(tmp_path):
    creds = credentials_for({"username": "u", "password": "secret", "auth_file": "/nonexistent"}, "h", "r", "img")
    assert (creds.username, creds.password) == ("u", "secret")
    assert "secret" not in repr(creds)
    with pytest.raises(ImageError) as e:
        credentials_for({"username": "u"}, "h", "r", "img")
    assert "both username and password" in e.value.message
    assert credentials_for(None, "h", "r", "img", environ={"HOME": str(tmp_path)}) is None


def test_the_most_specific_entry_wins(auth_file):
    auth = auth_file({"auths": {
        "registry.example.com": {"auth": b64("host:1")},
        "registry.example.com/team": {"auth": b64("team:2")},
        "registry.example.com/team/app": {"auth": b64("app:3")},
        "registry.example.com/te": {"auth": b64("prefix-of-a-name:4")},
        "other.example.com": {"auth": b64("other:5")},
    }})
    assert credentials_for(auth, "registry.example.com", "team/app", "i").username == "app"
    assert credentials_for(auth, "registry.example.com", "team/db", "i").username == "team"
    assert credentials_for(auth, "registry.example.com", "tests/x", "i").username == "host"
    assert credentials_for(auth, "nowhere.example.com", "x", "i") is None


def test_docker_hub_keys(auth_file):
    auth = auth_file({"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw:with:colons")}}})
    creds = credentials_for(auth, "docker.io", "library/debian", "i")
    assert (creds.username, creds.password) == ("hub", "pw:with:colons")


@pytest.mark.parametrize("document, fragment", [
    ("not json", "not valid JSON"),
    ({"auths": []}, "'auths' is not an object"),
    ({"auths": {"h": {"auth": "!!!"}}}, "not base64 of user:password"),
    ({"auths": {"h": {"auth": b64("nocolon")}}}, "not base64 of user:password"),
    ({"auths": {"h": {"identitytoken": "x"}}}, "identity token"),
])
def test_bad_auth_files(auth_file, document, fragment):
    with pytest.raises(ImageError) as e:
        credentials_for(auth_file(document), "h", "r", "img")
    assert fragment in e.value.message
    assert e.value.message.startswith("image img")


def test_an_auth_file_that_is_a_fifo_does_not_hang(tmp_path):
    path = os.path.join(str(tmp_path), "fifo")
    os.mkfifo(path)
    with pytest.raises(ImageError) as e:
        credentials_for({"auth_file": path}, "h", "r", "img")
    assert "not a regular file" in e.value.message


def test_challenges():
    found = parse_challenges('Bearer realm="https://auth.example.com/token",service="registry.example.com",'
                             'scope="repository:a/b:pull"')
    assert found[0].scheme == "bearer"
    assert found[0].params == {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                               "scope": "repository:a/b:pull"}
    both = parse_challenges('Basic realm="r", Bearer realm="https://t/x", service=s')
    assert [c.scheme for c in both] == ["basic", "bearer"]
    assert pick(both).scheme == "bearer"
    assert pick(parse_challenges('Negotiate')) is None
    assert parse_challenges(None) == []
    quoted = parse_challenges(r'Basic realm="a \"quoted\" realm"')
    assert quoted[0].params["realm"] == 'a "quoted" realm'
