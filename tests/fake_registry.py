"""A registry that can lie: http.server on 127.0.0.1 in a thread, TLS with a CA made for the test.

It speaks enough of the distribution API for pulls (/v2/, manifests, blobs,
Basic and Bearer auth with a token endpoint) and each test can replace any
answer to make it lie: wrong bytes, endless redirects, stalls, 401s.
"""

import base64
import http.server
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time


def make_ca(directory):
    """A CA and a server certificate for 127.0.0.1 signed by it; (ca.pem, cert.pem, key.pem)."""
    ca_key, ca = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr, cert = (os.path.join(directory, n) for n in ("server.key", "server.csr", "server.pem"))
    ext = os.path.join(directory, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")

    def run(*argv):
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=strata test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
        "-days", "2", "-extfile", ext)
    return ca, cert, key


class FakeRegistry:
    """State and behaviour; the handler asks it what to answer."""

    def __init__(self, auth=None, users=None, tls=None, client_ca=None, client_required=False):
        self.auth = auth            # None, "basic" or "bearer"
        self.users = users or {}    # user -> password
        self.manifests = {}         # (repo, tag-or-digest) -> (bytes, media type)
        self.blobs = {}             # digest -> bytes
        self.requests = []          # (path, headers dict)
        self.tokens = set()
        self.token_requests = 0
        self.override = {}          # path prefix -> callable(handler) that answers instead
        self.trickle = {}           # digest -> seconds between the bytes of that blob (a registry that dawdles)
        self.trickle_hook = None    # called (in the server's thread) once the first trickled byte is sent
        # the same for the other answers: "ping" (/v2/), "token", "manifest" -> (part, seconds between bytes),
        # part "headers" (status line and headers), "body" (a 200's body) or "error" (a 500's body)
        self.trickle_answers = {}
        self.honour_range = True   # "Range: bytes=N-" on a blob is answered 206 (False: 200, the whole blob)
        self.ranges_served = []    # (digest, first byte) of every 206
        self.tls = tls
        self.client_ca = client_ca  # asks for a client certificate signed by it
        self.client_required = client_required  # and refuses a connection without one
        self.token_realm = None     # the Bearer challenge's realm when the token server is another (default: /token)
        self.client_certs = []      # the client certificate (DER) each request's connection presented, or None
        self.server = None
        self.thread = None

    # -- content --------------------------------------------------------------

    def push(self, repo, image, tag="v1"):
        """All blobs of an image.Image, and its manifest under tag and digest."""
        self.blobs.update(image.blobs.blobs)
        data = image.blobs.blobs[image.manifest["digest"]]
        for ref in (tag, image.manifest["digest"]):
            self.manifests[(repo, ref)] = (data, image.manifest["mediaType"])

    def redirect_blobs_to(self, repo, storage, path="/v2/s/blobs/%s?sig=1"):
        """Every blob of repo answered with a 307 to storage (given the blobs): blob storage on another host, as
        registries behind a CDN have. path: where on storage, with %s for the digest."""
        storage.blobs.update(self.blobs)

        def to_storage(handler):
            handler.send(307, b"", {"Location": storage.base + path % handler.path.rsplit("/", 1)[1]})
        self.override["/v2/%s/blobs/" % repo] = to_storage

    def put_manifest(self, repo, ref, data, media_type):
        self.manifests[(repo, ref)] = (data, media_type)

    def fail_first(self, prefix, *answers):
        """Answer the requests for paths starting with prefix with answers (callables taking the handler), one
        each, in order; once they are spent, answer as usual."""
        pending = list(answers)

        def answer(handler):
            step = pending.pop(0)
            if not pending:
                del self.override[prefix]
            return step(handler)
        self.override[prefix] = answer

    # -- serving --------------------------------------------------------------

    @property
    def base(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.server.server_address[1])

    @property
    def netloc(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def start(self):
        registry = self

        class Handler(_Handler):
            pass
        Handler.registry = registry
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls[0], self.tls[1])
            if self.client_ca:
                context.verify_mode = ssl.CERT_REQUIRED if self.client_required else ssl.CERT_OPTIONAL
                context.load_verify_locations(self.client_ca)
            # the handshake in the request's thread (_Handler.setup), where a refused one can be closed gently
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    registry = None
    protocol_version = "HTTP/1.1"
    refused = False

    def setup(self):
        """The TLS handshake; one refused (no client certificate where one is required) ends the connection
        only once the client's bytes are read. With TLS 1.3 the client has sent its request by the time the
        refusal comes: closing with those bytes unread would send a reset that may overtake the alert, so
        that the client sees a reset one time and the refusal the next."""
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.refused = True
                _drain(self.request)
        super().setup()

    def handle(self):
        if not self.refused:
            super().handle()

    def log_message(self, *args):  # quiet
        pass

    def send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def challenge(self):
        r = self.registry
        if r.auth == "basic":
            return 'Basic realm="fake"'
        return 'Bearer realm="%s",service="fake-registry"' % (r.token_realm or r.base + "/token")

    def authorized(self):
        r = self.registry
        header = self.headers.get("Authorization") or ""
        if r.auth is None:
            return True
        if r.auth == "basic":
            return header in [_basic(u, p) for u, p in r.users.items()]
        return header.startswith("Bearer ") and header[7:] in r.tokens

    def do_GET(self):  # noqa: N802
        r = self.registry
        r.requests.append((self.path, dict(self.headers)))
        if r.client_ca:
            der = self.connection.getpeercert(binary_form=True)
            r.client_certs.append(der)
        for prefix, answer in r.override.items():
            if self.path.startswith(prefix):
                return answer(self)
        kind = ("token" if self.path.startswith("/token") else "ping" if self.path == "/v2/"
                else "manifest" if "/manifests/" in self.path else None)
        if kind in r.trickle_answers and (kind == "token" or self.authorized()):
            return self.trickle_answer(*r.trickle_answers[kind])
        if self.path.startswith("/token"):
            return self.token()
        if not self.authorized():
            return self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                             {"WWW-Authenticate": self.challenge(), "Content-Type": "application/json"})
        if self.path == "/v2/":
            return self.send(200, b"{}")
        parts = self.path.split("?", 1)[0][len("/v2/"):].split("/")
        if len(parts) >= 3 and parts[-2] == "manifests":
            repo, ref = "/".join(parts[:-2]), parts[-1]
            found = r.manifests.get((repo, ref))
            if found is None:
                return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
            data, media_type = found
            return self.send(200, data, {"Content-Type": media_type})
        if len(parts) >= 3 and parts[-2] == "blobs":
            data = r.blobs.get(parts[-1])
            if data is None:
                return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
            if parts[-1] in r.trickle:
                return self.trickle_blob(data, r.trickle[parts[-1]])
            first = _range_start(self.headers.get("Range"))
            if first is not None and r.honour_range and first < len(data):
                r.ranges_served.append((parts[-1], first))
                content_range = "bytes %d-%d/%d" % (first, len(data) - 1, len(data))
                return self.send(206, data[first:], {"Content-Type": "application/octet-stream",
                                                     "Content-Range": content_range})
            return self.send(200, data, {"Content-Type": "application/octet-stream"})
        return self.send(404)

    def trickle_blob(self, data, delay):
        """The blob one byte at a time, `delay` seconds apart, until it is sent or the client goes away."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        for i in range(len(data)):
            try:
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
            except OSError:
                return
            if i == 0 and self.registry.trickle_hook is not None:
                self.registry.trickle_hook()
            time.sleep(delay)

    def trickle_answer(self, part, delay):
        """An answer sent one byte at a time, `delay` seconds apart: its headers, or the body of a 200 or a 500
        (an error body the client reads for its message), until the client goes away."""
        if part == "headers":
            head = (b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"x" * 60) for i in range(90))
                    + b"Content-Length: 2\r\n\r\n{}")
        else:
            head = (b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
                    % (b"200 OK" if part == "body" else b"500 Internal Server Error"))
        body = b"" if part == "headers" else b" " * 1000000
        try:
            if part != "headers":
                self.wfile.write(head)
                head = b""
            data = head + body
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                if i == 0 and self.registry.trickle_hook is not None:
                    self.registry.trickle_hook()
                time.sleep(delay)
        except OSError:
            return
        finally:
            self.close_connection = True

    def token(self):
        r = self.registry
        r.token_requests += 1
        header = self.headers.get("Authorization")
        if header is None and r.users:
            return self.send(401, b"{}", {"WWW-Authenticate": 'Basic realm="token"'})
        if header is not None and header not in [_basic(u, p) for u, p in r.users.items()]:
            return self.send(401, b'{"details":"incorrect username or password"}')
        token = "tok-%d-%f" % (r.token_requests, time.time())
        r.tokens.add(token)
        return self.send(200, json.dumps({"token": token, "expires_in": 300}).encode(),
                         {"Content-Type": "application/json"})


def status(code, retry_after=None):
    """An answer: an error status (429, 503, ...) with a Retry-After header when one is given."""
    def answer(handler):
        headers = {"Content-Type": "application/json"}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        handler.send(code, b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}', headers)
    return answer


def reset(handler):
    """An answer: the connection reset (RST) before a byte of the answer is sent."""
    handler.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.close_connection = True
    handler.request.close()


def cut_after(n):
    """An answer: a 200 announcing the whole blob, only its first n bytes, then the connection closed (a FIN:
    what was sent still arrives, unlike after a reset)."""
    def answer(handler):
        data = handler.registry.blobs[handler.path.split("?", 1)[0].rsplit("/", 1)[1]]
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        handler.wfile.write(data[:n])
        handler.wfile.flush()
        handler.close_connection = True
        handler.request.shutdown(socket.SHUT_RDWR)
        handler.request.close()
    return answer


def _range_start(value):
    """N of "bytes=N-", the only Range a pull sends; None for anything else."""
    if not value or not value.startswith("bytes=") or not value.endswith("-"):
        return None
    first = value[len("bytes="):-1]
    return int(first) if first.isdigit() else None


def _basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def _drain(sock, seconds=2.0):
    """What the peer still sends (its request, then its close), read raw from a copy of the descriptor."""
    try:
        raw = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return
    try:
        raw.settimeout(seconds)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and raw.recv(65536):
            pass
    except OSError:
        pass
    finally:
        raw.close()
