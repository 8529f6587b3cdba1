"""registries.d and the lookaside: which entry says where an image's simple signatures are, and reading them
(file:// and http://) up to the first one missing, bounded."""

import base64
import http.server
import os
import shutil
import tempfile
import threading

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import lookaside
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.lookaside_http import (
    LookasideTransport)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.proxy import ProxySettings
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference

from connect_proxy import ConnectProxy
from lookaside_server import LookasideServer
from lookaside_server import write_signatures as write_lookaside
from registry import Pki

DIGEST = "sha256:" + "c" * 64


@pytest.fixture
def root():
    directory = tempfile.mkdtemp(prefix="strata-lookaside-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def registries_d(root, files):
    directory = os.path.join(root, "registries.d")
    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(text)
    return directory


def where(root, files, src):
    config = lookaside.load_registries_d(registries_d(root, files))
    entry = lookaside.lookaside_for(config, parse_reference(src))
    return entry and entry[0]


def test_the_most_specific_entry_with_a_lookaside_decides(root):
    files = {"a.yaml": "default-docker:\n  lookaside: https://default.example/sigs\n"
                       "docker:\n  reg.example.com:\n    lookaside: https://reg/sigs\n"
                       "  reg.example.com/team:\n    use-sigstore-attachments: true\n",
             "b.yaml": "docker:\n  reg.example.com/team/app:\n    sigstore: file:///srv/sigs\n",
             "ignored.yml": "not: [read]\n"}
    assert where(root, files, "docker://reg.example.com/team/app:1") == "file:///srv/sigs"
    # an entry without a lookaside (team) does not stop the search
    assert where(root, files, "docker://reg.example.com/team/other:1") == "https://reg/sigs"
    assert where(root, files, "docker://elsewhere.example/x") == "https://default.example/sigs"
    # none at all: containers/image's built-in one, where skopeo --sign-by writes without a registries.d
    assert lookaside.lookaside_for(lookaside.load_registries_d(os.path.join(root, "missing")),
                                   parse_reference("docker://reg.example.com/x"))[0] == \
        "file:///var/lib/containers/sigstore"


@pytest.mark.parametrize("files, fragment", [
    ({"a.yaml": "docker:\n  reg:\n    lookaside: ftp://x\n"}, "is not a file://, http:// or https:// URL"),
    ({"a.yaml": "docker:\n  reg:\n    lookaside: file://relative\n"}, "is not a file://, http:// or https:// URL"),
    ({"a.yaml": "docker:\n  reg:\n    lookasid: file:///x\n"}, "unknown key 'lookasid'"),
    ({"a.yaml": "dockers:\n  reg:\n"}, "unknown key 'dockers'"),
    ({"a.yaml": "docker:\n  reg:\n    lookaside: file:///x\n", "b.yaml": "docker:\n  reg:\n    lookaside: file:///y\n"},
     "the scope reg is also given at"),
    ({"a.yaml": "default-docker:\n  lookaside: file:///x\n", "b.yaml": "default-docker:\n  lookaside: file:///y\n"},
     "default-docker is also given at"),
    ({"a.yaml": "docker:\n  reg:\n    use-sigstore-attachments: yes\n"}, "must be true or false"),
    ({"a.yaml": "docker:\n  - reg\n"}, "only the part of YAML registries.d needs is read"),
])
def test_a_bad_registries_d_is_refused(root, files, fragment):
    with pytest.raises(ImageError) as e:
        lookaside.load_registries_d(registries_d(root, files))
    assert fragment in e.value.message


def test_an_untrusted_registries_d_is_refused(root):
    directory = registries_d(root, {"a.yaml": "default-docker:\n  lookaside: file:///x\n"})
    os.chmod(directory, 0o777)
    with pytest.raises(ImageError) as e:
        lookaside.load_registries_d(directory)
    assert "owned or writable by another user" in e.value.message
    os.chmod(directory, 0o755)
    os.chmod(os.path.join(directory, "a.yaml"), 0o666)
    with pytest.raises(ImageError) as e:
        lookaside.load_registries_d(directory)
    assert "owned or writable by another user" in e.value.message


def write_signatures(base, count):
    directory = os.path.join(base, "team", "app@" + DIGEST.replace(":", "="))
    os.makedirs(directory)
    for i in range(1, count + 1):
        with open(os.path.join(directory, "signature-%d" % i), "wb") as f:
            f.write(b"signature %d" % i)
    return directory


def test_file_signatures_are_read_up_to_the_first_missing(root):
    base = os.path.join(root, "sigs")
    directory = write_signatures(base, 2)
    with open(os.path.join(directory, "signature-4"), "wb") as f:
        f.write(b"after a gap: not read")
    reference = parse_reference("docker://reg.example.com/team/app:1")
    assert lookaside.fetch_signatures("file://" + base, reference, DIGEST) == [b"signature 1", b"signature 2"]
    with open(os.path.join(directory, "signature-3"), "wb") as f:
        f.truncate(lookaside.MAX_SIGNATURE + 1)
    with pytest.raises(ImageError) as e:
        lookaside.fetch_signatures("file://" + base, reference, DIGEST)
    assert "is larger than" in e.value.message
    os.unlink(os.path.join(directory, "signature-3"))
    os.mkfifo(os.path.join(directory, "signature-3"))
    with pytest.raises(ImageError) as e:
        lookaside.fetch_signatures("file://" + base, reference, DIGEST)  # never blocks
    assert "is not a regular file" in e.value.message
    os.unlink(os.path.join(directory, "signature-3"))
    os.mkdir(os.path.join(directory, "signature-3"))
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ImageError) as e:
        lookaside.fetch_signatures("file://" + base, reference, DIGEST)
    assert "signature-3 is not a regular file" in e.value.message
    assert len(os.listdir("/proc/self/fd")) == fds  # no descriptor left open


