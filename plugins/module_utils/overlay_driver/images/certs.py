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
ignored.

The directory is root's configuration and what it holds is presented with
root's authority (a client key), so it is read only when it is root's alone:
the certs dir and the registry's directory must be owned by root (or by the
user running the task) and not writable by group or others, else an error
names the directory. Each file is opened by the directory's descriptor
without following a symbolic link and without blocking (a FIFO there would
hold the task forever), must be a regular file on the descriptor, and is
read whole within MAX_CERT_FILE bytes; ssl is given the bytes, never the
path. The client certificate and its key, which ssl loads only from a file,
are written for the load to one 0600 file created exclusively in a private
0700 temporary directory, removed at once.
"""

import errno
import os
import re
import shutil
import ssl
import stat
import tempfile

from .errors import ImageError

DEFAULT_CERTS_DIRS = ("/etc/containers/certs.d", "/etc/docker/certs.d")
# the alerts a server sends when it wants a client certificate it did not get, or refuses the one it got
CLIENT_CERT_ALERTS = ("SSLV3_ALERT_BAD_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLSV1_ALERT_UNKNOWN_CA",
                      "SSLV3_ALERT_CERTIFICATE_UNKNOWN")
MAX_CERT_FILE = 1 << 20  # a CA bundle of every public root is about 200 KiB
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z0-9 ]+-----.*?-----END [A-Z0-9 ]+-----", re.S)


class HostCerts:
    """What certs.d gave a registry: its directory and the client certificate presented (or None)."""

    __slots__ = ("directory", "client_cert", "redirected_from")

    def __init__(self, directory=None, client_cert=None):
        self.directory = directory
        self.client_cert = client_cert
        self.redirected_from = None  # the registry (HOST[:PORT]) a redirect (its own or its token server's) came from

    def hint(self, error):
        """Why a TLS failure may be the client certificate's, for the error message; "" when it is not."""
        if getattr(error, "reason", None) not in CLIENT_CERT_ALERTS:
            return ""
        if self.redirected_from is not None:
            if self.client_cert is None:
                return (" (this host, which a redirect led to from the registry %s, may require a client "
                        "certificate, and none was presented: the registry's own is not sent to another host; put "
                        "NAME.cert and NAME.key for this one in its own certs.d directory, %s)"
                        % (self.redirected_from, self.directory or "HOST[:PORT] under /etc/containers/certs.d or "
                           "certs_dir"))
            return (" (this host, which a redirect led to from the registry %s, refused the client certificate %s)"
                    % (self.redirected_from, self.client_cert))
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


def _check_dir(fd, path, what, image):
    """Refuse a directory `fd` (at `path`) that someone other than root (or the user running the task) owns
    or may write: whoever can write it decides what is presented with the task's authority."""
    st = os.fstat(fd)
    if not stat.S_ISDIR(st.st_mode):
        raise ImageError("the %s is not a directory" % what, image=image, path=path)
    if st.st_uid not in (0, os.geteuid()):
        raise ImageError("the %s is owned by uid %d, not root: its certificates and keys are not used (chown it "
                         "to root)" % (what, st.st_uid), image=image, path=path)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ImageError("the %s is writable by group or others (mode %04o): its certificates and keys are not "
                         "used (chmod go-w it)" % (what, stat.S_IMODE(st.st_mode)), image=image, path=path)


