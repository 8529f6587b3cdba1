"""Attacks on the signature policy (policy.py, trusted_files.py), compared with containers-policy.json(5) and
containers/image."""


import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.policy import load_policy
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

from imagetools import Image
from layertools import layer_names

ACCEPT = [{"type": "insecureAcceptAnything"}]
REJECT = [{"type": "reject"}]
BAD = "sha256:" + "b" * 64


def test_a_tag_beside_the_digest_does_not_escape_a_digest_scope():
    # An operator blocks one known-bad manifest by digest. containers/image refuses a docker reference with
    # both a tag and a digest outright; podman drops the tag and judges HOST/REPO@DIGEST. The manifest is pulled
    # by its digest (registry.py: digest or tag), so the scope looked up first must be HOST/REPO@DIGEST: one
    # for "HOST/REPO:TAG@DIGEST", which no scope can be written as, would fall to the repository's scope and
    # stage the blocked manifest.
    policy = load_policy({"default": REJECT, "transports": {"docker": {
        "reg.example.com/team/app": ACCEPT,
        "reg.example.com/team/app@" + BAD: REJECT,
    }}})
    by_digest = policy.requirements_for(parse_reference("docker://reg.example.com/team/app@" + BAD))
    assert by_digest[0] == 'transports.docker["reg.example.com/team/app@%s"]' % BAD
    scope, requirements = policy.requirements_for(parse_reference("docker://reg.example.com/team/app:v1@" + BAD))
    assert [r.kind for r in requirements] == ["reject"], scope


def test_a_manifest_blocked_by_digest_is_not_staged_when_pulled_as_tag_at_digest(server, pki, home):
    # The same, end to end against the fake registry: the manifest refused as HOST/REPO@DIGEST is staged
    # when the task writes HOST/REPO:v1@DIGEST.
    image = Image()
    server.push("strata/app", image, tag="v1")
    digest = image.manifest["digest"]
    repo = "%s/strata/app" % server.netloc
    policy = load_policy({"default": REJECT, "transports": {"docker": {repo: ACCEPT, repo + "@" + digest: REJECT}}})
    with pytest.raises(ImageError) as e:
        stage_image(LayerStore(home), "docker://%s@%s" % (repo, digest), ca_path=pki[0], policy=policy)
    assert "reject" in e.value.message
    try:
        stage_image(LayerStore(home), "docker://%s:v1@%s" % (repo, digest), ca_path=pki[0], policy=policy)
    except ImageError as refused:
        assert "reject" in refused.message
        return
    pytest.fail("the manifest the policy rejects by digest was staged: %s" % layer_names(home))
