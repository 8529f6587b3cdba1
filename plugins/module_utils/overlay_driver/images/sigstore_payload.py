# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The payload a signature signs, in the "simple signing" format a sigstore signature (cosign's type) and a
GPG simple signing one (simple_signing.py, `atomic container signature`, `optional` an object) share:

    {"critical": {"identity": {"docker-reference": "registry.example.com/app:1"},
                  "image": {"docker-manifest-digest": "sha256:..."},
                  "type": "cosign container image signature"},
     "optional": {...} or null}

It is read as containers/image reads it, strictly: exactly `critical` and
`optional` at the top, exactly `type`, `image` and `identity` in `critical`,
exactly one key in each of those two, no key twice anywhere. A payload that
says more than that is not one whose meaning we know, so it is refused
rather than read in part. `optional` (creator, timestamp, cosign's
annotations) is never trusted for anything.
"""

import json

PAYLOAD_TYPE = "cosign container image signature"


class PayloadError(ValueError):
    """A payload that is not a cosign signature payload."""


class _Repeated(ValueError):
    pass


def _unique_object(pairs):
    keys = [key for key, _value in pairs]
    if len(set(keys)) != len(keys):
        raise _Repeated("a key appears twice in one object")
    return dict(pairs)


def _exact(value, fields, what):
    if not isinstance(value, dict):
        raise PayloadError("%s is not a JSON object" % what)
    if set(value) != set(fields):
        raise PayloadError("%s has the keys %s, not exactly %s" % (
            what, ", ".join(sorted(value)) or "(none)", ", ".join(sorted(fields))))
    return value


def read_payload(payload, payload_type=PAYLOAD_TYPE, null_optional=True):
    """(manifest digest, docker-reference text) that the payload (bytes) signs; PayloadError when it is not a
    signature payload of payload_type (cosign's by default; `optional` may be null when null_optional)."""
    try:
        document = json.loads(payload.decode("utf-8"), object_pairs_hook=_unique_object)
    except _Repeated as e:
        raise PayloadError("the payload is not valid: %s" % e)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PayloadError("the payload is not JSON")
    _exact(document, ("critical", "optional"), "the payload")
    critical = _exact(document["critical"], ("type", "image", "identity"), "the payload's critical")
    if critical["type"] != payload_type:
        raise PayloadError("the payload's critical.type is %r, not %r" % (critical["type"], payload_type))
    if not isinstance(document["optional"], dict) and (document["optional"] is not None or not null_optional):
        raise PayloadError("the payload's optional is neither an object nor null" if null_optional else
                           "the payload's optional is not an object")
    image = _exact(critical["image"], ("docker-manifest-digest",), "the payload's critical.image")
    identity = _exact(critical["identity"], ("docker-reference",), "the payload's critical.identity")
    digest, reference = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or not isinstance(reference, str):
        raise PayloadError("the payload's docker-manifest-digest and docker-reference are not both strings")
    return digest, reference
