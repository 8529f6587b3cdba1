"""signedIdentity: which names a signature may claim for the name pulled, as containers/image's
policy_reference_match.go decides, and the one check of a signature's claim (digest and name) that simple
signing and sigstore share."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.signed_identity import (
    claim_problem, image_name, parse_docker_name, parse_signed_identity)

D = "sha256:" + "d" * 64
E = "sha256:" + "e" * 64
REPO = "reg.example.com/team/app"


def pulled(text):
    return image_name(parse_reference("docker://" + text))


def matches(identity, pulled_text, signed_text):
    return parse_signed_identity(identity, "test").matches(pulled(pulled_text), parse_docker_name(signed_text, "t"))


DEFAULT = None  # matchRepoDigestOrExact


@pytest.mark.parametrize("identity, pulled_text, signed_text, expected", [
    # pulled by tag: the same name and tag
    (DEFAULT, REPO + ":v1", REPO + ":v1", True),
    (DEFAULT, REPO + ":v1", REPO + ":v2", False),
    # pulled by digest: the same repository, whatever the tag the signature names
    (DEFAULT, REPO + "@" + D, REPO + ":v2", True),
    (DEFAULT, REPO + "@" + D, "reg.example.com/team/other:v2", False),
    # pulled by a tag and a digest: the whole name, as containers/image compares a tagged reference
    (DEFAULT, REPO + ":v1@" + D, REPO + ":v1@" + D, True),
    (DEFAULT, REPO + ":v1@" + D, REPO + ":v2", False),        # another tag of the digest: accepted before
    (DEFAULT, REPO + ":v1@" + D, REPO + ":v2@" + D, False),
    (DEFAULT, REPO + ":v1@" + D, REPO + ":v1", False),        # containers/image: "...:v1" != "...:v1@sha256:..."
    (DEFAULT, REPO + ":v1@" + D, REPO + "@" + D, False),
    # a signature naming a bare repository names no image
    (DEFAULT, REPO + "@" + D, REPO, False),                   # accepted before
    (DEFAULT, REPO + ":v1", REPO, False),
    ({"type": "matchRepository"}, REPO + ":v1", REPO, True),
    # remapIdentity compares as matchRepoDigestOrExact once remapped
    ({"type": "remapIdentity", "prefix": "mirror.example/team", "signedPrefix": "reg.example.com/team"},
     "mirror.example/team/app:v1@" + D, REPO + ":v1@" + D, True),
    ({"type": "remapIdentity", "prefix": "mirror.example/team", "signedPrefix": "reg.example.com/team"},
     "mirror.example/team/app:v1@" + D, REPO + ":v2", False),  # accepted before
    ({"type": "remapIdentity", "prefix": "mirror.example/team", "signedPrefix": "reg.example.com/team"},
     "mirror.example/team/app@" + D, REPO + ":v2", True),
    # matchExact: the same text, tag and digest
    ({"type": "matchExact"}, REPO + ":v1@" + D, REPO + ":v1@" + D, True),
    ({"type": "matchExact"}, REPO + ":v1@" + D, REPO + ":v1", False),
    ({"type": "matchExact"}, REPO + "@" + D, REPO + ":v1", False),
    # short names are normalized as Docker does
    (DEFAULT, "docker.io/library/debian:12", "debian:12", True),
])
def test_signed_identity_matches_as_containers_image(identity, pulled_text, signed_text, expected):
    assert matches(identity, pulled_text, signed_text) is expected


def test_a_claim_is_judged_by_its_digest_then_its_name():
    identity = parse_signed_identity(None, "test")
    assert claim_problem(identity, pulled(REPO + ":v1"), D, D, REPO + ":v1") is None
    assert claim_problem(identity, pulled(REPO + ":v1"), D, E, REPO + ":v1") == \
        "it signs manifest %s, not %s, the one pulled" % (E, D)
    assert claim_problem(identity, pulled(REPO + ":v1"), D, D, ["not", "a name"]) == \
        "it names ['not', 'a name'], which is not an image reference"
    assert claim_problem(identity, pulled(REPO + ":v1"), D, D, REPO + ":v2") == \
        "it names %s:v2, which signedIdentity matchRepoDigestOrExact does not accept for %s:v1" % (REPO, REPO)
    assert claim_problem(identity, None, D, D, REPO + ":v1") == \
        "it names %s:v1, which signedIdentity matchRepoDigestOrExact does not accept for this image" % REPO


def test_a_tag_and_digest_refusal_says_how_to_pull_instead():
    identity = parse_signed_identity(None, "test")
    message = claim_problem(identity, pulled(REPO + ":v1@" + D), D, D, REPO + ":v1")
    assert message.startswith("it names %s:v1, which signedIdentity matchRepoDigestOrExact does not accept for "
                              "%s:v1@%s" % (REPO, REPO, D))
    assert "must be signed under that whole name" in message and "pull by the digest alone" in message
    # no such hint when the identity compares repositories only
    assert claim_problem(parse_signed_identity({"type": "exactRepository", "dockerRepository": REPO + "x"}, "t"),
                         pulled(REPO + ":v1@" + D), D, D, REPO + ":v1").endswith("@%s" % D)
