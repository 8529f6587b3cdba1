# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A registry client for pulls (OCI distribution API), on http.client alone.

The host pulls by itself, so this is the only network code on a managed host:
- /v2/ is probed once; its 401 challenge decides Basic or Bearer. Tokens are
  fetched per repository scope and reused until they expire; a token the
  registry stops accepting is fetched again once, never in a loop.
- Redirects (blob storage) are followed a bounded number of times, and the
  Authorization header goes only to the origin it was meant for; a 401 from
  the host a redirect led to is an error, never a challenge answered (its
  realm would get the credentials).
- TLS is verified unless validate_certs is false (then an https failure falls
  back to plain http, as Docker does for insecure registries).
- Manifests and tokens are read with size limits; every socket has a timeout.
- A 429, 502, 503 or 504, or a reset connection, is retried after a wait
  (retry.py); connections go through the proxy the task names (proxy.py).
Errors name the image, the blob and the cause, never a credential.
"""

import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import time
from urllib.parse import quote, urlencode, urljoin, urlsplit

from . import certs, manifests
from .challenge import parse_challenges, pick
from .digests import sha256_bytes, verify_bytes
from .download import DeadlineResponse, DeadlineSocket, bounded_connection
from .errors import BlobError, ImageError
from .proxy import connect as proxy_connect
from .reference import api_host
from .retry import RETRY_STATUSES, RetryPolicy, retry_after
from .source import ImageSource

DEFAULT_TIMEOUT = 60
MAX_REDIRECTS = 5
MAX_TOKEN = 1 << 20
MAX_ERROR_BODY = 4096
USER_AGENT = "strata.overlay"
_REDIRECTS = (301, 302, 303, 307, 308)
# a connection the peer dropped mid-request: passing, so retried (a refused connection or a timeout is not)
_RESETS = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ssl.SSLEOFError,
           http.client.RemoteDisconnected)


class _Reset(ImageError):
    """A connection reset before the answer came: retried by _send, the error once the retries are spent."""


def make_ssl_context(validate_certs=True, ca_path=None, image=None):
    if not validate_certs:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if ca_path:
        try:
            if os.path.isdir(ca_path):
                context.load_verify_locations(capath=ca_path)
            elif os.path.isfile(ca_path):
                context.load_verify_locations(cafile=ca_path)
            else:
                raise ImageError("cannot load the CA bundle ca_path: no such file or directory", image=image,
                                 path=ca_path)
        except (OSError, ssl.SSLError) as e:
            raise ImageError("cannot load the CA bundle ca_path: %s" % e, image=image, path=ca_path)
    return context


def _origin(url):
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


MAX_TOKEN_LIFETIME = 366 * 86400


class Registry(ImageSource):
    remote = True

    def __init__(self, reference, credentials=None, validate_certs=True, ca_path=None, timeout=DEFAULT_TIMEOUT,
                 certs_dirs=certs.DEFAULT_CERTS_DIRS, retry=None, proxies=None):
        super().__init__(reference)
        self.netloc = api_host(reference.host)
        self.repository = reference.repository
        self.credentials = credentials
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.context = make_ssl_context(validate_certs, ca_path, self.image)
        self.host_certs = certs.apply(self.context, reference.host, certs_dirs, self.image)
        self._ca_path = ca_path
        self._certs_dirs = certs_dirs
        self._own_origin = _origin("https://%s/" % self.netloc)[1:]
        self._token_servers = set()  # (host, port) of the token servers the registry's challenges named
        self._elsewhere = {}  # (host, port, token server?) -> (context, HostCerts) of the other hosts
        self.scheme = "https"
        self.challenge = None
        self._probed = False
        self._token = None
        self._token_expires = 0.0
        self.token_requests = 0
        self.bytes_fetched = 0
        self.deadlines = None  # download.Deadlines: how long a blob, and the whole image, may take
        self.retry = retry if retry is not None else RetryPolicy()
        self._auth_lock = threading.Lock()
        self.proxies = proxies  # proxy.ProxySettings, or None: always direct

    # -- transport ------------------------------------------------------------

    def _base(self):
        return "%s://%s" % (self.scheme, self.netloc)

    def _error(self, cause, blob=None):
        return ImageError(self._redact(cause), image=self.image, blob=blob)

    def _redact(self, text):
        """No secret in a message, also as a registry may quote it back: the password, the base64 of
        user:password a Basic header carries, and the bearer token."""
        secrets = []
        if self.credentials is not None:
            secrets.append(self.credentials.basic().split(" ", 1)[1])
            if self.credentials.password:
                secrets.append(self.credentials.password)
        if self._token:
            secrets.append(self._token)
        if self.proxies is not None:
            secrets.extend(self.proxies.secrets())
        for secret in secrets:
            text = text.replace(secret, "********")
        return text

    def _connect(self, scheme, host, port):
        """(connection, request target prefix, proxy) for host:port, direct or through the task's proxy
        (proxy.connect)."""
        context = self._tls(host, port)[0] if scheme == "https" else None
        return proxy_connect(self.proxies, scheme, host, port, context, self.timeout)

    def _tls(self, host, port):
        """(context, HostCerts) for host:port. The registry's host gets the registry's context. The token server
        its challenge names gets the registry's client certificate, as it gets its credentials, and is verified
        with the registry's CAs and its own certs.d's. Another host (the blob storage a redirect leads to) keeps
        the registry's trust (ca_path, its certs.d CAs) and gets its own certs.d, never the registry's client
        certificate: that is the registry's credential, as its Authorization is."""
        if (host, port) == self._own_origin:
            return self.context, self.host_certs
        token_server = (host, port) in self._token_servers
        if (host, port, token_server) not in self._elsewhere:
            context = make_ssl_context(self.validate_certs, self._ca_path, self.image)
            # the registry's CAs, and its client certificate for its token server only
            registrys = certs.apply(context, self.reference.host, self._certs_dirs, self.image, client=token_server)
            netloc = "[%s]" % host if ":" in host else host
            netloc = netloc if port == 443 else "%s:%d" % (netloc, port)
            host_certs = certs.apply(context, netloc, self._certs_dirs, self.image, client=not token_server)
            if token_server:
                host_certs = registrys
            else:
                host_certs.redirected_from = self.reference.host
            self._elsewhere[(host, port, token_server)] = (context, host_certs)
        return self._elsewhere[(host, port, token_server)]

    def _send(self, url, headers, blob=None, deadline=None):
        """GET url as _send_once does, again after a wait when the registry's failure is passing (retry.py):
        a 429, 502, 503 or 504, or a connection reset. The last answer is returned as it is (its error then
        says how often it was retried); a reset that outlasts the retries is the error."""
        # every read of the answers, headers and error bodies included, within the deadlines when there are any;
        # one blob deadline for every attempt, so retries never stretch it
        if deadline is None and self.deadlines is not None:
            deadline = self.deadlines.for_blob()
        attempt = 0
        while True:
            attempt += 1
            try:
                resp, conn = self._send_once(url, headers, blob, deadline)
            except _Reset as e:
                wait, why_not = self.retry.next_wait(attempt, None, deadline)
                if wait is None:
                    raise self._error("%s (no retry: %s)" % (e.cause, why_not), blob)
            else:
                if resp.status not in RETRY_STATUSES:
                    return resp, conn
                wait, why_not = self.retry.next_wait(attempt, retry_after(resp.getheader("Retry-After")), deadline)
                if wait is None:
                    resp.retry_note = "no retry: %s" % why_not
                    return resp, conn
                self._drain(resp)
                conn.close()
            self.retry.wait(wait)

    def _send_once(self, url, headers, blob, deadline):
        """GET url, following redirects; Authorization stays with the first URL's origin."""
        origin = _origin(url)
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise self._error("refusing to follow a redirect to %s" % url, blob)
            here = _origin(url)
            if origin[0] == "https" and here[0] == "http" and self.validate_certs:
                raise self._error("refusing a redirect from https to plain http (%s)" % url, blob)
            sent = dict(headers)
            if here != origin:
                sent.pop("Authorization", None)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn, prefix, proxy = self._connect(here[0], here[1], here[2])
            via = " through the proxy %s" % proxy.shown if proxy is not None else ""
            if prefix:
                if "Authorization" in sent:
                    conn.close()
                    raise self._error("refusing to send registry credentials to the plain http registry %s:%d "
                                      "through the proxy %s, which would read them (add the registry to no_proxy)"
                                      % (here[1], here[2], proxy.shown), blob)
                sent.update(proxy.headers())
            try:
                if deadline is not None:
                    # the connect and a proxy's answer to CONNECT within the deadline as well (download.py)
                    conn._create_connection = bounded_connection(  # pylint: disable=protected-access
                        deadline, self.timeout, self.image, blob, "the connection to %s:%d%s" % (here[1], here[2],
                                                                                                 via))
                    conn.connect()
                    sock = conn.sock.raw_socket if isinstance(conn.sock, DeadlineSocket) else conn.sock
                    conn.sock = DeadlineSocket(sock, deadline, self.timeout, self.image, blob,
                                               None if blob else "the answer to GET %s" % parts.path)
                conn.request("GET", prefix + path, headers=sent)
                resp = conn.getresponse()
            except ImageError:
                conn.close()  # a deadline passed while the answer's status line or headers came
                raise
            except ssl.SSLCertVerificationError as e:
                conn.close()
                raise self._error("the TLS certificate of %s does not verify: %s (set ca_path to the CA that signed "
                                  "it)" % (here[1], e.verify_message or e), blob)
            except _RESETS as e:
                conn.close()
                raise _Reset("the connection to %s:%d%s was reset: %s"
                             % (here[1], here[2], via, str(e) or type(e).__name__))
            except ssl.SSLError as e:
                conn.close()
                hint = self._tls(here[1], here[2])[1].hint(e)
                raise self._error("TLS with %s:%d%s failed: %s%s" % (here[1], here[2], via, e, hint), blob)
            except socket.timeout:
                conn.close()
                raise self._error("%s:%d%s did not answer within %ss" % (here[1], here[2], via, self.timeout), blob)
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                hint = " (the proxy wants credentials: give them in its URL)" if " 407 " in str(e) else ""
                raise self._error("cannot reach %s:%d%s: %s%s" % (here[1], here[2], via, e, hint), blob)
            if proxy is not None and resp.status == 407:
                self._drain(resp)
                conn.close()
                raise self._error("the proxy %s refused the request: 407 %s (the proxy wants credentials: give them "
                                  "in its URL)" % (proxy.shown, resp.reason), blob)
            if resp.status in _REDIRECTS:
                location = resp.getheader("Location")
                self._drain(resp)
                conn.close()
                if not location:
                    raise self._error("redirect %d without a Location" % resp.status, blob)
                url = urljoin(url, location)
                continue
            resp.answered_by = here  # the origin of this answer, which may be another host's (blob storage)
            return resp, conn
        raise self._error("more than %d redirects, last to %s (a redirect loop?)" % (MAX_REDIRECTS, url), blob)

    @staticmethod
    def _drain(resp):
        try:
            return resp.read(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            return b""

    def _status_error(self, resp, what, blob=None):
        body = self._drain(resp)
        detail = ""
        try:
            errors = json.loads(body.decode("utf-8")).get("errors") or []
            detail = "; ".join("%s: %s" % (e.get("code"), e.get("message")) for e in errors if isinstance(e, dict))
        except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
            pass
        text = "%s: the registry answered %d %s" % (what, resp.status, resp.reason)
        if detail:
            text += " (%s)" % detail[:300]
        if getattr(resp, "retry_note", None):
            text += " (%s)" % resp.retry_note
        return self._error(text, blob)

    # -- authentication ---------------------------------------------------------

    def _probe(self):
        if self._probed:
            return
        try:
            resp, conn = self._send(self._base() + "/v2/", {"User-Agent": USER_AGENT})
        except BlobError:
            raise  # a deadline that passed: plain http would not make it any faster
        except ImageError:
            if self.validate_certs or self.scheme != "https":
                raise
            self.scheme = "http"  # an insecure registry, as Docker allows with verification off
            resp, conn = self._send(self._base() + "/v2/", {"User-Agent": USER_AGENT})
        try:
            if resp.status == 401 and resp.answered_by != _origin(self._base()):
                # as for a blob (_get): a host /v2/ was redirected to is not the registry, and answering its
                # challenge would send the credentials to the realm that host names
                raise self._error("%s://%s:%d, where the registry redirected %s/v2/, answered 401: the registry's "
                                  "credentials go only to the registry and its token server, never to a host it "
                                  "redirects to" % (resp.answered_by + (self._base(),)))
            if resp.status == 401:
                self.challenge = pick(parse_challenges(resp.getheader("WWW-Authenticate")))
                if self.challenge is None:
                    raise self._error("the registry wants authentication with a scheme other than Basic or Bearer "
                                      "(%s)" % resp.getheader("WWW-Authenticate"))
            elif resp.status in RETRY_STATUSES:  # a registry busy or behind a failing proxy is still a registry
                raise self._status_error(resp, "%s/v2/" % self._base())
            elif resp.status != 200:
                raise self._status_error(resp, "%s/v2/ is not a registry API" % self._base())
            self._drain(resp)
        finally:
            conn.close()
        self._probed = True

    def _authorization(self):
        if self.challenge is None:
            return None
        if self.challenge.scheme == "basic":
            if self.credentials is None:
                raise self._error("the registry requires credentials (Basic) and registry_auth gives none")
            return self.credentials.basic()
        if self._token is None or time.monotonic() >= self._token_expires:
            self._fetch_token()
        return "Bearer " + self._token

    def _fetch_token(self):
        params = self.challenge.params
        realm = params.get("realm")
        if not realm:
            raise self._error("the Bearer challenge names no realm")
        scheme = urlsplit(realm).scheme
        if scheme not in ("https", "http") or (scheme == "http" and self.validate_certs and self.scheme == "https"):
            raise self._error("refusing the token realm %s (not https)" % realm)
        self._token_servers.add(_origin(realm)[1:])  # the registry's own token server: sent what the registry is
        query = {"scope": "repository:%s:pull" % self.repository}
        if params.get("service"):
            query["service"] = params["service"]
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        headers = {"User-Agent": USER_AGENT}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic()
        resp, conn = self._send(url, headers)
        self.token_requests += 1
        try:
            if resp.status in (401, 403):
                self._drain(resp)
                if self.credentials is None:
                    raise self._error("the token server %s refused an anonymous pull token (%d): registry_auth "
                                      "needs credentials" % (urlsplit(realm).netloc, resp.status))
                raise self._error("the token server %s refused the credentials of %s (%d)"
                                  % (urlsplit(realm).netloc, self.credentials.username, resp.status))
            if resp.status != 200:
                raise self._status_error(resp, "token request to %s" % urlsplit(realm).netloc)
            body = resp.read(MAX_TOKEN + 1)
        except (OSError, http.client.HTTPException) as e:
            raise self._error("reading the token from %s failed: %s" % (urlsplit(realm).netloc, e))
        finally:
            conn.close()
        if len(body) > MAX_TOKEN:
            raise self._error("the token answer is larger than %d bytes" % MAX_TOKEN)
        try:
            answer = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise self._error("the token server's answer is not JSON")
        token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
        # a header value: printable ASCII only (http.client would fail on anything else, or send a line break)
        if not isinstance(token, str) or not token or not all(" " <= c <= "~" for c in token):
            raise self._error("the token server's answer holds no token")
        expires_in = answer.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 60:
            expires_in = 60  # the distribution spec's minimum
        expires_in = min(expires_in, MAX_TOKEN_LIFETIME)  # a number past a float's range is no error
        self._token = token
        self._token_expires = time.monotonic() + expires_in - 5

    def _get(self, path, accept=None, blob=None, extra=None, deadline=None):
        """An authorized GET of a registry path; the response and its connection (the caller closes it).

        A Bearer token the registry stops accepting (it expired early, or was revoked) is dropped and the
        challenge of that 401 is answered again, once: a registry that refuses the new token too has not
        granted pull access, and saying so beats asking for tokens in a loop."""
        self._probe()
        refreshed = False
        for _attempt in range(3):
            headers = {"User-Agent": USER_AGENT}
            if accept:
                headers["Accept"] = ", ".join(accept)
            headers.update(extra or {})
            with self._auth_lock:  # blobs download on several threads (prefetch.py): one token fetch at a time
                authorization = self._authorization()
            if authorization:
                headers["Authorization"] = authorization
            resp, conn = self._send(self._base() + path, headers, blob, deadline)
            if resp.status != 401:
                return resp, conn
            if resp.answered_by != _origin(self._base()):
                # A 401 from where the registry redirected to (its blob storage) is no challenge of the registry's:
                # answering it would send the credentials to the realm that other host names.
                self._drain(resp)
                conn.close()
                raise self._error("%s://%s:%d, where the registry redirected the request, answered 401: the "
                                  "registry's credentials go only to the registry and its token server, never to a "
                                  "host it redirects to" % resp.answered_by, blob)
            challenge = pick(parse_challenges(resp.getheader("WWW-Authenticate")))
            self._drain(resp)
            conn.close()
            if authorization is None and challenge is not None and self.challenge is None:
                self.challenge = challenge  # /v2/ was open, this repository is not
                continue
            if authorization is not None and authorization.startswith("Bearer"):
                if not refreshed:
                    refreshed = True
                    with self._auth_lock:
                        if authorization == "Bearer %s" % self._token:  # not yet replaced by another thread
                            self._token = None  # refused: fetch another, for the challenge this 401 carries
                            if challenge is not None and challenge.scheme == "bearer":
                                self.challenge = challenge
                    continue
                raise self._error("the registry answered 401 to a request carrying the token its token server "
                                  "issued, and again to a new token fetched after that refusal (no pull access to "
                                  "%s?)" % self.repository, blob)
            if authorization is not None:
                raise self._error("the registry refused the credentials of %s (401)" % self.credentials.username,
                                  blob)
            raise self._error("the registry requires authentication (401)", blob)
        raise self._error("the registry requires authentication (401)", blob)

    # -- the source interface ---------------------------------------------------

    def _bounded(self, resp, conn, blob, deadline=None):
        """resp, read within the deadlines when there are any (a registry can send one byte at a time)."""
        if self.deadlines is None:
            return resp
        return DeadlineResponse(resp, conn.sock, deadline or self.deadlines.for_blob(), self.timeout, self.image,
                                blob)

    def manifest_if_present(self, reference, accept, blob=None):
        """(bytes, media type, Docker-Content-Digest) of the manifest `reference` (a tag or digest), or None
        when the registry has none (404): for what may be missing, such as a signature's tag. Bounded as
        every manifest (MAX_MANIFEST); the caller checks the digest."""
        return self._manifest(reference, blob, accept=accept, missing_ok=True)

    def _manifest(self, reference, blob=None, accept=manifests.ACCEPT, missing_ok=False):
        path = "/v2/%s/manifests/%s" % (self.repository, quote(reference, safe=":@"))
        resp, conn = self._get(path, accept, blob)
        try:
            if resp.status == 404:
                self._drain(resp)
                if missing_ok:
                    return None
                raise self._error("manifest %s not found in %s (404)" % (reference, self.repository), blob)
            if resp.status != 200:
                raise self._status_error(resp, "manifest %s" % reference, blob)
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > manifests.MAX_MANIFEST:
                raise self._error("manifest %s is %s bytes, more than the %d accepted"
                                  % (reference, length, manifests.MAX_MANIFEST), blob)
            try:
                data = self._bounded(resp, conn, blob).read(manifests.MAX_MANIFEST + 1)
            except socket.timeout:
                raise self._error("reading manifest %s timed out" % reference, blob)
            except (OSError, http.client.HTTPException) as e:
                raise self._error("reading manifest %s failed: %s" % (reference, e), blob)
            if len(data) > manifests.MAX_MANIFEST:
                raise self._error("manifest %s is larger than the %d bytes accepted"
                                  % (reference, manifests.MAX_MANIFEST), blob)
            media_type = (resp.getheader("Content-Type") or "").split(";")[0].strip()
            return data, media_type, resp.getheader("Docker-Content-Digest")
        finally:
            conn.close()

    def resolve(self, wanted_platform):
        wanted = self.reference.digest or self.reference.tag
        data, media_type, header_digest = self._manifest(wanted)
        digest = sha256_bytes(data)
        if self.reference.digest and digest != self.reference.digest:
            raise BlobError("the registry's manifest has digest %s, not the one pulled by" % digest, image=self.image,
                            blob=self.reference.digest)
        if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
            raise BlobError("Docker-Content-Digest says %s, the manifest's content has %s" % (header_digest, digest),
                            image=self.image, blob=header_digest)

        def fetch(descriptor):
            return self._manifest(descriptor.digest, descriptor.digest)[0]

        return manifests.resolve(fetch, data, media_type, digest, wanted_platform, self.image)

    def read_config(self, descriptor):
        with self.open_blob(descriptor) as resp:
            try:
                data = resp.read(manifests.MAX_CONFIG + 1)
            except socket.timeout:
                raise self._error("reading the config timed out", descriptor.digest)
            except (OSError, http.client.HTTPException) as e:
                raise self._error("reading the config failed: %s" % e, descriptor.digest)
        return verify_bytes(data, descriptor.digest, descriptor.size, self.image, "config")

    @contextlib.contextmanager
    def open_blob(self, descriptor):
        with self.open_range(descriptor) as (reader, _start, _length):
            yield reader

    @contextlib.contextmanager
    def open_range(self, descriptor, offset=0, deadline=None):
        """(reader, start, length): the blob from byte `offset` (`Range: bytes=offset-`), the offset the answer
        starts at (offset for a 206 whose Content-Range says so, 0 for a 200: the whole blob) and its
        Content-Length (None when it sends none). deadline: the blob's, shared by every resume (resume.py)."""
        extra = {"Range": "bytes=%d-" % offset} if offset else None
        digest = descriptor.digest
        resp, conn = self._get("/v2/%s/blobs/%s" % (self.repository, digest), blob=digest, extra=extra,
                               deadline=deadline)
        try:
            if resp.status == 404:
                self._drain(resp)
                raise self._error("blob not found in %s (404)" % self.repository, digest)
            if resp.status not in (200, 206) or (resp.status == 206 and not offset):
                raise self._status_error(resp, "blob", digest)
            length = resp.getheader("Content-Length")
            length = int(length) if length and length.isdigit() else None
            start = 0
            if resp.status == 206:
                start = self._range_start(resp, offset, descriptor.size, digest)
                expected = None if descriptor.size is None else descriptor.size - offset
            else:
                expected = descriptor.size
            if length is not None and expected is not None and length != expected:
                raise BlobError("the registry sends %d bytes%s, the descriptor says %d"
                                % (length, " from byte %d" % offset if start else "", descriptor.size),
                                image=self.image, blob=digest)
            yield self._bounded(resp, conn, digest, deadline), start, length
        finally:
            conn.close()

    def _range_start(self, resp, offset, size, digest):
        """offset, when a 206's Content-Range is the range asked for (to the blob's end); else a BlobError."""
        value = resp.getheader("Content-Range") or ""
        unit, _sep, spec = value.strip().partition(" ")
        span, _sep, total = spec.partition("/")
        first, _sep, last = span.partition("-")
        fits = unit == "bytes" and first.isdigit() and int(first) == offset and last.isdigit()
        if fits and size is not None:
            fits = int(last) == size - 1 and total in ("*", str(size))
        if not fits:
            self._drain(resp)
            raise BlobError("asked for bytes=%d-, the registry sent Content-Range %s" % (offset, value or "(none)"),
                            image=self.image, blob=digest)
        return offset
