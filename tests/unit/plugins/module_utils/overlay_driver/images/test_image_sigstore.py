"""sigstoreSigned end to end: a policy on the host, a real registry with signed images, stage_image staging
the image or refusing it before any layer is written.

The registry is Debian's docker-registry (htpasswd, TLS; tests/registry.py),
the images pushed by skopeo; each .sig manifest is written as
containers/image writes it for `use-sigstore-attachments: true`
(tests/sigstore_signing.py; Debian's skopeo 1.9 is built with sigstore
disabled, so it cannot make them itself). Each case runs with the
cryptography module and with the openssl program where both are there.
"""

import base64
import json
import os
import shutil
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import public_keys
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
from layertools import layer_names
from registry import have_tools, registries
from sigstore_signing import SigningKey, Pusher, payload, sig_manifest, sig_tag, signature_layer

pytest.importorskip("cryptography")
pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))


class Signed:
    """The registry, the keys, the manifest digests, and what is signed how."""

    def __init__(self, regs, work):
        self.regs = regs
        self.work = work
        self.host = regs.basic.host
        self.pusher = Pusher(regs.basic, regs.USER, regs.PASSWORD)
        self.key, self.other_key = SigningKey(), SigningKey()
        self.digests = {}

    def ref(self, repo, tag="v1"):
        return self.regs.basic.ref(repo, tag)

    def key_file(self, key, name):
        path = os.path.join(self.work, name)
        with open(path, "wb") as f:
            f.write(key.public_pem())
        return path


@pytest.fixture(scope="module")
def signed():
    """base:v1 signed by `key` (and copied as copy:v1, same digest, signed for base's name); app:v1 unsigned;
    other:v1 carrying base's .sig manifest under its own digest; odd:v1 with a payload that is no JSON, signed."""
    work = tempfile.mkdtemp(prefix="strata-sigstore-e2e-")
    try:
        with registries(token=False, directory=os.path.join(work, "registries")) as regs:
            out = Signed(regs, work)
            _layout, push = imagebuild.push_samples(regs, work, {"base": "base", "copy": "base", "app": "app",
                                                                 "other": "app", "odd": "app"})
            out.digests = push
            good = signature_layer(out.key, payload(push["base"], "%s/base:v1" % out.host))
            out.pusher.attach("base", push["base"], [good])
            out.pusher.attach("copy", push["copy"], [good])
            # base's .sig manifest, as it is, under other's digest: a good signature of another manifest
            for data in sig_manifest([good])[1].values():
                out.pusher.blob("other", data)
            out.pusher.manifest("other", sig_tag(push["other"]),
                                out.pusher.manifest_bytes("base", sig_tag(push["base"])))
            out.pusher.attach("odd", push["odd"], [signature_layer(out.key, b"this is not JSON")])
            out.images = imagebuild.sample_images()
            yield out
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(params=["cryptography", "openssl"])
def verifier(request, monkeypatch):
    if request.param == "openssl":
        if shutil.which("openssl") is None:
            pytest.skip("openssl is not installed")
        monkeypatch.setattr(public_keys, "USE_CRYPTOGRAPHY", False)
    return request.param


def policy_file(signed, name, scopes, default=None):
    path = os.path.join(signed.work, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"default": default or [{"type": "reject"}], "transports": {"docker": scopes}}, f)
    return path


def sigstore(key_path, **extra):
    requirement = {"type": "sigstoreSigned", "keyPath": key_path}
    requirement.update(extra)
    return [requirement]


def stage(signed, home, repo, policy, **kw):
    store = None if kw.get("check_mode") and not os.path.isdir(home) else LayerStore(home)
    return stage_image(store, signed.ref(repo), policy=policy, registry_auth=signed.regs.auth,
                       ca_path=signed.regs.pki.ca_crt, certs_dirs=[], **kw)


def refused(signed, home, repo, policy, fragment, **kw):
    with pytest.raises(ImageError) as e:
        stage(signed, home, repo, policy, **kw)
    message = str(e.value)
    assert fragment in message
    assert "sigstoreSigned" in message or "reject" in message
    assert not os.path.isdir(home) or layer_names(home) == []
    return message


def test_a_good_signature_stages_the_image(signed, home, verifier):
    del verifier
    key = signed.key_file(signed.key, "key.pub")
    policy = policy_file(signed, "good.json", {"%s/base" % signed.host: sigstore(key)})
    result = stage(signed, home, "base", policy)
    assert result.changed and result.manifest_digest == signed.digests["base"]
    assert layer_names(home) == sorted(signed.images["base"].chain_ids)


