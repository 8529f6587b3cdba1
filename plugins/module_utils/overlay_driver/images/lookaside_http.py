# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading an http(s):// lookaside's signatures, reached the way the task reaches its registry.

A lookaside is a plain web server, often not the registry's host. It is
reached with the task's transport settings, for its own host:
- the proxy: the `proxy` option (else HTTPS_PROXY / HTTP_PROXY) and
  `no_proxy` (else NO_PROXY) decide for the lookaside's host and port as for
  the registry's (proxy.py): an https lookaside through a CONNECT tunnel, its
  certificate checked end to end;
- TLS: the system's CAs, `ca_path`, and the CAs (`*.crt`) and client
  certificate of the lookaside's own certs.d directory
  (`/etc/containers/certs.d/HOST[:PORT]/`, HOST[:PORT] as the lookaside URL
  writes it; certs.py), read as strictly as the registry's. containers/image
  reads the lookaside with its registry client, so the registry's certs.d
  directory is used there for any lookaside host; here a host's directory
  holds what that host needs, and a registry's CA is not trusted for another
  host. `validate_certs: false` turns verification off here too, as for the
  registry (a signature is verified by its key either way; never a fallback
  to plain http);
- nothing of the registry's credentials: no Authorization header, no token,
  to the lookaside or to anything it redirects to.

Redirects are followed a bounded number of times, never from https to plain
http while certificates are verified. Every read, the status line and the
headers included, ends by the deadline over all the image's signatures
(download.DeadlineSocket): a lookaside that sends its headers a byte at a
time is stopped as one that trickles its body.
"""

import base64
import http.client
import socket
import ssl
import time
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from . import certs
from .download import DeadlineSocket
from .errors import ImageError
from .proxy import connect
from .registry import make_ssl_context

TIMEOUT = 60  # seconds without progress on one read
MAX_REDIRECTS = 5
USER_AGENT = "strata.overlay"
_REDIRECTS = (301, 302, 303, 307, 308)


class LookasideTransport:
    """How a lookaside's host is reached: the task's validate_certs, ca_path, certs.d directories, proxies
    (a proxy.ProxySettings, or None: direct) and per-read timeout. One TLS context per host:port, made when
    that host is first asked."""

    def __init__(self, validate_certs=True, ca_path=None, certs_dirs=certs.DEFAULT_CERTS_DIRS, proxies=None,
                 timeout=TIMEOUT):
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.certs_dirs = certs_dirs
        self.proxies = proxies
        self.timeout = timeout
        self._contexts = {}

    def context(self, netloc, image):
        """(ssl context, certs.HostCerts) for the https host netloc (HOST[:PORT] as the URL writes it)."""
        if netloc not in self._contexts:
            context = make_ssl_context(self.validate_certs, self.ca_path, image)
            self._contexts[netloc] = (context, certs.apply(context, netloc, self.certs_dirs, image))
        return self._contexts[netloc]


class _Deadline:
    """The deadline of all the signatures, as DeadlineSocket asks for it (remaining(), or the error)."""

    def __init__(self, at, url, limit):
        self.at = at
        self.url = url
        self.limit = limit

    def remaining(self, read_bytes=0, image=None, blob=None, what=None):
        del read_bytes, blob, what
        left = self.at - time.monotonic()
        if left <= 0:
            raise ImageError("the signatures did not arrive within the deadline (at most %d s, or the image's "
                             "image_deadline); the signature %s was still being read" % (self.limit, self.url),
                             image=image)
        return left


def _netloc(parts):
    """HOST[:PORT] as the URL writes it, without user information: the certs.d directory's name."""
    return parts.netloc.rpartition("@")[2].lower()


def shown(url):
    """url as messages show it: without the user information it may hold (a password above all)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.rpartition("@")[2] if "@" in url else url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _split(url, image):
    """urlsplit(url), its port read too: a URL urllib cannot take (a port out of range, a broken IPv6 address)
    is the lookaside's error, said as such."""
    try:
        parts = urlsplit(url)
        parts.port  # pylint: disable=pointless-statement
    except ValueError as e:
        raise ImageError("the signature URL %s is not a valid URL: %s" % (shown(url), e), image=image)
    return parts


