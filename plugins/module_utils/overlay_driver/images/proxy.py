# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which HTTP proxy a registry connection goes through, as skopeo and Docker decide it.

The `proxy` option, else HTTPS_PROXY (for https) or HTTP_PROXY (for http)
from the module's environment (Ansible's `environment:` keyword), upper case
first, then lower case. `no_proxy` (the option, else NO_PROXY) lists what is
reached directly: `*`, host names (`example.com` also covers its
subdomains, `.example.com` only them), IP addresses and CIDR ranges, each
with an optional `:port`.

The proxy is spoken to in plain HTTP. An https registry is reached through a
CONNECT tunnel, so the proxy sees only the registry's host and port and TLS
runs end to end: the registry's certificate is checked as without a proxy,
and the registry's credentials travel inside TLS. The proxy's own
credentials (`http://user:password@proxy:3128`) go only to the proxy, in
Proxy-Authorization. A plain http registry is asked through the proxy by
absolute URL; registry credentials are never sent that way, since the proxy
would read them.

Unlike Go's ProxyFromEnvironment, loopback addresses are not bypassed
implicitly: list them in no_proxy.
"""

import base64
import ipaddress
from urllib.parse import unquote, urlsplit

from .errors import ImageError

ENV_NAMES = {"https": ("HTTPS_PROXY", "https_proxy"), "http": ("HTTP_PROXY", "http_proxy")}
NO_PROXY_NAMES = ("NO_PROXY", "no_proxy")


class Proxy:
    """One proxy: where it is, what it is called in messages (no credentials), and its credentials."""

    def __init__(self, url, origin):
        text = url.strip()
        if "://" not in text:
            text = "http://" + text  # "proxy:3128", as Go and curl read it
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            # the parser's own message may quote a part of the password (one with a `/`, `#` or `?` not encoded)
            raise ImageError("the proxy %s (from %s) is not a URL (a user name or password holding `/`, `#`, `?` or "
                             "`@` must be percent-encoded)" % (_shown(url), origin))
        if parts.scheme != "http":
            raise ImageError("the proxy %s (from %s) is %s://; only http:// proxies are supported (https registries "
                             "are reached through them by CONNECT, TLS end to end)" % (_shown(url), origin,
                                                                                       parts.scheme))
        if not parts.hostname:
            raise ImageError("the proxy %s (from %s) names no host" % (_shown(url), origin))
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ImageError("the proxy %s (from %s) has a path; give http://[user:password@]host:port"
                             % (_shown(url), origin))
        self.host = parts.hostname
        self.port = port or 80
        self.shown = "http://%s:%d" % (self.host if ":" not in self.host else "[%s]" % self.host, self.port)
        self.origin = origin
        self.username = unquote(parts.username) if parts.username is not None else None
        self.password = unquote(parts.password) if parts.password is not None else None
        if any(c in (self.username or "") + (self.password or "") for c in "\r\n"):
            raise ImageError("the proxy %s (from %s) has a line break in its credentials" % (self.shown, origin))

    def headers(self):
        """What the proxy itself is sent with each request (CONNECT, or an absolute-form GET)."""
        if self.username is None:
            return {}
        token = base64.b64encode(("%s:%s" % (self.username, self.password or "")).encode("utf-8")).decode("ascii")
        return {"Proxy-Authorization": "Basic " + token}

    def secrets(self):
        """The strings no message may show."""
        out = [v.split(" ", 1)[1] for v in self.headers().values()]
        if self.password:
            out.append(self.password)
        return out


def _shown(url):
    """A proxy URL for a message: credentials replaced."""
    head, sep, tail = url.rpartition("@")
    if not sep:
        return url
    scheme, sep2, _rest = head.partition("://")
    return "%s%s********@%s" % (scheme if sep2 else "", sep2, tail)


class _Exception:
    """One no_proxy entry."""

    def __init__(self, entry):
        entry = entry.strip().lower()
        self.port = None
        self.network = None
        self.domain = None
        self.any = entry == "*"
        if self.any:
            return
        host = entry
        if entry.startswith("["):  # [v6]:port
            host, _sep, rest = entry[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                self.port = int(rest[1:])
        elif entry.count(":") == 1:
            name, _sep, port = entry.partition(":")
            if port.isdigit():
                host, self.port = name, int(port)
        try:
            self.network = ipaddress.ip_network(host, strict=False)
            return
        except ValueError:
            pass
        self.domain = host.lstrip("*")  # "*.example.com" as ".example.com"

    def matches(self, host, port):
        if self.any:
            return True
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            try:
                return ipaddress.ip_address(host) in self.network
            except ValueError:
                return False
        if not self.domain:
            return False
        if self.domain.startswith("."):
            return host.endswith(self.domain)
        return host == self.domain or host.endswith("." + self.domain)


class ProxySettings:
    """The proxies for https and for http, and the no_proxy list; for_target says which one a host uses."""

    def __init__(self, proxy=None, no_proxy=None, environ=None):
        environ = environ if environ is not None else {}
        self.proxies = {}
        for scheme, names in ENV_NAMES.items():
            if proxy:
                self.proxies[scheme] = Proxy(proxy, "the proxy option")
                continue
            for name in names:
                if environ.get(name):
                    self.proxies[scheme] = Proxy(environ[name], name)
                    break
        if no_proxy is None:
            no_proxy = next((environ[n] for n in NO_PROXY_NAMES if environ.get(n)), "")
        if isinstance(no_proxy, str):
            no_proxy = no_proxy.replace(",", " ").split()
        self.exceptions = [_Exception(entry) for entry in no_proxy if entry and entry.strip()]

    def for_target(self, scheme, host, port):
        """The Proxy a connection to host:port goes through, or None (direct)."""
        proxy = self.proxies.get(scheme)
        if proxy is None:
            return None
        host = host.lower().strip("[]")
        if any(e.matches(host, port) for e in self.exceptions):
            return None
        return proxy

    def secrets(self):
        return [s for p in self.proxies.values() for s in p.secrets()]


def connect(proxies, scheme, host, port, context, timeout):
    """(connection, request target prefix, Proxy or None) for host:port: direct, or through the proxy that
    proxies (a ProxySettings, or None: always direct) names for it. An https host by a CONNECT tunnel (TLS end
    to end, the host's certificate checked with context), a plain http one by absolute URL (the prefix)."""
    # http.client only when something is fetched from the network: file transports start faster without it
    import http.client  # pylint: disable=import-outside-toplevel
    proxy = proxies.for_target(scheme, host, port) if proxies is not None else None
    if proxy is None:
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, context=context, timeout=timeout), "", None
        return http.client.HTTPConnection(host, port, timeout=timeout), "", None
    if scheme == "https":
        conn = http.client.HTTPSConnection(proxy.host, proxy.port, context=context, timeout=timeout)
        conn.set_tunnel(host, port, headers=proxy.headers())
        return conn, "", proxy
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
    return conn, "http://%s:%d" % (host if ":" not in host else "[%s]" % host, port), proxy
