# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""signedBy: GPG simple signing ("atomic container signature"), as skopeo --sign-by makes it.

A signature is an OpenPGP signed message whose content is a JSON document:
`{"critical": {"type": "atomic container signature", "image":
{"docker-manifest-digest": DIGEST}, "identity": {"docker-reference": NAME}},
"optional": {...}}`. It is met when one of the image's signatures

1. verifies with the host's `gpg` program against the policy's keys only:
   they are imported into a temporary GNUPGHOME made for this check (mkdtemp,
   0700, removed afterwards), so neither root's keyring nor a key server is
   ever consulted; gpg's VALIDSIG must name a key among those imported, which
   is checked here, not taken from gpg's word that the signature is "good";
2. is the simple-signing document above, exactly (no other critical key; read by sigstore_payload.py,
   as cosign's payload is, with this type);
3. names the manifest digest that was pulled;
4. names an image that signedIdentity accepts for the reference pulled
   (signed_identity.py).

A host without gpg cannot verify, and the image is refused saying so: a
signature requirement never passes for want of a verifier.
"""

import base64
import binascii
import os
import selectors
import shutil
import subprocess
import tempfile
import time

from .policy import PolicyDenied
from .signed_identity import PolicyFormatError, claim_problem, parse_signed_identity
from .sigstore_payload import PayloadError, read_payload
from .trusted_files import read_trusted

KEY_TYPES = ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs")
MAX_KEY_FILE = 1 << 20
MAX_PAYLOAD = 4 << 20
GPG_TIMEOUT = 60  # seconds for one gpg run (an import, a verification), start to exit
SIGNATURE_TYPE = "atomic container signature"
_KEYS = ("type", "keyType", "keyPath", "keyPaths", "keyData", "signedIdentity")
MAX_STATUS = 1 << 20  # bytes of gpg status lines or messages read from one run
PIPE_CHUNK = 1 << 16


def gpg_program():
    """The gpg program that verifies, or None (gpg2 where gpg is GnuPG 1 under another name)."""
    return shutil.which("gpg") or shutil.which("gpg2")


def parse_signed_by(fields, where, image):
    """The SignedBy requirement of a policy entry, checked whole (key files are read when it is enforced)."""
    for key in fields:
        if key not in _KEYS:
            raise PolicyFormatError("%s: signedBy takes no key %r (it takes %s)" % (where, key, ", ".join(_KEYS)),
                                    image=image)
    key_type = fields.get("keyType")
    if key_type not in KEY_TYPES:
        raise PolicyFormatError("%s: signedBy needs keyType, one of %s" % (where, ", ".join(KEY_TYPES)), image=image)
    if key_type != "GPGKeys":
        raise PolicyFormatError("%s: signedBy keyType %s is not supported by this version (GPGKeys is)"
                                % (where, key_type), image=image)
    given = [k for k in ("keyPath", "keyPaths", "keyData") if k in fields]
    if len(given) != 1:
        raise PolicyFormatError("%s: signedBy needs exactly one of keyPath, keyPaths and keyData" % where,
                                image=image)
    keys = []
    if "keyData" in fields:
        try:
            data = base64.b64decode(fields["keyData"] if isinstance(fields["keyData"], str) else b"", validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            raise PolicyFormatError("%s: keyData must be the base64 of the keys" % where, image=image)
        keys.append(("keyData", data))
    else:
        paths = [fields["keyPath"]] if "keyPath" in fields else fields["keyPaths"]
        if not isinstance(paths, list) or not paths or \
                not all(isinstance(p, str) and os.path.isabs(p) for p in paths):
            wanted = "an absolute path" if given[0] == "keyPath" else "a non-empty list of absolute paths"
            raise PolicyFormatError("%s: %s must be %s" % (where, given[0], wanted), image=image)
        keys.extend((path, None) for path in paths)
    return SignedBy(keys, parse_signed_identity(fields.get("signedIdentity"), where, image))


class SignedBy:
    kind = "signedBy"
    needs_signatures = True

    def __init__(self, keys, identity):
        self.keys = keys  # (path or "keyData", bytes or None: read from the path when enforced)
        self.identity = identity

    def key_blobs(self, image):
        return [data if data is not None else read_trusted(path, "the signedBy key file", MAX_KEY_FILE, image)
                for path, data in self.keys]

    def check(self, target):
        program = gpg_program()
        if program is None:
            raise PolicyDenied("signedBy needs the gpg program to verify signatures, and this host has none "
                               "(install gnupg)")
        blobs = self.key_blobs(target.reference.text)
        signatures = target.signatures.simple_signatures()
        if not signatures:
            raise PolicyDenied("the image has no simple signing signature%s"
                               % getattr(target.signatures, "looked_in", ""))
        reasons = []
        with GpgHome(program, blobs) as home:
            for i, signature in enumerate(signatures, 1):
                try:
                    check_payload(home.verify(signature), target, self.identity)
                    return
                except PolicyDenied as e:
                    reasons.append("signature %d: %s" % (i, e.reason))
        raise PolicyDenied("no signature is accepted (%s)" % "; ".join(reasons))


def _collect(proc, stdin, status_fd):
    """(stdout, status, stderr) of proc, feeding it stdin, within GPG_TIMEOUT and the output bounds.

    PolicyDenied when gpg writes more than a bound (it is killed by the caller) or takes too long.
    """
    limits = {proc.stdout.fileno(): MAX_PAYLOAD, status_fd: MAX_STATUS, proc.stderr.fileno(): MAX_STATUS}
    got = {fd: bytearray() for fd in limits}
    pending = memoryview(stdin or b"")
    deadline = time.monotonic() + GPG_TIMEOUT
    with selectors.DefaultSelector() as selector:
        for fd in limits:
            selector.register(fd, selectors.EVENT_READ)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise PolicyDenied("gpg did not finish within %d s" % GPG_TIMEOUT)
            for key, _events in selector.select(left):
                fd = key.fd
                if fd not in limits:
                    try:
                        pending = pending[os.write(fd, pending[:PIPE_CHUNK]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(fd)
                        proc.stdin.close()
                    continue
                data = os.read(fd, PIPE_CHUNK)
                if not data:
                    selector.unregister(fd)
                    continue
                got[fd] += data
                if len(got[fd]) > limits[fd]:
                    raise PolicyDenied("gpg wrote more than %d bytes (%s); a signature's signed content is at most %d"
                                       % (limits[fd], "the signed content" if fd == proc.stdout.fileno()
                                          else "its messages", MAX_PAYLOAD))
    return bytes(got[proc.stdout.fileno()]), bytes(got[status_fd]), bytes(got[proc.stderr.fileno()])


def _status(text):
    """gpg's status lines: [(KEYWORD, [args])]."""
    out = []
    for line in text.splitlines():
        if line.startswith("[GNUPG:] "):
            parts = line[len("[GNUPG:] "):].split()
            if parts:
                out.append((parts[0], parts[1:]))
    return out


class GpgHome:
    """A temporary GNUPGHOME holding only the policy's keys; trusted: their primary fingerprints."""

    def __init__(self, program, key_blobs):
        self.program = program
        self.key_blobs = key_blobs
        self.dir = None
        self.trusted = set()

    def _run(self, args, stdin=None):
        """gpg's exit code, status lines, stderr and stdout, every output bounded while it is read.

        The plaintext a message holds comes to stdout (never a file): a compressed literal
        packet of a few KB decompresses to GiBs, so gpg is killed as soon as it writes more
        than MAX_PAYLOAD, rather than letting it fill the host's temp directory first.
        The status lines come on a pipe of their own, apart from the plaintext and stderr.
        """
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "GNUPGHOME": self.dir}
        status_r, status_w = os.pipe()
        try:
            proc = subprocess.Popen([self.program, "--homedir", self.dir, "--batch", "--no-tty", "--no-autostart",
                                     "--no-auto-key-retrieve", "--no-permission-warning",
                                     "--status-fd", str(status_w)] + args,
                                    stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, pass_fds=(status_w,))
        except OSError as e:
            os.close(status_r)
            raise PolicyDenied("cannot run %s: %s" % (self.program, e.strerror))
        finally:
            os.close(status_w)
        try:
            out, status, err = _collect(proc, stdin, status_r)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            os.close(status_r)
        return rc, _status(status.decode("utf-8", "replace")), err.decode("utf-8", "replace").strip(), out

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="strata-gpg-")  # 0700, made exclusively
        try:
            for blob in self.key_blobs:
                _rc, status, _err, _out = self._run(["--import"], stdin=blob)
                self.trusted.update(args[1].upper() for word, args in status if word == "IMPORT_OK" and len(args) > 1)
            if not self.trusted:
                raise PolicyDenied("the policy's keys hold no OpenPGP public key gpg can import")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def verify(self, signature):
        """The signed content of signature when it verifies with an imported key; else PolicyDenied."""
        rc, status, err, payload = self._run(["--output", "-", "--decrypt"], stdin=signature)
        words = [word for word, _args in status]
        for word, args in status:
            if word == "ERRSIG":
                raise PolicyDenied("signed by key %s, which is not among the policy's keys" % (args[0] if args else "?")
                                   if len(args) > 5 and args[5] == "9" else "gpg cannot check it (ERRSIG)")
            if word in ("BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG"):
                raise PolicyDenied({"BADSIG": "the signature does not verify (BADSIG)",
                                    "EXPKEYSIG": "it was made by an expired key",
                                    "REVKEYSIG": "it was made by a revoked key",
                                    "EXPSIG": "the signature has expired"}[word])
        valid = [args for word, args in status if word == "VALIDSIG"]
        if len(valid) != 1 or words.count("GOODSIG") != 1:
            raise PolicyDenied("gpg found %d valid signatures in it, not one%s" % (len(valid), ": " + err if err else ""))
        args = valid[0]
        primary = (args[9] if len(args) > 9 else args[0]).upper()
        if primary not in self.trusted:
            raise PolicyDenied("signed by key %s, which is not among the policy's keys" % primary)
        if rc != 0:
            raise PolicyDenied("gpg failed (%d): %s" % (rc, err))
        return payload


def check_payload(payload, target, identity):
    """The signed document is an atomic container signature of this manifest, for a name identity accepts."""
    try:
        digest, claimed = read_payload(payload, SIGNATURE_TYPE, null_optional=False)
    except PayloadError as e:
        raise PolicyDenied(str(e))
    problem = claim_problem(identity, target.name, target.manifest_digest, digest, claimed)
    if problem is not None:
        raise PolicyDenied(problem)
