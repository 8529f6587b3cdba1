"""Pulling from a registry that can lie: a real HTTP(S) server on 127.0.0.1, a real store on tmpfs."""

import base64
import json
import os
import time

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import manifests
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from fake_registry import FakeRegistry
from imagetools import Image, sha256
from layertools import layer_names, read_in_layer

PASSWORD = "pa55-w0rd-never-shown"


@pytest.fixture
def registry(pki):
    servers = []

    def start(auth="bearer", tls=True):
        server = FakeRegistry(auth=auth, users={"puller": PASSWORD}, tls=(pki[1], pki[2]) if tls else None).start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def store(home):
    return LayerStore(home)


def pull(store, server, pki, ref="strata/app:v1", auth=None, **kw):
    kw.setdefault("ca_path", pki[0])
    if auth is None:
        auth = {"username": "puller", "password": PASSWORD}
    return stage_image(store, "docker://%s/%s" % (server.netloc, ref), registry_auth=auth, **kw)


def fails(store, server, pki, fragment, **kw):
    with pytest.raises(ImageError) as e:
        pull(store, server, pki, **kw)
    message = e.value.message
    assert fragment in message
    assert message.startswith("image docker://%s/" % server.netloc)
    assert PASSWORD not in message and base64.b64encode(("puller:" + PASSWORD).encode()).decode() not in message
    return message


@pytest.mark.parametrize("auth", ["bearer", "basic", None])
def test_pull_stages_and_pulls_again_with_only_the_manifest(registry, store, home, pki, auth):
    server = registry(auth)
    image = Image(compression=["gzip", "zstd"])
    server.push("strata/app", image)
    result = pull(store, server, pki)
    assert result.changed and result.top == image.ids[1]
    assert result.manifest_digest == image.manifest["digest"]
    assert read_in_layer(home, image.ids[1], "app/run.sh", "rb") == b"#!/bin/sh\nexec /bin/hello\n"
    if auth == "bearer":
        assert server.token_requests == 1  # one token for the probe's challenge, reused for every blob
    del server.requests[:]
    again = pull(store, server, pki)
    assert not again.changed and again.bytes == 0
    paths = [path for path, _headers in server.requests]
    assert not any("/blobs/" in p and image.layer_digest(0).split(":")[1] in p for p in paths)
    assert not any(image.layer_digest(1) in p for p in paths)
    assert sum("/manifests/" in p for p in paths) == 1


def test_pull_by_digest_and_accept_header(registry, store, pki):
    server = registry()
    image = Image()
    server.push("strata/app", image)
    result = pull(store, server, pki, ref="strata/app@" + image.manifest["digest"])
    assert result.top == image.ids[1]
    accept = [h.get("Accept") for p, h in server.requests if "/manifests/" in p][0]
    for media_type in manifests.ACCEPT:
        assert media_type in accept


