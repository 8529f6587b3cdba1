"""A real OCI registry for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

Two configurations, the two ways real registries authenticate:

* ``htpasswd``: Basic auth checked by the registry itself (bcrypt entries from
  ``htpasswd -Bbn``);
* ``token``: the registry answers 401 with a Bearer challenge naming a token
  server; :class:`TokenServer` (written here, TLS too) takes Basic credentials
  and hands out an RS256 JWT that the registry verifies against the
  certificate its ``rootcertbundle`` names. That is the flow Docker Hub, GHCR,
  Quay and Harbor use, so a client that pulls through it pulls from them.

Everything is served over TLS with a CA made for the run (:class:`Pki`);
clients trust it through ``ca_path`` or skopeo's ``--*-cert-dir``. A second,
unrelated CA is there to play the certificate that does not verify.

The registry's access log is kept, so tests can count what a client fetched
(:meth:`Registry.requests`): staging an image already present must fetch no
blob. Processes and temp dirs go away in :meth:`Registry.stop` /
:meth:`TokenServer.stop`, which the context managers and fixtures call also
when a test fails.
"""

import base64
import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

REGISTRY_BIN = "docker-registry"
READY_TIMEOUT = 30.0
SERVICE = "strata-test-registry"
ISSUER = "strata-test-token-issuer"


def have_tools():
    """Why the registry tests cannot run here, or None."""
    for tool in (REGISTRY_BIN, "openssl", "htpasswd", "skopeo"):
        if shutil.which(tool) is None:
            return "%s is not installed (make deps installs it)" % tool
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Pki:
    """A CA, a server certificate for 127.0.0.1 it signed, and a token-signing key and certificate.

    ``cert_dir`` is a directory holding only ``ca.crt``: what skopeo's
    ``--dest-cert-dir``/``--src-cert-dir`` want. ``other_ca`` is a CA nobody
    trusts, for the "certificate that does not verify" cases.
    """

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_key, self.ca_crt = self._ca("ca", "strata test CA")
        self.server_key, self.server_crt = self._leaf("server", self.ca_key, self.ca_crt)
        self.cert_dir = os.path.join(directory, "certs.d")
        os.makedirs(self.cert_dir, exist_ok=True)
        shutil.copyfile(self.ca_crt, os.path.join(self.cert_dir, "ca.crt"))
        # The token issuer: a self-signed certificate the registry's rootcertbundle names.
        self.token_key, self.token_crt = self._ca("token", "strata test token issuer")
        self.token_der = _run(["openssl", "x509", "-in", self.token_crt, "-outform", "DER"]).stdout
        self.other_ca_key, self.other_ca_crt = self._ca("other-ca", "an untrusted CA")

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, cn):
        key, crt = self._path(name + ".key"), self._path(name + ".crt")
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
              "-keyout", key, "-out", crt, "-subj", "/CN=" + cn,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"])
        return key, crt

    def _leaf(self, name, ca_key, ca_crt, usage="serverAuth"):
        key, csr, crt = self._path(name + ".key"), self._path(name + ".csr"), self._path(name + ".crt")
        ext = self._path(name + ".ext")
        with open(ext, "w", encoding="ascii") as f:
            f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n" % usage)
        _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", key, "-out", csr,
              "-subj", "/CN=127.0.0.1"])
        _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
              "-days", "2", "-sha256", "-extfile", ext, "-out", crt])
        return key, crt

    def client_cert(self, name="client", ca="client-ca"):
        """A client certificate and key signed by the CA `ca` (made on first use): (key, crt, ca_crt).
        A registry started with ``client_cas=[ca_crt]`` requires it (mutual TLS)."""
        ca_key, ca_crt = self._path(ca + ".key"), self._path(ca + ".crt")
        if not os.path.exists(ca_crt):
            self._ca(ca, "strata test client CA " + ca)
        key, crt = self._leaf(name, ca_key, ca_crt, usage="clientAuth")
        return key, crt, ca_crt

    def self_signed_server(self):
        """A server key and certificate for 127.0.0.1 signed by the untrusted CA."""
        return self._leaf("untrusted-server", self.other_ca_key, self.other_ca_crt)

    def client_context(self):
        return ssl.create_default_context(cafile=self.ca_crt)

    def sign_rs256(self, data):
        return _run(["openssl", "dgst", "-sha256", "-sign", self.token_key], input=data).stdout


