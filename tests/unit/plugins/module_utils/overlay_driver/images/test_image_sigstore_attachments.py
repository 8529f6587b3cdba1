"""Sigstore attachments (the sha256-<hex>.sig tag) read from a real registry, and from one that lies.

The real registry is Debian's docker-registry with htpasswd auth over TLS
(tests/registry.py); the images are pushed with skopeo and their .sig
manifests as containers/image writes them (tests/sigstore_signing.py). The
hostile cases are served by the fake registry, which sends what no real one
would accept: a huge manifest, another media type, too many layers.
"""

import base64
import hashlib
import json
import os
import shutil
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import manifests
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import sigstore_attachments
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import open_source

import imagebuild
from fake_registry import FakeRegistry
from registry import have_tools, registries
from sigstore_signing import (SigningKey, SigstoreDisabled, Pusher, payload, sig_manifest, sig_tag, signature_layer,
                              skopeo_sign)

pytest.importorskip("cryptography")
pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))

fetch_attachments = sigstore_attachments.fetch_attachments


@pytest.fixture(scope="module")
def pushed():
    """A htpasswd registry holding base:v1 (signed twice) and app:v1 (unsigned), pushed by skopeo."""
    work = tempfile.mkdtemp(prefix="strata-sigstore-")
    try:
        with registries(token=False, directory=os.path.join(work, "registries")) as regs:
            layout, digests = imagebuild.push_samples(regs, work, {"base": "base", "app": "app"})
            digests["layout"] = layout
            yield regs, digests
    finally:
        shutil.rmtree(work, ignore_errors=True)


def source_for(regs, repo, tag="v1"):
    reference = parse_reference(regs.basic.ref(repo, tag))
    return open_source(reference, registry_auth=regs.auth, ca_path=regs.pki.ca_crt, certs_dirs=[])


def test_an_unsigned_image_has_no_attachments(pushed):
    regs, digests = pushed
    with source_for(regs, "app") as source:
        assert fetch_attachments(source, digests["app"], "app") == []


def test_attachments_are_read_in_order_with_their_signatures(pushed):
    regs, digests = pushed
    first, second = SigningKey(), SigningKey("ed25519")
    signed = payload(digests["base"], "%s/base:v1" % regs.basic.host)
    layers = [signature_layer(first, signed), signature_layer(second, signed)]
    Pusher(regs.basic, regs.USER, regs.PASSWORD).attach("base", digests["base"], layers)
    with source_for(regs, "base") as source:
        got = fetch_attachments(source, digests["base"], "base")
    assert [a.index for a in got] == [0, 1]
    assert all(a.problem is None and a.payload == signed for a in got)
    assert [a.signature for a in got] == [base64.b64decode(layer[2][sigstore_attachments.SIGNATURE_ANNOTATION])
                                          for layer in layers]


def test_what_skopeo_signs_is_read(pushed):
    """skopeo copy --sign-by-sigstore-private-key with a cosign-format key, where this skopeo can (Debian's 1.9
    is built without sigstore)."""
    regs, digests = pushed
    key = SigningKey()
    try:
        digest = skopeo_sign("oci:%s:app" % digests["layout"], regs.basic.ref("signed-by-skopeo", "v1"),
                             key.encrypted_pem(b"cosign passphrase"), b"cosign passphrase", regs.pki.cert_dir,
                             regs.creds, regs.basic.host)
    except SigstoreDisabled as e:
        pytest.skip("this skopeo makes no sigstore signatures: %s" % e)
    with source_for(regs, "signed-by-skopeo") as source:
        got = fetch_attachments(source, digest, "signed-by-skopeo")
    assert len(got) == 1 and got[0].problem is None
    assert key.verifies(got[0].payload, got[0].signature)


def test_attachment_tag_is_the_digest_with_a_dash():
    digest = "sha256:" + "ab" * 32
    assert sigstore_attachments.attachment_tag(digest) == "sha256-%s.sig" % ("ab" * 32)
    with pytest.raises(ImageError):
        sigstore_attachments.attachment_tag("sha512:" + "ab" * 64)


# -- a registry that lies ------------------------------------------------------------------------

DIGEST = "sha256:" + "12" * 32


@pytest.fixture
def liar(pki):
    server = FakeRegistry(tls=(pki[1], pki[2])).start()
    try:
        yield server
    finally:
        server.stop()


