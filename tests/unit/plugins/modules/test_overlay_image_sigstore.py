"""overlay_image with a sigstoreSigned policy file on the host: staged when signed by the key, refused before any
layer is written when not (a real registry; the .sig manifests as containers/image writes them)."""

import json
import os
import shutil
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.modules import overlay_image

import imagebuild
from layertools import layer_names
from registry import have_tools, registries
from sigstore_signing import SigningKey, Pusher, payload, sig_tag, signature_layer

pytest.importorskip("cryptography")
pytestmark = pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))


@pytest.fixture(scope="module")
def signed():
    """(regs, work dir, policy path, digests): base:v1 signed by the policy's key, app:v1 unsigned."""
    work = tempfile.mkdtemp(prefix="strata-sigstore-module-")
    try:
        with registries(token=False, directory=os.path.join(work, "registries")) as regs:
            _layout, digests = imagebuild.push_samples(regs, work, {"base": "base", "app": "app"})
            key = SigningKey()
            Pusher(regs.basic, regs.USER, regs.PASSWORD).attach("base", digests["base"], [signature_layer(
                key, payload(digests["base"], "%s/base:v1" % regs.basic.host))])
            key_path, policy = os.path.join(work, "cosign.pub"), os.path.join(work, "policy.json")
            with open(key_path, "wb") as f:
                f.write(key.public_pem())
            with open(policy, "w", encoding="utf-8") as f:
                json.dump({"default": [{"type": "reject"}], "transports": {"docker": {regs.basic.host: [
                    {"type": "sigstoreSigned", "keyPath": key_path}]}}}, f)
            os.mkdir(os.path.join(work, "certs.d"))
            yield regs, work, policy, digests
    finally:
        shutil.rmtree(work, ignore_errors=True)


def args(signed, home, repo):
    regs, work, policy, _digests = signed
    return {"home": home, "src": regs.basic.ref(repo, "v1"), "policy": policy, "registry_auth": regs.auth,
            "ca_path": regs.pki.ca_crt, "certs_dir": os.path.join(work, "certs.d")}


def test_a_signed_image_is_staged_and_an_unsigned_one_refused_before_any_layer(run_module, signed, home):
    refused = run_module(overlay_image, args(signed, home, "app"))
    assert refused.get("failed") and "sigstoreSigned" in refused["msg"]
    assert "a sigstore signature is required and the image has none (no %s tag)" % sig_tag(signed[3]["app"]) \
        in refused["msg"]
    assert not os.path.isdir(home) or layer_names(home) == []
    check = run_module(overlay_image, args(signed, home, "base"), check_mode=True)
    assert check["changed"] and "failed" not in check
    staged = run_module(overlay_image, args(signed, home, "base"))
    assert staged["changed"] and "failed" not in staged and staged["manifest_digest"] == signed[3]["base"]
    assert len(layer_names(home)) == 2
