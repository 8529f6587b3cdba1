"""Attacks on the proxy handling (proxy.py, registry._send_once): each test states what should happen.

Reference behaviour: golang.org/x/net/http/httpproxy (what skopeo and Docker use) and the product's own docs
(docs/images.md "Proxies": "errors never show them"; "Deadlines": every read, "status lines, headers and error
bodies included", ends by blob_deadline / image_deadline).
"""

import socket
import threading
import time

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image

from imagetools import Image


SECRET = "Sup3rS3cretPw"


# -- a proxy password is shown in the error when the URL does not parse ---------------------------------

@pytest.mark.parametrize("sep", ["/", "#", "?"])
@pytest.mark.parametrize("where", ["option", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY"])
def test_attack_proxy_password_with_unencoded_delimiter_is_not_shown(sep, where):
    """A generated proxy password often holds '/' (base64) and operators rarely percent-encode it. The URL then
    does not parse and urlsplit's ValueError ("Port could not be cast to integer value as '<password>'") is put
    in the message verbatim: the password reaches the task's output. docs/images.md: errors never show them."""
    url = "http://proxy-user:%s%sxyz@proxy.example.com:3128" % (SECRET, sep)
    with pytest.raises(ImageError) as e:
        if where == "option":
            Network(proxy=url, environ={})
        else:
            Network(environ={where: url})
    assert SECRET not in e.value.message, e.value.message


# -- Go's NO_PROXY semantics: loopback -------------------------------------------------------------------


# -- a proxy that never finishes its CONNECT answer ----------------------------------------------------

class _DrippingProxy:
    """Accepts, reads the CONNECT, answers `HTTP/1.1 200 OK` and then one more header line every `delay`
    seconds, forever (or says nothing at all when silent)."""

    def __init__(self, delay=0.2, silent=False):
        self.delay, self.silent = delay, silent
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.stopped = threading.Event()
        self.clients = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.sock.getsockname()[1]

    def _serve(self):
        while not self.stopped.is_set():
            try:
                client, _addr = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client):
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(4096)
                if not data:
                    return
                head += data
            if self.silent:
                self.stopped.wait()
                return
            client.sendall(b"HTTP/1.1 200 Connection established\r\n")
            i = 0
            while not self.stopped.is_set():
                client.sendall(b"X-Drip-%d: x\r\n" % i)
                i += 1
                time.sleep(self.delay)
        except OSError:
            return

    def stop(self):
        self.stopped.set()
        self.sock.close()
        for client in self.clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
                client.close()
            except OSError:
                pass


def _pull_in_thread(server, pki, network, **kw):
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            stage_image(None, "docker://%s/strata/app:v1" % server.netloc, ca_path=pki[0], check_mode=True,
                        network=network, **kw)
            outcome["result"] = "succeeded"
        except BaseException as e:  # pylint: disable=broad-except
            outcome["error"] = e
        outcome["elapsed"] = time.monotonic() - started
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_proxy_dripping_connect_headers_is_bounded_by_the_deadlines(server, pki, waits):
    """The proxy answers CONNECT with 200 and then a header line every 0.2 s, never the blank line. Each
    read is within the 1 s timeout, and http.client reads the tunnel's header lines with no count limit: the
    deadlines must end it (the task fails with the deadline's error), or it hangs as long as the proxy likes."""
    image = Image()
    server.push("strata/app", image)
    proxy = _DrippingProxy(delay=0.2)
    try:
        thread, outcome = _pull_in_thread(server, pki, Network(proxy=proxy.url, environ={}), timeout=1,
                                          blob_deadline=2, image_deadline=3)
        thread.join(15)
        hung = thread.is_alive()
    finally:
        proxy.stop()
        thread.join(10)
    assert not hung, "still pulling 15 s after a 3 s image_deadline (the proxy kept dripping CONNECT headers)"
    assert isinstance(outcome.get("error"), ImageError) and "deadline" in outcome["error"].message


def test_a_silent_proxy_is_bounded_by_blob_deadline_not_only_by_timeout(server, pki, waits):
    """A proxy that accepts the connection and never answers CONNECT: the pull ends when blob_deadline and
    image_deadline (1 s, 2 s) pass, not after the whole per-read `timeout` (6 s here): docs/images.md says
    the status line and headers are within the deadlines, a tunnel's included."""
    image = Image()
    server.push("strata/app", image)
    proxy = _DrippingProxy(silent=True)
    try:
        thread, outcome = _pull_in_thread(server, pki, Network(proxy=proxy.url, environ={}), timeout=6,
                                          blob_deadline=1, image_deadline=2)
        thread.join(15)
    finally:
        proxy.stop()
        thread.join(10)
    assert "error" in outcome, outcome
    assert outcome["elapsed"] < 4, "failed only after %.1fs: %s" % (outcome["elapsed"], outcome["error"])