class TokenServer:
    """The token endpoint of the Bearer flow: Basic credentials in, ``{"token": JWT}`` out.

    ``users`` maps user to password. Anyone authenticated gets the actions they
    ask for (pull, push) on every repository, unless ``grants`` maps the user to
    a function ``(repo, actions) -> actions`` that decides otherwise. A request
    without credentials gets a token with no access, as public registries do for
    private repositories: the registry then answers 401 to the token itself.
    Wrong credentials get 401 from here. ``issued`` records (user, scopes) of
    every token handed out, for tests that check token reuse.
    """

    def __init__(self, pki, users, grants=None, lifetime=300):
        self.pki = pki
        self.users = dict(users)
        self.grants = dict(grants or {})
        self.lifetime = lifetime
        self.issued = []
        self.refused = 0
        self.lock = threading.Lock()
        self.port = None
        self.httpd = None
        self.thread = None

    @property
    def realm(self):
        return "https://127.0.0.1:%d/token" % self.port

    def start(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: pytest shows failures, not traffic
                pass

            def do_GET(self):  # noqa: N802 (http.server's naming)
                parsed = urllib.parse.urlsplit(self.path)
                if parsed.path != "/token":
                    self.send_error(404)
                    return
                query = urllib.parse.parse_qs(parsed.query)
                user = server.authenticate(self.headers.get("Authorization"))
                if user is False:
                    with server.lock:
                        server.refused += 1
                    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}'
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("WWW-Authenticate", 'Basic realm="strata test tokens"')
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                scopes = []
                for scope in query.get("scope", []):
                    scopes.extend(scope.split(" "))
                token = server.issue(user, query.get("service", [SERVICE])[0], scopes)
                body = json.dumps({"token": token, "access_token": token, "expires_in": server.lifetime,
                                   "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.pki.server_crt, self.pki.server_key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="token-server", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def authenticate(self, header):
        """The user, None when anonymous, False for wrong credentials."""
        if not header:
            return None
        kind, _sep, value = header.partition(" ")
        if kind.lower() != "basic":
            return False
        try:
            user, _sep, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user if self.users.get(user) == password else False

    def issue(self, user, service, scopes):
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                continue
            _kind, repo, actions = parts
            wanted = [a for a in actions.split(",") if a in ("pull", "push", "delete", "*")]
            if user is None:
                wanted = []
            elif user in self.grants:
                wanted = list(self.grants[user](repo, wanted))
            if wanted:
                access.append({"type": "repository", "name": repo, "actions": wanted})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.pki.token_der).decode()]}
        claims = {"iss": ISSUER, "sub": user or "", "aud": service, "exp": now + self.lifetime,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self.pki.sign_rs256(signing_input.encode())
        with self.lock:
            self.issued.append((user, tuple(scopes)))
        return signing_input + "." + _b64url(signature)


class Registry:
    """docker-registry serving over TLS on 127.0.0.1, with htpasswd or token auth (or none).

    ``auth`` is ``"htpasswd"`` (``users`` checked by the registry), ``"token"``
    (``token_server`` checks them) or ``None``. ``tls_cert``/``tls_key``
    override the certificate (the untrusted-CA case); ``client_cas`` makes it require a client
    certificate one of them signed (mutual TLS), and ``client_cert``
    (crt, key) is what the readiness probe presents to it.
    """

    def __init__(self, pki, directory, auth="htpasswd", users=None, token_server=None, tls_cert=None,
                 tls_key=None, client_cas=None, client_cert=None):
        self.pki = pki
        self.dir = directory
        self.auth = auth
        self.users = dict(users or {})
        self.token_server = token_server
        self.tls_cert = tls_cert or pki.server_crt
        self.tls_key = tls_key or pki.server_key
        self.client_cas = list(client_cas or [])  # CAs whose client certificate the registry requires
        self.client_cert = client_cert  # (crt, key) the readiness probe presents to such a registry
        self.port = None
        self.proc = None
        self.log_path = os.path.join(directory, "registry.log")
        os.makedirs(os.path.join(directory, "storage"), exist_ok=True)

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def ref(self, repo, tag="latest"):
        """``docker://`` reference of repo:tag, or repo@digest when tag starts with sha256:."""
        sep = "@" if tag.startswith("sha256:") else ":"
        return "docker://%s/%s%s%s" % (self.host, repo, sep, tag)

    def _config(self):
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: json",
            "  accesslog:",
            "    disabled: false",
            "storage:",
            "  filesystem:",
            "    rootdirectory: %s" % os.path.join(self.dir, "storage"),
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            "  addr: 127.0.0.1:%d" % self.port,
            "  secret: %s" % uuid.uuid4().hex,
            "  tls:",
            "    certificate: %s" % self.tls_cert,
            "    key: %s" % self.tls_key,
        ]
        if self.client_cas:
            lines += ["    clientcas:"] + ["      - %s" % ca for ca in self.client_cas]
        if self.auth == "htpasswd":
            htpasswd = os.path.join(self.dir, "htpasswd")
            with open(htpasswd, "w", encoding="ascii") as f:
                for user, password in self.users.items():
                    f.write(_run(["htpasswd", "-Bbn", user, password]).stdout.decode().strip() + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: strata-test", "    path: %s" % htpasswd]
        elif self.auth == "token":
            lines += ["auth:", "  token:", "    realm: %s" % self.token_server.realm,
                      "    service: %s" % SERVICE, "    issuer: %s" % ISSUER,
                      "    rootcertbundle: %s" % self.pki.token_crt]
        path = os.path.join(self.dir, "config.yml")
        with open(path, "w", encoding="ascii") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout=READY_TIMEOUT):
        """Start on a free port and wait until /v2/ answers; a port taken meanwhile is retried."""
        last = None
        for _attempt in range(5):
            self.port = free_port()
            config = self._config()
            log = open(self.log_path, "ab")  # pylint: disable=consider-using-with
            try:
                self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
                    [REGISTRY_BIN, "serve", config], stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            finally:
                log.close()
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError as exc:
                last = exc
                self.stop()
                if "address already in use" not in str(exc):
                    break
        raise last

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        context = ssl.create_default_context(cafile=self.pki.ca_crt)
        if self.tls_cert != self.pki.server_crt:
            context = ssl._create_unverified_context()  # pylint: disable=protected-access
        if self.client_cert:
            context.load_cert_chain(*self.client_cert)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited with %s before it was ready:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                urllib.request.urlopen("https://%s/v2/" % self.host, context=context, timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("docker-registry not ready on %s after %.0f s:\n%s"
                                   % (self.host, timeout, self.log_tail()))
            time.sleep(0.1)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def log_mark(self):
        """A position in the access log; :meth:`requests` counts from there. Taken once the log has
        settled, so the last requests of what ran before the mark are not counted after it."""
        self._settle_log()
        return self._log_size()

    def _log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def requests(self, since=0, method=None, kind=None):
        """(method, path, status) of every request served since ``since``, from the registry's log.

        ``kind`` filters by the API's resource: "blobs", "manifests", "uploads" or "base" (/v2/).
        """
        out = []
        self._settle_log()
        with open(self.log_path, "rb") as f:
            f.seek(since)
            data = f.read()
        for raw in data.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if entry.get("msg") != "response completed":
                continue
            req_method = entry.get("http.request.method")
            path = urllib.parse.urlsplit(entry.get("http.request.uri", "")).path
            status = entry.get("http.response.status")
            if method and req_method != method:
                continue
            if kind and _resource(path) != kind:
                continue
            out.append((req_method, path, status))
        return out

    def _settle_log(self, quiet=0.25, limit=10.0):
        """Wait until the access log has not grown for `quiet` seconds (at most `limit`).

        The registry writes a request's "response completed" line after the client has its
        last byte, so a count taken as soon as a pull returns can miss the last requests.
        """
        deadline = time.monotonic() + limit
        size = self._log_size()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self._log_size()
            if now == size:
                return
            size = now

    def blob_gets(self, since=0):
        return [r for r in self.requests(since, method="GET", kind="blobs") if r[2] in (200, 206, 307)]

    def v2(self, path, token=None, basic=None, method="GET", accept=None):
        """A raw request to the registry (tests that look at what it serves)."""
        req = urllib.request.Request("https://%s/v2/%s" % (self.host, path), method=method)
        if basic:
            req.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % basic).encode()).decode())
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if accept:
            req.add_header("Accept", accept)
        return urllib.request.urlopen(req, context=self.pki.client_context(), timeout=10)