def _open_dir(path, what, image, dir_fd=None, name=None):
    try:
        fd = os.open(path if name is None else name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        raise ImageError("cannot read the %s: %s" % (what, e.strerror), image=image, path=path)
    try:
        _check_dir(fd, path, what, image)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read(dir_fd, directory, name, image):
    """The bytes of the regular file `name` in the directory `dir_fd`, opened without following a link or
    blocking (a FIFO), at most MAX_CERT_FILE bytes."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        raise ImageError("cannot read %s in the registry's certs.d directory: %s%s"
                         % (name, e.strerror, " (a symbolic link is not followed)" if e.errno == errno.ELOOP else ""),
                         image=image, path=directory)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("%s in the registry's certs.d directory is not a regular file" % name, image=image,
                             path=directory)
        # the file as its directory: one another user may rewrite decides the registry's trust, or its client key
        if st.st_uid not in (0, os.geteuid()):
            raise ImageError("%s in the registry's certs.d directory is owned by uid %d, not root: it is not used "
                             "(chown it to root)" % (name, st.st_uid), image=image, path=directory)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ImageError("%s in the registry's certs.d directory is writable by group or others (mode %04o): "
                             "it is not used (chmod go-w it)" % (name, stat.S_IMODE(st.st_mode)), image=image,
                             path=directory)
        data = f.read(MAX_CERT_FILE + 1)
    if len(data) > MAX_CERT_FILE:
        raise ImageError("%s in the registry's certs.d directory is larger than %d bytes" % (name, MAX_CERT_FILE),
                         image=image, path=directory)
    return data


def files_of(directory, image=None):
    """(CA files, [(cert, key)]) in directory, sorted by name; the pairs checked whole. Each file is
    (path, bytes): the CAs all, of the pairs only the first (the one presented)."""
    parent = _open_dir(os.path.dirname(directory), "certs directory", image)
    try:
        fd = _open_dir(directory, "registry's certs.d directory", image, dir_fd=parent,
                       name=os.path.basename(directory))
    finally:
        os.close(parent)
    try:
        return _files_of(fd, directory, image)
    finally:
        os.close(fd)


def _files_of(fd, directory, image):
    try:
        names = sorted(os.listdir(fd))
    except OSError as e:
        raise ImageError("cannot read the registry's certs.d directory: %s" % e.strerror, image=image, path=directory)
    cas, pairs = [], []
    for name in names:
        if name.endswith(".crt"):
            cas.append((os.path.join(directory, name), _read(fd, directory, name, image)))
        elif name.endswith(".cert"):
            key = name[:-len(".cert")] + ".key"
            if key not in names:
                raise ImageError("the client certificate %s has no key %s beside it (CA certificates are named "
                                 "*.crt)" % (name, key), image=image, path=directory)
            pairs.append((name, key))
        elif name.endswith(".key"):
            cert = name[:-len(".key")] + ".cert"
            if cert not in names:
                raise ImageError("the key %s has no client certificate %s beside it" % (name, cert), image=image,
                                 path=directory)
    read = [((os.path.join(directory, cert), _read(fd, directory, cert, image)),
             (os.path.join(directory, key), _read(fd, directory, key, image))) for cert, key in pairs[:1]]
    return cas, read


def _pem_text(data):
    """The PEM blocks of data as ssl's cadata text (ASCII only; comments between blocks are dropped)."""
    return "\n".join(block.decode("ascii", "replace") for block in _PEM_BLOCK.findall(data))


def _load_cert_chain(context, cert_data, key_data):
    """context.load_cert_chain of bytes: ssl reads a chain only from a file, so one is written, 0600 and
    exclusive, in a private 0700 directory, and removed as soon as it is loaded."""
    private = tempfile.mkdtemp(prefix=".strata-client-cert.")
    try:
        path = os.path.join(private, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(cert_data.rstrip(b"\n") + b"\n" + key_data)
        context.load_cert_chain(path)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def apply(context, host, certs_dirs=DEFAULT_CERTS_DIRS, image=None, client=True):
    """Add host's certs.d CAs and client certificate to context; what was read (HostCerts). client=False adds
    the CAs only: the trust of a registry, kept for the host it redirects to, without its credential."""
    directory = host_dir(host, certs_dirs)
    if directory is None:
        return HostCerts()
    cas, pairs = files_of(directory, image)
    for path, data in cas:
        if context.verify_mode == ssl.CERT_NONE:
            break  # validate_certs is off: nothing is verified, a CA changes nothing
        try:
            context.load_verify_locations(cadata=_pem_text(data) or data)
        except (OSError, ssl.SSLError, ValueError, TypeError) as e:
            raise ImageError("cannot load the CA certificate %s: %s" % (os.path.basename(path), e), image=image,
                             path=directory)
    if pairs and client:
        (cert, cert_data), (key, key_data) = pairs[0]  # one chain per TLS context: the first by name
        try:
            _load_cert_chain(context, cert_data, key_data)
        except (OSError, ssl.SSLError, ValueError) as e:
            raise ImageError("cannot load the client certificate %s with its key %s: %s"
                             % (os.path.basename(cert), os.path.basename(key), e), image=image, path=directory)
        return HostCerts(directory, cert)
    return HostCerts(directory)
