"""The cosign payload, read as strictly as containers/image reads it."""

import json

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.sigstore_payload import (
    PayloadError, read_payload)

from sigstore_signing import payload

DIGEST = "sha256:" + "ab" * 32


def doc(**critical):
    value = {"critical": {"identity": {"docker-reference": "example.com/app:1"},
                          "image": {"docker-manifest-digest": DIGEST},
                          "type": "cosign container image signature"}, "optional": None}
    value["critical"].update(critical)
    return value


def test_what_containers_image_and_cosign_write_is_read():
    assert read_payload(payload(DIGEST, "example.com/app:1")) == (DIGEST, "example.com/app:1")
    assert read_payload(json.dumps(doc()).encode()) == (DIGEST, "example.com/app:1")  # cosign: optional null


@pytest.mark.parametrize("data, fragment", [
    (b"\xff\xfe", "not JSON"),
    (b"not json", "not JSON"),
    (b"[]", "is not a JSON object"),
    (json.dumps(doc(type="something else")).encode(), "critical.type is 'something else'"),
    (json.dumps(doc(extra=1)).encode(), "critical has the keys"),
    (json.dumps(doc(image={"docker-manifest-digest": DIGEST, "more": 1})).encode(), "critical.image has the keys"),
    (json.dumps(doc(identity={})).encode(), "critical.identity has the keys (none)"),
    (json.dumps(doc(image={"docker-manifest-digest": 1})).encode(), "not both strings"),
    (json.dumps({"critical": doc()["critical"]}).encode(), "the payload has the keys critical, not exactly"),
    (json.dumps(dict(doc(), optional=[])).encode(), "optional is neither an object nor null"),
    (b'{"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"' + DIGEST.encode()
     + b'"},"identity":{"docker-reference":"a/b:1"},"identity":{"docker-reference":"evil/x:1"}},"optional":null}',
     "a key appears twice"),
    (b"[" * 100000 + b"]" * 100000, "not JSON"),
])
def test_anything_else_is_refused(data, fragment):
    with pytest.raises(PayloadError) as e:
        read_payload(data)
    assert fragment in str(e.value)