_RESOURCE = re.compile(r"^/v2/(?:.+/)?(blobs/uploads|blobs|manifests|tags)/")


def _resource(path):
    if path in ("/v2", "/v2/"):
        return "base"
    match = _RESOURCE.match(path)
    if not match:
        return None
    return "uploads" if match.group(1) == "blobs/uploads" else match.group(1)


class RegistrySet:
    """What the image tests share: one PKI, a htpasswd registry and a token registry with its server."""

    USER, PASSWORD = "strata", "s3cret-pw"

    def __init__(self, directory):
        self.dir = directory
        self.pki = Pki(os.path.join(directory, "pki"))
        self.users = {self.USER: self.PASSWORD, "reader": "reader-pw"}
        self.basic = None
        self.token = None
        self.tokens = None

    def start(self, token=True):
        self.basic = Registry(self.pki, os.path.join(self.dir, "basic"), "htpasswd", self.users).start()
        if token:
            # "reader" authenticates but may pull nothing: its token is valid and the registry says 401.
            self.tokens = TokenServer(self.pki, self.users, grants={"reader": lambda repo, actions: []}).start()
            self.token = Registry(self.pki, os.path.join(self.dir, "token"), "token",
                                  token_server=self.tokens).start()
        return self

    def stop(self):
        for server in (self.basic, self.token, self.tokens):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()

    @property
    def creds(self):
        return "%s:%s" % (self.USER, self.PASSWORD)

    @property
    def auth(self):
        """registry_auth for the module and stage_image."""
        return {"username": self.USER, "password": self.PASSWORD}


@contextlib.contextmanager
def registries(token=True, directory=None):
    """A started :class:`RegistrySet` in a temp dir, stopped and removed afterwards, whatever happens."""
    own = directory is None
    directory = directory or tempfile.mkdtemp(prefix="strata-registry-")
    regs = RegistrySet(directory)
    try:
        yield regs.start(token=token)
    finally:
        regs.stop()
        if own:
            shutil.rmtree(directory, ignore_errors=True)
