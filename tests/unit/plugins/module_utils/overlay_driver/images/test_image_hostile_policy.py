"""Attacks on the signature policy (policy.py, trusted_files.py), compared with containers-policy.json(5) and
containers/image."""

import json
import os
import shutil
import subprocess
import tempfile

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
NOBODY = 65534


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


def _as_nobody(*argv):
    subprocess.run(list(argv), check=True, preexec_fn=lambda: (os.setgid(NOBODY), os.setuid(NOBODY)))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to play the other user")
def test_a_policy_under_a_directory_another_user_owns_cannot_be_swapped():
    # A policy kept at /srv/ops/strict/policy.json with strict/ root's but /srv/ops another user's (a deploy
    # account): that user can rename strict/ away and put a symlink to any root-owned directory holding a
    # policy.json in its place (Debian's /etc/containers/policy.json: insecureAcceptAnything). Every directory
    # on the path must be root's alone, so the policy is refused, before the swap and after it. Here the
    # swap is done by uid 65534, as the other user would.
    root = tempfile.mkdtemp(prefix="strata-policy-")
    try:
        os.chmod(root, 0o755)
        ops = os.path.join(root, "ops")
        os.mkdir(ops)
        os.chown(ops, NOBODY, NOBODY)
        strict = os.path.join(ops, "strict")
        os.mkdir(strict, 0o755)
        lax = os.path.join(root, "lax")  # stands for /etc/containers
        os.mkdir(lax, 0o755)
        for directory, document in ((strict, {"default": REJECT}), (lax, {"default": ACCEPT})):
            with open(os.path.join(directory, "policy.json"), "w", encoding="utf-8") as f:
                json.dump(document, f)
            os.chmod(os.path.join(directory, "policy.json"), 0o644)
        path = os.path.join(strict, "policy.json")
        with pytest.raises(ImageError) as before:
            load_policy(path)
        assert "another user can write or owns (%s)" % ops in before.value.message
        _as_nobody("/bin/mv", strict, os.path.join(ops, "old"))
        _as_nobody("/bin/ln", "-s", lax, strict)
        with pytest.raises(ImageError) as after:
            load_policy(path)
        assert "not trusted" in after.value.message
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to play the other user")
def test_a_link_on_the_path_is_followed_only_when_root_made_it(tmp_path):
    """A link the host keeps on the path (a `current` that root points at a release directory) is followed;
    the same link made by another user in a sticky, world-writable directory is not."""
    base = tmp_path / "etc"
    (base / "v1").mkdir(parents=True)
    (base / "v1" / "policy.json").write_text(json.dumps({"default": REJECT}))
    os.symlink("v1", str(base / "current"))
    assert [r.kind for r in load_policy(str(base / "current" / "policy.json")).default] == ["reject"]
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    os.symlink(str(base / "v1"), str(shared / "planted"))
    os.lchown(str(shared / "planted"), NOBODY, NOBODY)
    with pytest.raises(ImageError) as e:
        load_policy(str(shared / "planted" / "policy.json"))
    assert "a symbolic link owned by uid %d" % NOBODY in e.value.message