def test_a_multi_platform_index(registry, store, pki):
    server = registry()
    amd, arm = Image(arch="amd64"), Image(tars=Image().tars[:1], arch="arm64")
    server.push("strata/app", amd, tag="amd")
    server.push("strata/app", arm, tag="arm")
    entries = [dict(arm.manifest, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
               dict(amd.manifest, platform={"os": "linux", "architecture": "amd64"})]
    index = json.dumps({"schemaVersion": 2, "mediaType": manifests.DOCKER_LIST, "manifests": entries}).encode()
    server.put_manifest("strata/app", "multi", index, manifests.DOCKER_LIST)
    result = pull(store, server, pki, ref="strata/app:multi", platform="linux/arm64", check_mode=True)
    assert result.manifest_digest == arm.manifest["digest"]
    assert pull(store, server, pki, ref="strata/app:multi", platform="linux/amd64").top == amd.ids[1]


def test_auth_file_in_docker_config_format(registry, store, pki, scratch):
    server = registry("basic")
    server.push("strata/app", Image())
    path = os.path.join(scratch, "config.json")
    entry = {"auth": base64.b64encode(("puller:" + PASSWORD).encode()).decode()}
    with open(path, "w") as f:
        json.dump({"auths": {"https://%s" % server.netloc: {"auth": "d3Jvbmc6d3Jvbmc="},
                             "%s/strata" % server.netloc: entry}}, f)
    assert pull(store, server, pki, auth={"auth_file": path}).changed


# -- lies ----------------------------------------------------------------------------


def test_wrong_credentials(registry, store, home, pki):
    server = registry("bearer")
    server.push("strata/app", Image())
    fails(store, server, pki, "the token server 127.0.0.1:%d refused the credentials of puller (401)"
          % server.server.server_address[1], auth={"username": "puller", "password": PASSWORD + "x"})
    basic = registry("basic")
    basic.push("strata/app", Image())
    fails(store, basic, pki, "the registry refused the credentials of puller (401)",
          auth={"username": "puller", "password": PASSWORD + "x"})
    fails(store, basic, pki, "requires credentials (Basic) and registry_auth gives none", auth={})
    assert layer_names(home) == []


def test_a_401_after_a_valid_token(registry, store, home, pki):
    server = registry("bearer")
    image = Image()
    server.push("strata/app", image)

    def refuse(handler):
        handler.send(401, b"{}", {"WWW-Authenticate": handler.challenge()})
    server.override["/v2/strata/app/blobs/" + image.layer_digest(1)] = refuse
    message = fails(store, server, pki, "answered 401 to a request carrying the token its token server issued, "
                    "and again to a new token fetched after that refusal (no pull access to strata/app?)")
    assert "just issued" not in message
    assert server.token_requests == 2  # the first token, and one refresh: never a loop
    assert "blob " + image.layer_digest(1) in message
    assert layer_names(home) == [image.ids[0]]  # the layer before stays, complete


def test_a_token_the_registry_stops_accepting_mid_pull_is_fetched_again(registry, store, home, pki):
    """A token revoked (or expired early) between two blobs: the 401 is answered with a new token, once."""
    server = registry("bearer")
    image = Image()
    server.push("strata/app", image)
    path = "/v2/strata/app/blobs/" + image.layer_digest(1)

    def revoke(handler):
        server.tokens.clear()
        del server.override[path]
        handler.do_GET()
    server.override[path] = revoke
    result = pull(store, server, pki)
    assert result.changed and result.top == image.ids[1]
    assert server.token_requests == 2
    assert layer_names(home) == sorted(image.ids)


def test_a_certificate_that_does_not_verify(registry, store, home, pki):
    server = registry()
    server.push("strata/app", Image())
    fails(store, server, pki, "the TLS certificate of 127.0.0.1 does not verify", ca_path=None)
    fails(store, server, pki, "cannot load the CA bundle", ca_path="/nonexistent/ca.pem")
    assert layer_names(home) == []
    # Verification off reaches it anyway.
    assert pull(store, server, pki, ca_path=None, validate_certs=False).changed


def test_plain_http_only_when_verification_is_off(registry, store, pki):
    server = registry(None, tls=False)
    server.push("strata/app", Image())
    fails(store, server, pki, "TLS with 127.0.0.1:%d failed" % server.server.server_address[1])
    assert pull(store, server, pki, validate_certs=False).changed


def test_a_blob_that_lies(registry, store, home, pki):
    server = registry()
    image = Image()
    server.push("strata/app", image)
    blob = bytearray(server.blobs[image.layer_digest(1)])
    blob[-20] ^= 0xFF
    server.blobs[image.layer_digest(1)] = bytes(blob)
    message = fails(store, server, pki, "content has digest")
    assert "blob %s: layer 2 of 2" % image.layer_digest(1) in message
    assert layer_names(home) == [image.ids[0]]


def test_a_stall_mid_blob_times_out(registry, store, home, pki):
    server = registry()
    image = Image()
    server.push("strata/app", image)
    data = server.blobs[image.layer_digest(1)]

    def stall(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data[:len(data) // 2])
        handler.wfile.flush()
        time.sleep(3)
    server.override["/v2/strata/app/blobs/" + image.layer_digest(1)] = stall
    started = time.monotonic()
    fails(store, server, pki, "stalled after", timeout=1)
    assert time.monotonic() - started < 3
    assert layer_names(home) == [image.ids[0]]


def test_a_redirect_loop_and_redirects_to_storage(registry, store, home, pki):
    server = registry()
    storage = registry(None)
    image = Image()
    server.push("strata/app", image)
    server.redirect_blobs_to("strata/app", storage)
    assert pull(store, server, pki).changed
    assert storage.requests and all("Authorization" not in h for _p, h in storage.requests)
    assert any("Authorization" in h for p, h in server.requests if "/blobs/" in p)
    store.ensure_absent(image.ids[1])
    store.ensure_absent(image.ids[0])

    def loop(handler):
        handler.send(302, b"", {"Location": handler.path})
    server.override["/v2/strata/app/blobs/"] = loop
    fails(store, server, pki, "more than 5 redirects")
    assert layer_names(home) == []


@pytest.mark.parametrize("auth", ["bearer", None])
def test_a_401_from_the_storage_a_blob_is_redirected_to_gets_no_credentials(registry, store, home, pki, auth):
    """Blob storage is another host: its 401 is not the registry's challenge, and its realm gets nothing."""
    server = registry(auth)
    storage = registry(None)
    image = Image()
    server.push("strata/app", image)
    got = []

    def realm(handler):
        got.append(handler.headers.get("Authorization"))
        handler.send(200, b'{"token": "from-storage"}', {"Content-Type": "application/json"})

    def challenge(handler):
        handler.send(401, b"{}", {"WWW-Authenticate": 'Bearer realm="%s/realm",service="s"' % storage.base})
    storage.override["/realm"] = realm
    storage.override["/bucket/"] = challenge

    server.redirect_blobs_to("strata/app", storage, "/bucket/%s")
    message = fails(store, server, pki, "where the registry redirected the request, answered 401")
    assert storage.base in message
    assert got == [], "the storage host's realm was asked for a token"
    assert all("Authorization" not in h for _p, h in storage.requests)
    assert layer_names(home) == []


@pytest.mark.parametrize("auth", ["bearer", "basic", None])
def test_a_401_from_the_host_the_probe_is_redirected_to_gets_no_credentials(registry, store, home, pki, auth):
    """The same for the first request, /v2/: the host it is redirected to is not the registry either."""
    server = registry(auth)
    other = registry(None)
    server.push("strata/app", Image())
    got = []

    def realm(handler):
        got.append(handler.headers.get("Authorization"))
        handler.send(200, b'{"token": "from-elsewhere"}', {"Content-Type": "application/json"})

    def challenge(handler):
        handler.send(401, b"{}", {"WWW-Authenticate": 'Bearer realm="%s/realm",service="s"' % other.base})
    other.override["/realm"] = realm
    other.override["/elsewhere/"] = challenge

    def away(handler):
        handler.send(302, b"", {"Location": "%s/elsewhere/" % other.base})
    server.override["/v2/"] = away
    message = fails(store, server, pki, "where the registry redirected")
    assert other.base in message and "answered 401" in message
    assert got == [], "the other host's realm was asked for a token"
    assert all("Authorization" not in h for _p, h in other.requests)
    assert layer_names(home) == []


def test_a_manifest_larger_than_the_limit(registry, store, pki):
    server = registry()
    server.put_manifest("strata/app", "v1", b"{" + b" " * (manifests.MAX_MANIFEST + 1) + b"}", manifests.OCI_MANIFEST)
    fails(store, server, pki, "is %d bytes, more than the" % (manifests.MAX_MANIFEST + 3))

    def no_length(handler):  # chunked-like: no Content-Length, the body never ends early
        handler.send_response(200)
        handler.send_header("Content-Type", manifests.OCI_MANIFEST)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(b"{" + b" " * (manifests.MAX_MANIFEST + 100))
        handler.close_connection = True
    server.override["/v2/strata/app/manifests/"] = no_length
    fails(store, server, pki, "larger than the %d bytes accepted" % manifests.MAX_MANIFEST)


def test_schema1_an_index_pointing_to_itself_and_a_lying_digest_header(registry, store, home, pki):
    server = registry()
    image = Image()
    server.push("strata/app", image)
    schema1 = json.dumps({"schemaVersion": 1, "name": "strata/app", "tag": "old", "fsLayers": []}).encode()
    server.put_manifest("strata/app", "old", schema1, manifests.SCHEMA1[1])
    fails(store, server, pki, "schema 1", ref="strata/app:old")
    entry = dict(image.manifest, platform={"os": "linux", "architecture": "amd64"})
    index = json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": [entry]}).encode()
    server.put_manifest("strata/app", "self", index, manifests.OCI_INDEX)
    server.put_manifest("strata/app", image.manifest["digest"], index, manifests.OCI_INDEX)  # the lie
    fails(store, server, pki, "blob %s" % image.manifest["digest"], ref="strata/app:self")

    def wrong_header(handler):
        data = image.blobs.blobs[image.manifest["digest"]]
        handler.send(200, data, {"Content-Type": manifests.OCI_MANIFEST, "Docker-Content-Digest": sha256(b"x")})
    server.override["/v2/strata/app/manifests/v1"] = wrong_header
    fails(store, server, pki, "Docker-Content-Digest says")
    assert layer_names(home) == []


def test_foreign_layers_from_a_registry(registry, store, home, pki):
    server = registry()
    image = Image()
    doc = json.loads(json.dumps(image.doc))
    doc["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    doc["layers"][0]["urls"] = ["https://example.com/layer"]
    image.rewrite(doc)
    server.push("strata/app", image)
    fails(store, server, pki, "foreign (non-distributable)")
    assert layer_names(home) == []


def test_a_registry_that_never_answers_and_one_that_errs(registry, store, home, pki):
    server = registry()
    image = Image()
    server.push("strata/app", image)

    def silent(handler):
        time.sleep(3)
    server.override["/v2/"] = silent
    started = time.monotonic()
    fails(store, server, pki, "did not answer within 1s", timeout=1)
    assert time.monotonic() - started < 3
    del server.override["/v2/"]

    def broken(handler):
        handler.send(500, b'{"errors":[{"code":"UNKNOWN","message":"storage is on fire"}]}')
    server.override["/v2/strata/app/blobs/" + image.doc["config"]["digest"]] = broken
    fails(store, server, pki, "the registry answered 500 Internal Server Error (UNKNOWN: storage is on fire)")
    del server.override["/v2/strata/app/blobs/" + image.doc["config"]["digest"]]
    del server.blobs[image.layer_digest(0)]
    message = fails(store, server, pki, "blob not found in strata/app (404)")
    assert "blob %s" % image.layer_digest(0) in message and "layer 1 of 2" in message
    assert layer_names(home) == []


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_a_registry_echoing_the_credentials_into_its_error(registry, store, home, pki, auth):
    """The error detail a registry sends is quoted in the message: an Authorization header echoed there
    (Basic: base64 of user:password; Bearer: the token) must not reach the task's output and logs."""
    server = registry(auth)
    image = Image()
    server.push("strata/app", image)
    echoed = []

    def echo(handler):
        header = handler.headers.get("Authorization") or ""
        echoed.append(header)
        body = {"errors": [{"code": "DENIED", "message": "you sent %s, i.e. %s" % (header, header.split(" ")[-1])}]}
        handler.send(403, json.dumps(body).encode())
    server.override["/v2/strata/app/manifests/"] = echo
    message = fails(store, server, pki, "the registry answered 403")
    assert echoed and echoed[0].split(" ")[-1] not in message
    assert "********" in message
    assert layer_names(home) == []


@pytest.mark.parametrize("where", ["error", "token"])
def test_json_nesting_too_deep_from_a_registry(registry, store, home, pki, where):
    """json.loads raises RecursionError on deep nesting: a clear error, never an unexpected one."""
    server = registry("bearer")
    server.push("strata/app", Image())
    deep = b"[" * 2000 + b"]" * 2000
    if where == "error":
        server.override["/v2/strata/app/manifests/"] = lambda handler: handler.send(500, deep)
        fails(store, server, pki, "the registry answered 500")
    else:
        server.override["/token"] = lambda handler: handler.send(200, deep, {"Content-Type": "application/json"})
        fails(store, server, pki, "the token server's answer is not JSON")
    assert layer_names(home) == []


@pytest.mark.parametrize("location", ["file:///etc/shadow", "ftp://127.0.0.1/x", "gopher://127.0.0.1:70/x",
                                      "data:text/plain,x", "http:///nohost", "PLAIN_HTTP"])
def test_redirects_to_other_schemes_and_downgrades_are_refused(registry, store, home, pki, location):
    server = registry("basic")
    plain = registry(None, tls=False)
    image = Image()
    server.push("strata/app", image)
    plain.blobs.update(image.blobs.blobs)
    if location == "PLAIN_HTTP":
        location = plain.base + "/v2/s/blobs/" + image.layer_digest(0)

    def away(handler):
        handler.send(302, b"", {"Location": location})
    server.override["/v2/strata/app/blobs/" + image.layer_digest(0)] = away
    message = fails(store, server, pki, "refusing")
    assert "layer 1 of 2" in message
    assert plain.requests == [], "nothing was sent to the plain-http host, credentials least of all"
    assert layer_names(home) == []