def fetch_from(liar, pki):
    reference = parse_reference("docker://%s/strata/app:v1" % liar.netloc)
    with open_source(reference, ca_path=pki[0], certs_dirs=[]) as source:
        return fetch_attachments(source, DIGEST, reference.text)


def serve(liar, layers, media_type=manifests.OCI_MANIFEST, manifest=None):
    data, blobs = sig_manifest(layers)
    liar.blobs.update(blobs)
    liar.put_manifest("strata/app", sig_tag(DIGEST), manifest if manifest is not None else data, media_type)


def good_layer(key=None):
    return signature_layer(key or SigningKey(), payload(DIGEST, "127.0.0.1/strata/app:v1"))


def test_a_huge_signature_manifest_is_refused_unread(liar, pki):
    serve(liar, [], manifest=b" " * (manifests.MAX_MANIFEST + 1))
    with pytest.raises(ImageError) as e:
        fetch_from(liar, pki)
    assert "more than the %d accepted" % manifests.MAX_MANIFEST in str(e.value)


@pytest.mark.parametrize("media_type", [manifests.DOCKER_MANIFEST, manifests.OCI_INDEX])
def test_a_signature_tag_of_another_media_type_is_refused(liar, pki, media_type):
    data, blobs = sig_manifest([good_layer()])
    document = json.loads(data)
    document["mediaType"] = media_type
    liar.blobs.update(blobs)
    liar.put_manifest("strata/app", sig_tag(DIGEST), json.dumps(document).encode(), media_type)
    with pytest.raises(ImageError) as e:
        fetch_from(liar, pki)
    assert "not an OCI image manifest" in str(e.value) and media_type in str(e.value)


def test_a_signature_manifest_that_is_not_json_is_refused(liar, pki):
    serve(liar, [], manifest=b"\x00not json")
    with pytest.raises(ImageError) as e:
        fetch_from(liar, pki)
    assert "is not valid JSON" in str(e.value)


def test_too_many_signatures_are_refused_before_any_is_fetched(liar, pki):
    layer = good_layer()
    serve(liar, [layer] * (sigstore_attachments.MAX_SIGNATURES + 1))
    with pytest.raises(ImageError) as e:
        fetch_from(liar, pki)
    assert "more than the %d accepted" % sigstore_attachments.MAX_SIGNATURES in str(e.value)
    assert not [path for path, _headers in liar.requests if "/blobs/" in path]


def test_layers_that_cannot_be_signatures_are_named_and_never_fetched(liar, pki):
    key = SigningKey()
    data = payload(DIGEST, "127.0.0.1/strata/app:v1")
    big = b"{" + b" " * sigstore_attachments.MAX_PAYLOAD + b"}"
    serve(liar, [signature_layer(key, data, media_type="application/vnd.oci.image.layer.v1.tar"),
                 signature_layer(key, data, annotation="not base64!"),
                 (data, sigstore_attachments.PAYLOAD_MEDIA_TYPE, {}),
                 signature_layer(key, big),
                 signature_layer(key, data)])
    got = fetch_from(liar, pki)
    assert "its media type is application/vnd.oci.image.layer.v1.tar" in got[0].problem
    assert "is not base64" in got[1].problem
    assert "no %s annotation" % sigstore_attachments.SIGNATURE_ANNOTATION in got[2].problem
    assert "more than the %d accepted" % sigstore_attachments.MAX_PAYLOAD in got[3].problem
    assert got[4].problem is None and got[4].payload == data
    fetched = [path for path, _headers in liar.requests if "/blobs/" in path]
    assert len(fetched) == 1 and fetched[0].endswith(got[4].descriptor.digest)


def test_a_payload_that_is_not_what_its_descriptor_says_fails(liar, pki):
    layer = good_layer()
    serve(liar, [layer])
    digest = "sha256:" + hashlib.sha256(layer[0]).hexdigest()
    liar.blobs[digest] = layer[0].replace(b"strata", b"evil!!")
    with pytest.raises(ImageError) as e:
        fetch_from(liar, pki)
    assert "not the %s it is addressed by" % digest in str(e.value)


def test_a_file_source_has_no_attachments(tmp_path):
    reference = parse_reference("oci:%s:v1" % tmp_path)
    with open_source(reference) as source:
        assert fetch_attachments(source, DIGEST, reference.text) == []
