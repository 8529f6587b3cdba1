# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `sigstoreSigned` requirement of containers-policy.json(5): a sigstore signature by a given public key.

    {"type": "sigstoreSigned", "keyPath": "/etc/pki/containers/cosign.pub",
     "signedIdentity": {"type": "matchRepoDigestOrExact"}}

An image passes when at least one of its sigstore attachments
(sigstore_attachments.py: the `sha256-<hex>.sig` tag cosign and skopeo push)
is, checked in this order:

1. a signature by the key (`keyPath`, a PEM file, or `keyData`, its base64)
   over the payload bytes (public_keys.py: the cryptography module, else the
   openssl program);
2. over a payload in cosign's format (sigstore_payload.py) that signs exactly
   the manifest pulled (`docker-manifest-digest`);
3. for a name the requirement's `signedIdentity` accepts
   (`docker-reference`; signed_identity.py, default matchRepoDigestOrExact).

Signatures that fail are passed over; when none passes the image is refused,
saying why each failed. An image without signatures is refused.

Keyless signing (`fulcio`: Fulcio certificates) and Rekor transparency-log
checks (`rekorPublicKeyPath`, `rekorPublicKeyData`) are not supported: a
policy that asks for them is refused when it is read, never half-checked, and
a keyless signature is never taken for a signature by the key.

Importing this module registers the requirement in policy.VERIFIERS.
"""

import base64
import binascii

from . import policy
from .errors import ImageError
from .public_keys import PublicKey, require_verifier
from .signed_identity import PolicyFormatError, claim_problem, parse_signed_identity
from .sigstore_attachments import attachment_tag
from .sigstore_payload import PayloadError, read_payload

KIND = "sigstoreSigned"
_UNSUPPORTED = {
    "fulcio": "keyless signing (Fulcio certificates)",
    "rekorPublicKeyPath": "Rekor transparency-log checks",
    "rekorPublicKeyData": "Rekor transparency-log checks",
}
_KEYS = ("type", "keyPath", "keyData", "signedIdentity")


class SigstoreSigned:
    """One sigstoreSigned requirement, read and checked whole when the policy is loaded."""

    kind = KIND
    needs_signatures = True

    def __init__(self, key, identity, where):
        self.key = key
        self.identity = identity
        self.where = where

    def check(self, target):
        """Nothing when a signature passes; policy.PolicyDenied saying why each failed otherwise."""
        try:
            require_verifier("the policy's %s requirement" % KIND)
            self.key.check_loadable()
        except ImageError as e:
            raise policy.PolicyDenied(e.cause)
        if target.manifest_digest is None or target.name is None:
            raise policy.PolicyDenied("the image has no registry manifest, so it can carry no sigstore signature")
        attachments = target.signatures.sigstore_signatures()
        if not attachments:
            raise policy.PolicyDenied("a sigstore signature is required and the image has none (no %s tag)"
                                      % attachment_tag(target.manifest_digest))
        reasons = []
        for attachment in attachments:
            reason = self.reason_against(attachment, target.manifest_digest, target.name)
            if reason is None:
                return
            reasons.append("signature %d: %s" % (attachment.index + 1, reason))
        raise policy.PolicyDenied("no sigstore signature is accepted (%s)" % "; ".join(reasons))

    def reason_against(self, attachment, manifest_digest, pulled):
        """None when the attachment is a signature this requirement accepts for the image; else why not."""
        if attachment.problem:
            return attachment.problem
        if attachment.keyless:
            return "it is a keyless (Fulcio) signature, which is not supported"
        if not self.key.verify(attachment.payload, attachment.signature):
            return "it is not a signature by the key of %s" % self.key.where
        try:
            signed_digest, signed_reference = read_payload(attachment.payload)
        except PayloadError as e:
            return str(e)
        return claim_problem(self.identity, pulled, manifest_digest, signed_digest, signed_reference)


def parse(fields, where, image):
    """The SigstoreSigned of a policy's requirement object; PolicyFormatError when it is not one we can check."""
    for key, what in _UNSUPPORTED.items():
        if key in fields:
            raise PolicyFormatError("%s: %s (%s) is not supported; sign with a key and give its public key as "
                                    "keyPath or keyData" % (where, what, key), image=image)
    extra = sorted(set(fields) - set(_KEYS))
    if extra:
        raise PolicyFormatError("%s: %s takes no key %s (it takes %s)" % (where, KIND, ", ".join(map(repr, extra)),
                                                                          ", ".join(_KEYS)), image=image)
    if ("keyPath" in fields) == ("keyData" in fields):
        raise PolicyFormatError("%s: %s needs exactly one of keyPath and keyData" % (where, KIND), image=image)
    try:
        if "keyPath" in fields:
            path = fields["keyPath"]
            if not isinstance(path, str) or not path.startswith("/"):
                raise PolicyFormatError("%s: keyPath must be an absolute path" % where, image=image)
            key = PublicKey.from_file(path, "%s keyPath" % where)
        else:
            try:
                pem = base64.b64decode(str(fields["keyData"]).encode("ascii"), validate=True)
            except (UnicodeEncodeError, binascii.Error):
                raise PolicyFormatError("%s: keyData is not base64 (of a PEM public key)" % where, image=image)
            key = PublicKey(pem, "%s keyData" % where)
    except ImageError as e:
        if isinstance(e, PolicyFormatError):
            raise
        raise PolicyFormatError(e.cause, image=image, path=e.path)
    return SigstoreSigned(key, parse_signed_identity(fields.get("signedIdentity"), where, image), where)


policy.VERIFIERS[KIND] = parse
