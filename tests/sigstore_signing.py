"""Sigstore signatures for the tests, made as cosign and skopeo make them.

* :class:`SigningKey`: a key pair (ECDSA P-256 as ``cosign generate-key-pair``
  makes, or Ed25519, RSA), its public PEM, signatures over payload bytes, and
  the private key in cosign's encrypted format (the PEM ``ENCRYPTED SIGSTORE
  PRIVATE KEY`` is JSON: an scrypt KDF and a NaCl secretbox over the PKCS#8
  DER), which ``skopeo copy --sign-by-sigstore-private-key`` reads.
* :func:`payload`: the signed payload, as containers/image writes it.
* :func:`attach`: the ``sha256-<hex>.sig`` manifest containers/image pushes
  for ``use-sigstore-attachments: true`` (an OCI manifest whose layers are
  the payloads, the signature in each layer's annotation), pushed to a real
  registry through the distribution API.
* :func:`skopeo_sign`: the same through skopeo itself. Debian's skopeo 1.9
  is built with sigstore disabled ("Debian-local change: sigstore disabled",
  for signing and for verifying); :class:`SigstoreDisabled` says so, and the
  tests that need it skip.

Needs ``cryptography`` and ``pynacl`` (requirements-test.txt).
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
PAYLOAD_TYPE = "cosign container image signature"


class SigstoreDisabled(Exception):
    """This skopeo cannot make sigstore signatures."""


class SigningKey:
    """A signing key; kind "ecdsa" (P-256, cosign's), "ed25519" or "rsa"."""

    def __init__(self, kind="ecdsa"):
        # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        self.kind = kind
        if kind == "ecdsa":
            self.key = ec.generate_private_key(ec.SECP256R1())
        elif kind == "ed25519":
            self.key = ed25519.Ed25519PrivateKey.generate()
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_pem(self):
        from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data):
        # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        if self.kind == "ecdsa":
            return self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        if self.kind == "rsa":
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.key.sign(data)

    def verifies(self, data, signature):
        """Whether signature is this key's over data."""
        # pylint: disable=import-outside-toplevel
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        public = self.key.public_key()
        try:
            if self.kind == "ecdsa":
                public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            elif self.kind == "rsa":
                public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                public.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def encrypted_pem(self, passphrase, label="ENCRYPTED SIGSTORE PRIVATE KEY", seed=0):
        """The private key as cosign writes it (scrypt N=32768, r=8, p=1; nacl/secretbox)."""
        # pylint: disable=import-outside-toplevel
        import random
        import nacl.secret
        from cryptography.hazmat.primitives import serialization
        der = self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        rng = random.Random(seed)
        salt, nonce = rng.randbytes(32), rng.randbytes(24)
        n, r, p = 32768, 8, 1
        secret = hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=64 << 20)
        box = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
        document = {"kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p},
                            "salt": base64.b64encode(salt).decode()},
                    "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
                    "ciphertext": base64.b64encode(box).decode()}
        body = base64.b64encode(json.dumps(document).encode()).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)).encode()


def payload(manifest_digest, docker_reference, optional=None):
    """The payload bytes containers/image signs (its creator and timestamp in `optional`)."""
    if optional is None:
        optional = {"creator": "containers/image 5.23.1", "timestamp": 1700000000}
    return json.dumps({"critical": {"identity": {"docker-reference": docker_reference},
                                    "image": {"docker-manifest-digest": manifest_digest},
                                    "type": PAYLOAD_TYPE},
                       "optional": optional}, separators=(",", ":")).encode()


def signature_layer(key, data, media_type=PAYLOAD_MEDIA_TYPE, annotation=None, extra_annotations=None):
    """One layer of a .sig manifest: (payload bytes, media type, annotations)."""
    annotations = {SIGNATURE_ANNOTATION: annotation if annotation is not None
                   else base64.b64encode(key.sign(data)).decode()}
    annotations.update(extra_annotations or {})
    return data, media_type, annotations


def sig_tag(manifest_digest):
    return "sha256-%s.sig" % manifest_digest.split(":", 1)[1]