def read_signature(transport, url, image, deadline_at, limit, max_size):
    """The bytes of the signature at url (at most max_size + 1 of them, the caller judges the size), or None
    on a 404. deadline_at (time.monotonic()) bounds every read; limit is its bound in seconds, for messages."""
    transport = transport or LookasideTransport()
    deadline = _Deadline(deadline_at, shown(url), limit)
    first = _split(url, image).scheme
    for _hop in range(MAX_REDIRECTS + 1):
        parts = _split(url, image)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImageError("the lookaside redirected the signature to %s, which is not an http(s) URL" % shown(url),
                             image=image)
        if first == "https" and parts.scheme == "http" and transport.validate_certs:
            raise ImageError("the lookaside redirected the signature from https to plain http (%s): refused"
                             % shown(url), image=image)
        resp, conn = _get(transport, parts, url, image, deadline)
        try:
            if resp.status in _REDIRECTS:
                location = resp.getheader("Location")
                if not location:
                    raise ImageError("the lookaside answered %d without a Location for the signature %s"
                                     % (resp.status, shown(url)), image=image)
                try:
                    url = urljoin(url, location)
                except ValueError as e:
                    raise ImageError("the lookaside redirected the signature %s to %r, which is not a URL: %s"
                                     % (shown(url), location, e), image=image)
                continue
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise ImageError("the lookaside answered %d for the signature %s" % (resp.status, shown(url)), image=image)
            try:
                return resp.read(max_size + 1)
            except (OSError, http.client.HTTPException) as e:
                raise ImageError("cannot read the signature %s: %s" % (shown(url), e), image=image)
        finally:
            conn.close()
    raise ImageError("more than %d redirects for the signature, the last to %s" % (MAX_REDIRECTS, shown(url)), image=image)


def _get(transport, parts, url, image, deadline):
    """(response, connection) of one GET of url, its headers read within the deadline."""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname
    context, host_certs = transport.context(_netloc(parts), image) if parts.scheme == "https" else (None, None)
    conn, prefix, proxy = connect(transport.proxies, parts.scheme, host, port, context,
                                  min(transport.timeout, max(0.01, deadline.remaining(image=image))))
    via = " through the proxy %s" % proxy.shown if proxy is not None else ""
    headers = {"User-Agent": USER_AGENT}
    if parts.username is not None:  # credentials the lookaside URL itself gives, to its own host only
        basic = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode("utf-8")).decode("ascii")
    if proxy is not None and prefix:
        headers.update(proxy.headers())  # the proxy's own credentials, to the proxy alone
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    try:
        conn.connect()
        conn.sock = DeadlineSocket(conn.sock, deadline, transport.timeout, image)
        conn.request("GET", prefix + target, headers=headers)
        resp = conn.getresponse()
    except ImageError:
        conn.close()  # the deadline passed while the status line or the headers came
        raise
    except ssl.SSLCertVerificationError as e:
        conn.close()
        raise ImageError("cannot read the signature %s: the TLS certificate of the lookaside %s:%d does not verify: "
                         "%s (set ca_path to the CA that signed it, or put it in certs.d as %s/ca.crt)"
                         % (shown(url), host, port, e.verify_message or e, _netloc(parts)), image=image)
    except ssl.SSLError as e:
        conn.close()
        raise ImageError("cannot read the signature %s: TLS with the lookaside %s:%d%s failed: %s%s"
                         % (shown(url), host, port, via, e, host_certs.hint(e) if host_certs else ""), image=image)
    except socket.timeout:
        conn.close()
        raise ImageError("cannot read the signature %s: the lookaside %s:%d%s did not answer within %ss"
                         % (shown(url), host, port, via, transport.timeout), image=image)
    except (OSError, http.client.HTTPException) as e:
        conn.close()
        hint = " (the proxy wants credentials: give them in its URL)" if " 407 " in str(e) else ""
        raise ImageError("cannot read the signature %s: cannot reach the lookaside %s:%d%s: %s%s"
                         % (shown(url), host, port, via, e, hint), image=image)
    if proxy is not None and resp.status == 407:
        conn.close()
        raise ImageError("cannot read the signature %s: the proxy %s refused the request: 407 %s (the proxy wants "
                         "credentials: give them in its URL)" % (shown(url), proxy.shown, resp.reason), image=image)
    return resp, conn
