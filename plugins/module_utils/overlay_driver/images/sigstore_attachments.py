# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sigstore signatures as cosign and skopeo attach them: the `sha256-<hex>.sig` tag of the repository.

That tag's manifest is an OCI image manifest whose layers are the signatures:
each layer's blob is the signed payload (media type
application/vnd.dev.cosign.simplesigning.v1+json) and its annotation
`dev.cosignproject.cosign/signature` the signature over it, in base64. A
registry without the tag has no signatures for the image.

Everything here comes from the registry, which may lie: the manifest is read
bounded like any manifest, the number of signatures is bounded, each payload is
read bounded and must hash to its descriptor. A layer that is not a signature
(another media type, no or bad annotation, too large) is kept with the reason it
cannot be one, so that the policy's refusal says what was there; it is never
downloaded. What the signature is worth is sigstore.py's question.
"""

import base64
import binascii
import http.client
import socket

from . import manifests
from .digests import hex_of, parse_digest, sha256_bytes, verify_bytes
from .errors import BlobError, ImageError

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
# keyless (Fulcio) signatures carry their certificate and chain; a Rekor bundle its transparency log entry
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
MAX_SIGNATURES = 128   # layers of one .sig manifest looked at: each is a request
MAX_PAYLOAD = 64 << 10  # a cosign payload is a few hundred bytes
MAX_SIGNATURE = 16 << 10  # base64 characters of one signature (an RSA-4096 one is 684)


class Attachment:
    """One layer of the .sig manifest: the payload and its signature, or why it cannot be a signature."""

    def __init__(self, index, descriptor, payload=None, signature=None, problem=None):
        self.index = index
        self.descriptor = descriptor
        self.payload = payload        # bytes, verified against the descriptor's digest
        self.signature = signature    # bytes, decoded from the annotation
        self.problem = problem        # why this layer is no signature we can check, or None

    @property
    def keyless(self):
        return CERTIFICATE_ANNOTATION in self.descriptor.annotations

    def __repr__(self):
        return "Attachment(%d, %s, %s)" % (self.index, self.descriptor.digest, self.problem or "signature")


def attachment_tag(manifest_digest):
    """The tag cosign and skopeo attach the signatures of manifest_digest to: sha256-<hex>.sig."""
    parse_digest(manifest_digest, what="the signed manifest's digest")
    return "sha256-%s.sig" % hex_of(manifest_digest)


def decode_signature(text):
    """The signature bytes of the annotation (standard base64, as cosign writes it); ValueError if it is not."""
    if not isinstance(text, str) or not text:
        raise ValueError("no %s annotation" % SIGNATURE_ANNOTATION)
    if len(text) > MAX_SIGNATURE:
        raise ValueError("its %s annotation is %d characters, more than the %d accepted"
                         % (SIGNATURE_ANNOTATION, len(text), MAX_SIGNATURE))
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("its %s annotation is not base64" % SIGNATURE_ANNOTATION)


def fetch_attachments(source, manifest_digest, image):
    """The sigstore attachments of manifest_digest in the source's repository, in the manifest's order: a list
    of Attachment ([] when the registry has no .sig tag for it, or the source is no registry).

    source is the Registry (or FirstAvailable) the image was resolved from, so the signatures come from the
    place the image came from, with its credentials, TLS, proxies, retries and deadlines."""
    if not getattr(source, "remote", False):
        return []
    tag = attachment_tag(manifest_digest)
    what = "the signature manifest %s" % tag
    got = source.manifest_if_present(tag, (manifests.OCI_MANIFEST,), blob=tag)
    if got is None:
        return []
    data, media_type, header_digest = got
    if header_digest and header_digest.startswith("sha256:") and header_digest != sha256_bytes(data):
        raise BlobError("Docker-Content-Digest says %s, the signature manifest's content has %s"
                        % (header_digest, sha256_bytes(data)), image=image, blob=tag)
    document = manifests.load_json(data, image, what, manifests.MAX_MANIFEST)
    declared = document.get("mediaType") or media_type
    if declared != manifests.OCI_MANIFEST or document.get("schemaVersion") != 2:
        raise ImageError("%s is %s (schemaVersion %r), not an OCI image manifest: no sigstore signatures can be "
                         "read from it" % (what, declared or "of no media type", document.get("schemaVersion")),
                         image=image, blob=tag)
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ImageError("%s has no layers list" % what, image=image, blob=tag)
    if len(layers) > MAX_SIGNATURES:
        raise ImageError("%s lists %d signatures, more than the %d accepted" % (what, len(layers), MAX_SIGNATURES),
                         image=image, blob=tag)
    out = []
    for index, value in enumerate(layers):
        descriptor = manifests.parse_descriptor(value, image, "signature %d of %s" % (index + 1, what))
        out.append(_attachment(source, index, descriptor, image))
    return out


def _attachment(source, index, descriptor, image):
    if descriptor.media_type != PAYLOAD_MEDIA_TYPE:
        return Attachment(index, descriptor, problem="its media type is %s, not %s"
                          % (descriptor.media_type, PAYLOAD_MEDIA_TYPE))
    try:
        signature = decode_signature(descriptor.annotations.get(SIGNATURE_ANNOTATION))
    except ValueError as e:
        return Attachment(index, descriptor, problem=str(e))
    if descriptor.size > MAX_PAYLOAD:
        return Attachment(index, descriptor, problem="its payload is %d bytes, more than the %d accepted"
                          % (descriptor.size, MAX_PAYLOAD))
    return Attachment(index, descriptor, _read_payload(source, descriptor, image), signature)


def _read_payload(source, descriptor, image):
    with source.open_blob(descriptor) as resp:
        try:
            data = resp.read(MAX_PAYLOAD + 1)
        except socket.timeout:
            raise ImageError("reading the signature payload timed out", image=image, blob=descriptor.digest)
        except (OSError, http.client.HTTPException) as e:
            raise ImageError("reading the signature payload failed: %s" % e, image=image, blob=descriptor.digest)
    return verify_bytes(data, descriptor.digest, descriptor.size, image, "signature payload")