def test_keydata_is_the_base64_of_the_pem(signed, home):
    data = base64.b64encode(signed.key.public_pem()).decode()
    policy = policy_file(signed, "keydata.json",
                         {signed.host: [{"type": "sigstoreSigned", "keyData": data}]})
    assert stage(signed, home, "base", policy).changed


def test_a_signature_by_another_key_is_refused(signed, home, verifier):
    del verifier
    key = signed.key_file(signed.other_key, "other.pub")
    policy = policy_file(signed, "other-key.json", {signed.host: sigstore(key)})
    refused(signed, home, "base", policy, "signature 1: it is not a signature by the key of")


def test_a_signature_of_another_digest_is_refused(signed, home, verifier):
    del verifier
    key = signed.key_file(signed.key, "key.pub")
    policy = policy_file(signed, "digest.json", {signed.host: sigstore(key)})
    message = refused(signed, home, "other", policy, "it signs manifest %s, not %s"
                      % (signed.digests["base"], signed.digests["other"]))
    assert "signature 1:" in message


def test_an_unsigned_image_is_refused(signed, home):
    key = signed.key_file(signed.key, "key.pub")
    policy = policy_file(signed, "unsigned.json", {signed.host: sigstore(key)})
    refused(signed, home, "app", policy, "a sigstore signature is required and the image has none (no %s tag)"
            % sig_tag(signed.digests["app"]))
    refused(signed, home, "app", policy, "has none", check_mode=True)


def test_a_policy_that_allows_the_unsigned_image_stages_it(signed, home):
    key = signed.key_file(signed.key, "key.pub")
    policy = policy_file(signed, "allows.json", {signed.host: sigstore(key),
                                                 "%s/app" % signed.host: [{"type": "insecureAcceptAnything"}]})
    assert stage(signed, home, "app", policy).changed
    refused(signed, os.path.join(home, "second"), "app", policy_file(
        signed, "rejects.json", {"%s/app" % signed.host: [{"type": "reject"}]}), "reject")


def test_the_signed_name_must_be_one_signedidentity_accepts(signed, home):
    key = signed.key_file(signed.key, "key.pub")
    default = policy_file(signed, "identity.json", {signed.host: sigstore(key)})
    refused(signed, home, "copy", default, "it names %s/base:v1, which signedIdentity matchRepoDigestOrExact "
            "does not accept for %s/copy:v1" % (signed.host, signed.host))
    remapped = policy_file(signed, "remapped.json", {signed.host: sigstore(
        key, signedIdentity={"type": "exactRepository", "dockerRepository": "%s/base" % signed.host})})
    assert stage(signed, home, "copy", remapped).changed


def test_a_signed_payload_that_is_not_json_is_refused(signed, home):
    key = signed.key_file(signed.key, "key.pub")
    policy = policy_file(signed, "odd.json", {signed.host: sigstore(key)})
    refused(signed, home, "odd", policy, "signature 1: the payload is not JSON")


@pytest.mark.parametrize("extra, fragment", [
    ({"fulcio": {"caPath": "/etc/fulcio.pem", "oidcIssuer": "https://x", "subjectEmail": "a@b"}},
     "keyless signing (Fulcio certificates) (fulcio) is not supported"),
    ({"rekorPublicKeyPath": "/etc/rekor.pub"}, "Rekor transparency-log checks"),
    ({"keyData": "AAAA"}, "exactly one of keyPath and keyData"),
    ({"keyPaths": ["/x"]}, "takes no key 'keyPaths'"),
])
def test_what_is_not_supported_is_refused_when_the_policy_is_read(signed, home, extra, fragment):
    key = signed.key_file(signed.key, "key.pub")
    policy = policy_file(signed, "unsupported.json", {signed.host: sigstore(key, **extra)})
    with pytest.raises(ImageError) as e:
        stage(signed, home, "base", policy)
    assert fragment in str(e.value)
    assert not os.path.isdir(home) or layer_names(home) == []


def test_a_host_without_a_verifier_refuses_saying_so(signed, home, monkeypatch):
    monkeypatch.setattr(public_keys, "USE_CRYPTOGRAPHY", False)
    monkeypatch.setattr(public_keys, "OPENSSL", "strata-no-such-openssl")
    key = signed.key_file(signed.key, "key.pub")
    policy = policy_file(signed, "noverifier.json", {signed.host: sigstore(key)})
    refused(signed, home, "base", policy, "needs the Python cryptography module or the openssl program")