def sig_manifest(layers):
    """(manifest bytes, {digest: blob}) of the .sig manifest containers/image writes for layers."""
    blobs = {}
    descriptors = []
    for data, media_type, annotations in layers:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        descriptors.append({"mediaType": media_type, "size": len(data), "digest": digest,
                            "annotations": annotations})
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descriptors]}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    blobs[config_digest] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
                           "layers": descriptors}).encode()
    return manifest, blobs


class Pusher:
    """PUTs blobs and manifests into a tests/registry.py Registry (Basic credentials, its PKI's CA)."""

    def __init__(self, registry, user=None, password=None):
        self.registry = registry
        self.context = registry.pki.client_context()
        self.headers = {}
        if user is not None:
            token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            self.headers["Authorization"] = "Basic " + token

    def _open(self, url, data=None, method="GET", headers=None):
        sent = dict(self.headers)
        sent.update(headers or {})
        request = urllib.request.Request(url, data=data, method=method, headers=sent)
        return urllib.request.urlopen(request, context=self.context, timeout=60)  # noqa: S310

    def blob(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        base = "https://%s" % self.registry.host
        with self._open("%s/v2/%s/blobs/uploads/" % (base, repo), data=b"", method="POST") as resp:
            location = urllib.parse.urljoin(base + "/", resp.headers["Location"])
        location += ("&" if "?" in location else "?") + "digest=" + digest
        with self._open(location, data=data, method="PUT", headers={"Content-Type": "application/octet-stream"}):
            pass
        return digest

    def manifest(self, repo, ref, data, media_type=OCI_MANIFEST):
        url = "https://%s/v2/%s/manifests/%s" % (self.registry.host, repo, ref)
        with self._open(url, data=data, method="PUT", headers={"Content-Type": media_type}):
            pass
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def manifest_bytes(self, repo, ref, accept=OCI_MANIFEST):
        url = "https://%s/v2/%s/manifests/%s" % (self.registry.host, repo, ref)
        with self._open(url, headers={"Accept": accept}) as resp:
            return resp.read()

    def attach(self, repo, manifest_digest, layers):
        """Push the .sig manifest of layers for manifest_digest, as skopeo does; its tag."""
        manifest, blobs = sig_manifest(layers)
        for data in blobs.values():
            self.blob(repo, data)
        tag = sig_tag(manifest_digest)
        self.manifest(repo, tag, manifest)
        return tag


def skopeo_sign(src, dest, key_pem, passphrase, cert_dir, creds, registry_host):
    """``skopeo copy --sign-by-sigstore-private-key`` src to dest with attachments on; the manifest digest.
    SigstoreDisabled when this skopeo cannot sign that way."""
    work = tempfile.mkdtemp(prefix="strata-cosign-")
    try:
        key, pass_file, digest_file = (os.path.join(work, n) for n in ("cosign.key", "passphrase", "digest"))
        registries_d = os.path.join(work, "registries.d")
        os.mkdir(registries_d)
        for path, data in ((key, key_pem), (pass_file, passphrase)):
            with open(path, "wb") as f:
                f.write(data)
        with open(os.path.join(registries_d, "strata.yaml"), "w", encoding="ascii") as f:
            f.write("docker:\n  %s:\n    use-sigstore-attachments: true\n" % registry_host)
        cmd = ["skopeo", "--insecure-policy", "--registries.d", registries_d, "copy", "--quiet", "--digestfile",
               digest_file, "--dest-cert-dir", cert_dir, "--dest-creds", creds,
               "--sign-by-sigstore-private-key", key, "--sign-passphrase-file", pass_file, src, dest]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600, check=False)
        if proc.returncode:
            err = proc.stderr.decode(errors="replace")
            if "sigstore disabled" in err:
                raise SigstoreDisabled(err.strip())
            raise RuntimeError("skopeo failed (%d): %s" % (proc.returncode, err))
        with open(digest_file, encoding="ascii") as f:
            return f.read().strip()
    finally:
        shutil.rmtree(work, ignore_errors=True)
