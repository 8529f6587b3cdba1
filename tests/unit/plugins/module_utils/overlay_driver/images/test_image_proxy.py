"""Pulls through an HTTP proxy: CONNECT for https, proxy credentials only to the proxy, NO_PROXY.

The registry is the real one (Debian's docker-registry over TLS, Basic and
token auth, tests/registry.py) and the proxy a real forward proxy on
127.0.0.1 (tests/connect_proxy.py) that records every request line it is
sent and can demand credentials. The fake registry plays blob storage a
registry redirects to, and a plain http registry.
"""

import base64
import os
import shutil
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.proxy import ProxySettings
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
from connect_proxy import ConnectProxy
from fake_registry import FakeRegistry
from imagetools import Image
from registry import have_tools, registries

PROXY_USER, PROXY_PASSWORD = "proxy-user", "proxy-pw-never-shown"


# -- which proxy, from options and environment -------------------------------------------------------

def test_the_environment_upper_case_first_and_the_option_over_it():
    env = {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128", "http_proxy": "plain:8080"}
    settings = ProxySettings(environ=env)
    assert settings.for_target("https", "registry.example.com", 443).shown == "http://upper:3128"
    assert settings.for_target("http", "registry.example.com", 80).shown == "http://plain:8080"  # no scheme: http
    assert ProxySettings(environ={"https_proxy": "http://lower:3128"}).for_target("https", "r", 443).port == 3128
    assert ProxySettings(environ={"HTTP_PROXY": "http://p:1"}).for_target("https", "r", 443) is None
    option = ProxySettings(proxy="http://opt:9", environ=env)
    assert option.for_target("https", "r", 443).shown == option.for_target("http", "r", 80).shown == "http://opt:9"
    assert ProxySettings(environ={}).for_target("https", "r", 443) is None


@pytest.mark.parametrize("no_proxy, host, port, direct", [
    ("*", "anything.example", 443, True),
    ("example.com", "example.com", 443, True),
    ("example.com", "registry.example.com", 443, True),
    ("example.com", "badexample.com", 443, False),
    (".example.com", "example.com", 443, False),
    (".example.com", "registry.example.com", 443, True),
    ("*.example.com", "registry.example.com", 443, True),
    ("example.com:5000", "example.com", 5000, True),
    ("example.com:5000", "example.com", 443, False),
    ("10.0.0.0/8", "10.1.2.3", 443, True),
    ("10.0.0.0/8", "11.1.2.3", 443, False),
    ("127.0.0.1", "127.0.0.1", 5000, True),
    ("127.0.0.1:5000", "127.0.0.1", 5001, False),
    ("::1", "::1", 443, True),
    ("[::1]:443", "::1", 443, True),
    ("", "127.0.0.1", 5000, False),  # loopback is not exempt unless listed
    ("a.com, b.com ,c.com", "b.com", 443, True),
])
def test_no_proxy_entries(no_proxy, host, port, direct):
    env = {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": no_proxy}
    assert (ProxySettings(environ=env).for_target("https", host, port) is None) == direct
    # the option, a list, replaces the environment's
    option = ProxySettings(no_proxy=no_proxy.split(","), environ={"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "*"})
    assert (option.for_target("https", host, port) is None) == direct


@pytest.mark.parametrize("url, fragment", [
    ("https://u:secret@proxy:3128", "is https://; only http:// proxies are supported"),
    ("socks5://u:secret@proxy:1080", "is socks5://; only http:// proxies are supported"),
    ("http://u:secret@proxy:3128/some/path", "has a path"),
    ("http://u:secret@proxy:99999", "is not a URL"),
    ("http://u:secret@:3128", "names no host"),
])
def test_a_proxy_that_cannot_be_used_is_refused_without_its_password(url, fragment):
    with pytest.raises(ImageError) as e:
        Network(proxy=url, environ={}, image="docker://r.example/app")
    assert fragment in e.value.message and "(from the proxy option)" in e.value.message
    assert "secret" not in e.value.message and e.value.message.startswith("image docker://r.example/app: ")
    with pytest.raises(ImageError) as e:
        Network(environ={"HTTPS_PROXY": url})
    assert "(from HTTPS_PROXY)" in e.value.message and "secret" not in e.value.message


def test_the_module_refuses_a_bad_proxy_before_the_home_is_made(scratch):
    home = os.path.join(scratch, "home")
    with pytest.raises(ImageError):
        ImageManager({"home": home, "src": "docker://r.example/app:v1", "proxy": "ftp://proxy:21"})
    assert not os.path.exists(home)


# -- through a real proxy to the real registry -------------------------------------------------------

@pytest.fixture(scope="module")
def regs():
    if have_tools() is not None:
        pytest.skip(have_tools())
    work = tempfile.mkdtemp(prefix="strata-proxy-")
    try:
        with registries(directory=os.path.join(work, "registries")) as started:
            layout = os.path.join(work, "layout")
            imagebuild.write_oci_layout(layout, {"base": imagebuild.sample_images()["base"]})
            for registry in (started.basic, started.token):
                imagebuild.push(started, "oci:%s:base" % layout, "base", "gzip", registry=registry)
            started.base = imagebuild.sample_images()["base"]
            yield started
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def proxy():
    server = ConnectProxy(auth=(PROXY_USER, PROXY_PASSWORD)).start()
    try:
        yield server
    finally:
        server.stop()


def stage(regs, home, registry, environ, **network):
    return stage_image(LayerStore(home), registry.ref("base", "gzip"), registry_auth=regs.auth,
                       ca_path=regs.pki.ca_crt, network=Network(environ=environ, **network))


@pytest.mark.parametrize("which", ["basic", "token"])
def test_a_pull_through_a_connect_proxy(regs, proxy, home, which):
    """Every connection (the registry, its token server) is a CONNECT tunnel through the proxy, which gets its
    own credentials and never the registry's: those travel inside TLS."""
    registry = getattr(regs, which)
    mark = registry.log_mark()
    env = {"HTTPS_PROXY": proxy.url_with(PROXY_USER, PROXY_PASSWORD), "NO_PROXY": "example.com"}
    result = stage(regs, home, registry, env)
    assert result.changed and result.top == regs.base.chain_ids[-1]
    assert registry.blob_gets(mark), "the registry served the blobs"
    connects = {line.rsplit(" ", 1)[0] for line in proxy.lines}  # CONNECT ... HTTP/1.0, as http.client asks
    expected = {"CONNECT %s" % registry.host}
    if which == "token":
        expected.add("CONNECT 127.0.0.1:%d" % regs.tokens.port)
    assert connects == expected
    seen = "".join(proxy.headers)
    basic = base64.b64encode(regs.creds.encode()).decode()
    assert regs.PASSWORD not in seen and basic not in seen
    assert not [line for h in proxy.headers for line in h.split("\r\n") if line.lower().startswith("authorization:")]
    assert all(h.count("Proxy-Authorization: Basic ") == 1 for h in proxy.headers)


def test_the_option_names_the_proxy_and_no_proxy_bypasses_it(regs, proxy, home):
    result = stage(regs, home, regs.basic, {"HTTPS_PROXY": "http://127.0.0.1:9"},  # a port nobody listens on
                   proxy=proxy.url_with(PROXY_USER, PROXY_PASSWORD))
    assert result.changed and proxy.lines
    before = len(proxy.lines)
    other = os.path.join(os.path.dirname(home), "home2")
    result = stage(regs, other, regs.basic, {"HTTPS_PROXY": proxy.url_with(PROXY_USER, PROXY_PASSWORD),
                                             "NO_PROXY": "localhost,127.0.0.0/8"})
    assert result.changed and len(proxy.lines) == before  # reached directly
    shutil.rmtree(other)


def test_a_proxy_that_wants_credentials(regs, proxy, home):
    with pytest.raises(ImageError) as e:
        stage(regs, home, regs.basic, {"HTTPS_PROXY": proxy.url})
    assert "through the proxy %s" % proxy.url in e.value.message
    assert "407 Proxy Authentication Required (the proxy wants credentials: give them in its URL)" in e.value.message
    with pytest.raises(ImageError) as e:
        stage(regs, home, regs.basic, {"HTTPS_PROXY": proxy.url_with(PROXY_USER, "wrong-" + PROXY_PASSWORD)})
    assert "407" in e.value.message and PROXY_PASSWORD not in e.value.message
    assert proxy.refused == 2
    assert not [n for n in os.listdir(home) if not n.startswith(".")]


# -- redirects and plain http through the proxy (the fake registry) ---------------------------------

@pytest.fixture
def fakes(pki):
    servers = []

    def start(**kw):
        server = FakeRegistry(**kw).start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


def test_a_redirect_to_blob_storage_through_the_proxy_carries_no_credentials(fakes, pki, proxy, home):
    server = fakes(auth="basic", users={"puller": "pw"}, tls=(pki[1], pki[2]))
    storage = fakes(tls=(pki[1], pki[2]))
    image = Image()
    server.push("strata/app", image)
    # one host for the registry, another for the storage: only the registry's name goes through the proxy
    server.redirect_blobs_to("strata/app", storage)
    result = stage_image(LayerStore(home), "docker://%s/strata/app:v1" % server.netloc,
                         registry_auth={"username": "puller", "password": "pw"}, ca_path=pki[0],
                         network=Network(proxy=proxy.url_with(PROXY_USER, PROXY_PASSWORD), environ={}))
    assert result.changed
    assert {line.rsplit(" ", 1)[0] for line in proxy.lines} == {"CONNECT %s" % server.netloc,
                                                                "CONNECT %s" % storage.netloc}
    assert storage.requests and all("Authorization" not in h for _p, h in storage.requests)
    assert all(("Proxy-Authorization" not in h) for _p, h in server.requests + storage.requests)


def test_a_plain_http_registry_through_the_proxy(fakes, proxy, home):
    server = fakes()
    image = Image()
    server.push("strata/app", image)
    network = Network(proxy=proxy.url_with(PROXY_USER, PROXY_PASSWORD), environ={})
    result = stage_image(LayerStore(home), "docker://%s/strata/app:v1" % server.netloc, validate_certs=False,
                         network=network)
    assert result.changed
    assert "GET http://%s/v2/strata/app/manifests/v1 HTTP/1.1" % server.netloc in proxy.lines
    assert all("Proxy-Authorization" not in h for _p, h in server.requests)  # the proxy's, kept by the proxy
    # credentials for a plain http registry would be read by the proxy: refused
    basic = fakes(auth="basic", users={"puller": "pw"})
    basic.push("strata/app", image)
    with pytest.raises(ImageError) as e:
        stage_image(LayerStore(home), "docker://%s/strata/app:v1" % basic.netloc, validate_certs=False,
                    registry_auth={"username": "puller", "password": "pw"}, network=network)
    assert "refusing to send registry credentials to the plain http registry" in e.value.message
    secret = base64.b64encode(b"puller:pw").decode()
    assert not any(secret in h for h in proxy.headers)
    assert not any(secret in h.get("Authorization", "") for _p, h in basic.requests)