def test_http_signatures_are_read_up_to_the_first_404(root):
    base = os.path.join(root, "sigs")
    write_signatures(base, 3)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kw):
            super().__init__(*args, directory=base, **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        reference = parse_reference("docker://reg.example.com/team/app:1")
        url = "http://127.0.0.1:%d/" % server.server_address[1]
        assert lookaside.fetch_signatures(url, reference, DIGEST) == [b"signature 1", b"signature 2", b"signature 3"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_trickling_lookaside_is_stopped_by_the_deadline(monkeypatch):
    """Each byte arrives well within the per-read timeout; only a deadline over the whole read stops it."""
    stop = threading.Event()

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 pylint: disable=invalid-name
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            for _i in range(100):  # then the connection is cut: never a whole signature
                if stop.wait(0.05):
                    return
                self.wfile.write(b"x")
                self.wfile.flush()

        def log_message(self, *args):
            pass

    monkeypatch.setattr(lookaside, "DEADLINE", 1, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        reference = parse_reference("docker://reg.example.com/team/app:1")
        url = "http://127.0.0.1:%d/" % server.server_address[1]
        with pytest.raises(ImageError) as e:
            lookaside.fetch_signatures(url, reference, DIGEST)
        assert "the signatures did not arrive within the deadline" in e.value.message
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


# -- an http(s) lookaside reached as the registry is: certs.d and ca_path for its host, the proxy ------------

REFERENCE = "docker://reg.example.com/team/app:1"
SIGNATURES = [b"signature 1", b"signature 2"]


def _serve(root, tls):
    base = os.path.join(root, "sigs")
    write_lookaside(base, "team/app", DIGEST, SIGNATURES)
    return LookasideServer(base, tls=tls).start()


@pytest.fixture
def served(root):
    """A plain http lookaside holding two signatures of DIGEST for team/app."""
    server = _serve(root, None)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def served_tls(root, pki):
    """The same over https, with a certificate of the pki's private CA."""
    server = _serve(root, (pki[1], pki[2]))
    try:
        yield server
    finally:
        server.stop()


def read(server, **transport):
    return lookaside.fetch_signatures(server.url + "/", parse_reference(REFERENCE), DIGEST,
                                      transport=LookasideTransport(**transport))


def certs_dir(root, netloc, ca):
    directory = os.path.join(root, "certs.d")
    os.makedirs(os.path.join(directory, netloc))
    shutil.copyfile(ca, os.path.join(directory, netloc, "ca.crt"))
    return directory


def test_an_https_lookaside_of_a_private_ca_is_refused_naming_it_unless_ca_path_gives_the_ca(served_tls, pki, root):
    empty = os.path.join(root, "no-certs.d")
    os.mkdir(empty)
    with pytest.raises(ImageError) as e:
        read(served_tls, certs_dirs=(empty,))
    assert "the TLS certificate of the lookaside %s does not verify" % served_tls.netloc in e.value.message
    assert "unable to get local issuer certificate" in e.value.message
    assert "set ca_path to the CA that signed it, or put it in certs.d as %s/ca.crt" % served_tls.netloc in e.value.message
    assert read(served_tls, ca_path=pki[0], certs_dirs=(empty,)) == SIGNATURES


def test_an_https_lookaside_is_verified_with_its_own_hosts_certs_d(served_tls, pki, root):
    assert read(served_tls, certs_dirs=(certs_dir(root, served_tls.netloc, pki[0]),)) == SIGNATURES
    # the CA of another host's directory (the registry's, say) is not trusted for the lookaside
    other = os.path.join(root, "other")
    os.mkdir(other)
    with pytest.raises(ImageError) as e:
        read(served_tls, certs_dirs=(certs_dir(other, "reg.example.com", pki[0]),))
    assert "does not verify" in e.value.message


def test_an_https_lookaside_goes_through_the_proxy_unless_no_proxy_names_it(served_tls, pki):
    proxy = ConnectProxy().start()
    try:
        connect = "CONNECT %s" % served_tls.netloc

        def asked():  # the request lines without the HTTP version http.client's CONNECT sends
            return [line.rsplit(" ", 1)[0] for line in proxy.lines]

        assert read(served_tls, ca_path=pki[0], proxies=ProxySettings(proxy=proxy.url)) == SIGNATURES
        assert asked() == [connect] * 3  # signature-1, -2, and the 404 of -3
        assert len(served_tls.requests) == 3
        # the environment's HTTPS_PROXY, as the task's environment gives it
        assert read(served_tls, ca_path=pki[0], proxies=ProxySettings(environ={"HTTPS_PROXY": proxy.url})) == SIGNATURES
        assert asked() == [connect] * 6
        for no_proxy in ("127.0.0.1", served_tls.netloc, "127.0.0.0/8"):
            assert read(served_tls, ca_path=pki[0], proxies=ProxySettings(proxy=proxy.url, no_proxy=no_proxy)) == \
                SIGNATURES
        assert asked() == [connect] * 6 and len(served_tls.requests) == 15
    finally:
        proxy.stop()


def test_a_plain_http_lookaside_goes_through_the_proxy_by_absolute_url_with_the_proxys_credentials(served):
    proxy = ConnectProxy(auth=("squid", "s3cret")).start()
    try:
        with pytest.raises(ImageError) as e:
            read(served, proxies=ProxySettings(proxy=proxy.url))
        assert "the proxy %s refused the request: 407" % proxy.url in e.value.message
        assert "give them in its URL" in e.value.message and served.requests == []
        assert read(served, proxies=ProxySettings(proxy=proxy.url_with("squid", "s3cret"))) == SIGNATURES
        assert proxy.lines[-1] == "GET %s/team/app@%s/signature-3 HTTP/1.1" % (served.url, DIGEST.replace(":", "="))
        # the proxy's credentials went to the proxy alone
        assert all("Proxy-Authorization" not in headers and "Authorization" not in headers
                   for _path, headers in served.requests)
    finally:
        proxy.stop()


def test_a_lookaside_that_dawdles_over_its_headers_is_stopped_by_the_deadline(root, monkeypatch):
    """Each byte of the status line and of header line after header line arrives well within the per-read
    timeout; only the deadline over all the signatures, applied to the headers as to the body, stops it
    (http.client alone gives up only after 100 header lines, however long they take)."""
    base = os.path.join(root, "sigs")
    write_lookaside(base, "team/app", DIGEST, SIGNATURES)
    monkeypatch.setattr(lookaside, "DEADLINE", 1)
    server = LookasideServer(base, header_delay=0.01).start()
    try:
        with pytest.raises(ImageError) as e:
            read(server)
        assert "the signatures did not arrive within the deadline" in e.value.message
        assert "signature-1 was still being read" in e.value.message
    finally:
        server.stop()


def test_a_redirect_is_followed_to_another_host_but_never_from_https_to_http_nor_forever(served, pki):
    front = LookasideServer(served.directory, redirect_to=served.url).start()
    tls_front = LookasideServer(served.directory, tls=(pki[1], pki[2]), redirect_to=served.url).start()
    loop = LookasideServer(served.directory).start()
    loop.redirect_to = loop.url
    try:
        assert read(front) == SIGNATURES
        assert len(front.requests) == 3 and len(served.requests) == 3
        with pytest.raises(ImageError) as e:
            read(tls_front, ca_path=pki[0])
        assert "redirected the signature from https to plain http (%s/team/app@" % served.url in e.value.message
        assert len(served.requests) == 3  # not followed
        with pytest.raises(ImageError) as e:
            read(loop)
        assert "more than 5 redirects for the signature" in e.value.message
    finally:
        for server in (front, tls_front, loop):
            server.stop()


def test_a_lookaside_that_requires_a_client_certificate_gets_the_one_of_its_certs_d_directory(served, root):
    pki = Pki(os.path.join(root, "pki"))
    key, crt, client_ca = pki.client_cert()
    mutual = LookasideServer(served.directory, tls=(pki.server_crt, pki.server_key), client_ca=client_ca).start()
    try:
        certs_d = certs_dir(root, mutual.netloc, pki.ca_crt)
        with pytest.raises(ImageError) as e:
            read(mutual, certs_dirs=(certs_d,))
        assert "TLS with the lookaside %s failed" % mutual.netloc in e.value.message  # the server hung up
        shutil.copyfile(crt, os.path.join(certs_d, mutual.netloc, "client.cert"))
        shutil.copyfile(key, os.path.join(certs_d, mutual.netloc, "client.key"))
        assert read(mutual, certs_dirs=(certs_d,)) == SIGNATURES
    finally:
        mutual.stop()


def test_validate_certs_false_reads_a_lookaside_whose_certificate_does_not_verify(served_tls, root):
    empty = os.path.join(root, "no-certs.d")
    os.mkdir(empty)
    assert read(served_tls, validate_certs=False, certs_dirs=(empty,)) == SIGNATURES


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999/x", "http://[::1/x", "http://127.0.0.1:-1/x"],
                         ids=["port-out-of-range", "broken-ipv6", "negative-port"])
def test_a_redirect_to_what_is_no_url_is_refused_naming_it(served, location):
    """A Location urllib cannot take is the lookaside's error, said as such, not an unexpected ValueError."""
    front = LookasideServer(served.directory, redirect_to=location).start()
    try:
        with pytest.raises(ImageError) as e:
            read(front)
        assert "not a valid URL" in e.value.message or "which is not a URL" in e.value.message
    finally:
        front.stop()


def test_credentials_in_the_lookaside_url_are_sent_to_it_and_never_shown(served):
    """user:password@ in a registries.d lookaside URL: sent as Basic auth to that host, as containers/image's
    HTTP client does, and left out of every message."""
    url = "http://alice:s3cret-pw@%s/" % served.netloc
    assert lookaside.fetch_signatures(url, parse_reference(REFERENCE), DIGEST) == SIGNATURES
    assert served.requests[0][1].get("Authorization") == "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()
    with pytest.raises(ImageError) as e:
        lookaside.fetch_signatures("http://alice:s3cret-pw@127.0.0.1:1/", parse_reference(REFERENCE), DIGEST)
    assert "s3cret-pw" not in e.value.message and "127.0.0.1:1" in e.value.message
