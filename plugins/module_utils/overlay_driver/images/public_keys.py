# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checking a signature with a PEM public key, with what the host has.

Managed hosts run the standard library only, which has no public-key
cryptography. So a signature is checked by the Python `cryptography` module
when it can be imported, else by the `openssl` program; a host with neither
cannot check one, and says so (a policy that asks for a signature is then
never passed silently).

The keys are those cosign and skopeo sign with: ECDSA (P-256 as cosign
makes them; any curve, with SHA-256, as sigstore verifies), Ed25519, and RSA
(PKCS#1 v1.5 with SHA-256). A signature is checked over the payload bytes.
The openssl program gets its inputs as files in a private directory
(mkdtemp, 0700), each made with O_EXCL, removed afterwards.
"""

import base64
import binascii
import os
import re
import shutil
import subprocess
import tempfile

from .errors import ImageError

# Which implementation checks signatures: tests set these to force one or to take both away.
USE_CRYPTOGRAPHY = True
OPENSSL = "openssl"
OPENSSL_TIMEOUT = 60

MAX_KEY_FILE = 64 << 10

_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
# the algorithm OIDs of a SubjectPublicKeyInfo, DER-encoded
_OIDS = (
    (b"\x06\x07\x2a\x86\x48\xce\x3d\x02\x01", "ecdsa"),              # 1.2.840.10045.2.1 ecPublicKey
    (b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01", "rsa"),        # 1.2.840.113549.1.1.1 rsaEncryption
    (b"\x06\x03\x2b\x65\x70", "ed25519"),                            # 1.3.101.112 Ed25519
)


def _cryptography():
    """The cryptography module's pieces, or None when it cannot be imported (or is switched off)."""
    if not USE_CRYPTOGRAPHY:
        return None
    try:
        # pylint: disable=import-outside-toplevel
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    except ImportError:
        return None
    return {"InvalidSignature": InvalidSignature, "hashes": hashes, "serialization": serialization, "ec": ec,
            "ed25519": ed25519, "padding": padding, "rsa": rsa}


def verifier_name():
    """What checks signatures on this host: "cryptography", "openssl", or None."""
    if _cryptography() is not None:
        return "cryptography"
    if shutil.which(OPENSSL):
        return "openssl"
    return None


def require_verifier(what):
    """verifier_name(), or an ImageError naming what is missing."""
    name = verifier_name()
    if name is None:
        raise ImageError("%s needs the Python cryptography module or the openssl program to check signatures, "
                         "and this host has neither (install python3-cryptography or openssl)" % what)
    return name


class PublicKey:
    """One PEM public key (SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----"), from keyPath or keyData."""

    def __init__(self, pem, where):
        self.where = where
        blocks = _PEM.findall(pem)
        if not blocks:
            raise ImageError("%s holds no PEM public key (-----BEGIN PUBLIC KEY-----)" % where)
        if len(blocks) > 1:
            raise ImageError("%s holds %d PEM blocks; one public key is expected" % (where, len(blocks)))
        label, body = blocks[0]
        if label != b"PUBLIC KEY":
            raise ImageError("%s holds a PEM %s, not a PUBLIC KEY%s" % (
                where, label.decode("ascii"), " (a private key does not belong in a policy)"
                if b"PRIVATE" in label else ""))
        try:
            self.der = base64.b64decode(b"".join(body.split()), validate=True)
        except binascii.Error:
            raise ImageError("%s: the PEM public key is not base64" % where)
        self.pem = b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(self.der) + b"-----END PUBLIC KEY-----\n"
        head = self.der[:32]  # the AlgorithmIdentifier comes first
        self.kind = next((kind for oid, kind in _OIDS if oid in head), None)
        if self.kind is None:
            raise ImageError("%s: the public key is of an algorithm not supported (ECDSA, Ed25519 and RSA are)"
                             % where)
        self._key = None

    @classmethod
    def from_file(cls, path, where, image=None):
        """The key of a PEM file that only root (or the task's user) can change (trusted_files.py): whoever
        could replace it could sign images this policy lets in."""
        # pylint: disable=import-outside-toplevel
        from .trusted_files import read_trusted
        where = "%s (%s)" % (where, path)
        return cls(read_trusted(path, "the public key file of " + where, MAX_KEY_FILE, image), where)

    def check_loadable(self):
        """An ImageError now, before anything is fetched, when the key cannot be used by this host's verifier."""
        backend = require_verifier(self.where)
        if backend == "cryptography":
            self._loaded()
        else:
            with _Scratch() as scratch:
                key = scratch.write("key.pem", self.pem)
                proc = _openssl(["pkey", "-pubin", "-in", key, "-noout"])
                if proc.returncode:
                    raise ImageError("%s: openssl cannot read the public key: %s"
                                     % (self.where, _first_line(proc.stderr)))

    def _loaded(self):
        if self._key is None:
            crypto = _cryptography()
            try:
                self._key = crypto["serialization"].load_der_public_key(self.der)
            except (ValueError, TypeError) as e:
                raise ImageError("%s: the public key cannot be read: %s" % (self.where, e))
        return self._key

    def verify(self, payload, signature):
        """True when signature is this key's over payload (bytes); False otherwise."""
        crypto = _cryptography()
        if crypto is not None:
            return self._verify_cryptography(crypto, payload, signature)
        if shutil.which(OPENSSL):
            return self._verify_openssl(payload, signature)
        require_verifier(self.where)
        return False

    def _verify_cryptography(self, crypto, payload, signature):
        key = self._loaded()
        try:
            if self.kind == "ecdsa":
                key.verify(signature, payload, crypto["ec"].ECDSA(crypto["hashes"].SHA256()))
            elif self.kind == "rsa":
                key.verify(signature, payload, crypto["padding"].PKCS1v15(), crypto["hashes"].SHA256())
            else:
                key.verify(signature, payload)
        except crypto["InvalidSignature"]:
            return False
        except (ValueError, TypeError):
            return False  # a signature that is not even of the key's shape
        return True

    def _verify_openssl(self, payload, signature):
        with _Scratch() as scratch:
            key = scratch.write("key.pem", self.pem)
            data = scratch.write("payload", payload)
            sig = scratch.write("signature", signature)
            if self.kind == "ed25519":
                argv = ["pkeyutl", "-verify", "-pubin", "-inkey", key, "-rawin", "-in", data, "-sigfile", sig]
            else:
                argv = ["dgst", "-sha256", "-verify", key, "-signature", sig, data]
            proc = _openssl(argv)
        # rc 0 and "Verified OK" / "Signature Verified Successfully"; a bad signature is rc 1
        return proc.returncode == 0 and b"Verif" in proc.stdout


def _first_line(data):
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "(no message)"


def _openssl(argv):
    try:
        return subprocess.run([OPENSSL] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=OPENSSL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ImageError("running %s to check a signature failed: %s" % (OPENSSL, e))


class _Scratch:
    """A private directory (0700, mkdtemp) for openssl's input files, each made O_EXCL; removed on exit."""

    def __init__(self):
        self.dir = None

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="strata-sigstore-")
        return self

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False
