# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-registry TLS files in certs.d, as containers/image and Docker read them.

`/etc/containers/certs.d/HOST[:PORT]/` (else `/etc/docker/certs.d/HOST[:PORT]/`;
only the first that has a directory for the registry is read) holds:
- `*.crt`: CA certificates, trusted for this registry beside the system's;
- `*.cert` with `*.key` of the same name: a client certificate and its key,
  presented when the registry asks for one (mutual TLS); with several, the
  first by name.
A `.cert` without its `.key`, or a `.key` without its `.cert`, is an error
naming both, as it is for skopeo: a half-installed client certificate would
otherwise fail later as an unexplained handshake error. Other files are
ignored. The directory is root's configuration, read as it is.
"""

import os
import ssl

from .errors import ImageError

DEFAULT_CERTS_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
# the alerts a server sends when it wants a client certificate it did not get, or refuses the one it got
CLIENT_CERT_ALERTS = ("SSLV3_ALERT_BAD_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLSV1_ALERT_UNKNOWN_CA",
                      "SSLV3_ALERT_CERTIFICATE_UNKNOWN")


class HostCerts:
    """What certs.d gave a registry: its directory and the client certificate presented (or None)."""

    __slots__ = ("directory", "client_cert")

    def __init__(self, directory=None, client_cert=None):
        self.directory = directory
        self.client_cert = client_cert

    def hint(self, error):
        """Why a TLS failure may be the client certificate's, for the error message; "" when it is not."""
        if getattr(error, "reason", None) not in CLIENT_CERT_ALERTS:
            return ""
        if self.client_cert is None:
            return (" (the registry may require a client certificate, and none was presented: put NAME.cert and "
                    "NAME.key in the registry's certs.d directory, %s)"
                    % (self.directory or "HOST[:PORT] under /etc/containers/certs.d or certs_dir"))
        return " (the registry refused the client certificate %s)" % self.client_cert


def host_dir(host, certs_dirs=DEFAULT_CERTS_DIRS):
    """The certs.d directory for host (HOST[:PORT] as the reference names it), or None."""
    if not host or host.startswith(".") or "/" in host:
        return None
    for parent in certs_dirs:
        path = os.path.join(parent, host)
        if os.path.isdir(path):
            return path
    return None


def files_of(directory, image=None):
    """(CA files, [(cert, key)]) in directory, sorted by name; the pairs checked whole."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        raise ImageError("cannot read the registry's certs.d directory: %s" % e.strerror, image=image, path=directory)
    cas, pairs = [], []
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith(".crt"):
            cas.append(path)
        elif name.endswith(".cert"):
            key = name[:-len(".cert")] + ".key"
            if key not in names:
                raise ImageError("the client certificate %s has no key %s beside it (CA certificates are named "
                                 "*.crt)" % (name, key), image=image, path=directory)
            pairs.append((path, os.path.join(directory, key)))
        elif name.endswith(".key"):
            cert = name[:-len(".key")] + ".cert"
            if cert not in names:
                raise ImageError("the key %s has no client certificate %s beside it" % (name, cert), image=image,
                                 path=directory)
    return cas, pairs


def apply(context, host, certs_dirs=DEFAULT_CERTS_DIRS, image=None):
    """Add host's certs.d CAs and client certificate to context; what was read (HostCerts)."""
    directory = host_dir(host, certs_dirs)
    if directory is None:
        return HostCerts()
    cas, pairs = files_of(directory, image)
    for path in cas:
        if context.verify_mode == ssl.CERT_NONE:
            break  # validate_certs is off: nothing is verified, a CA changes nothing
        try:
            context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as e:
            raise ImageError("cannot load the CA certificate %s: %s" % (os.path.basename(path), e), image=image,
                             path=directory)
    if pairs:
        cert, key = pairs[0]  # one chain per TLS context: the first by name, as the registry is asked once
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as e:
            raise ImageError("cannot load the client certificate %s with its key %s: %s"
                             % (os.path.basename(cert), os.path.basename(key), e), image=image, path=directory)
        return HostCerts(directory, cert)
    return HostCerts(directory)
