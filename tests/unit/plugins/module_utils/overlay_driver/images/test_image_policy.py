"""The signature policy (containers-policy.json): read strictly, the most specific scope decides, and it
decides before anything of the image but its manifest is read, in check mode too.

The file sources are OCI layouts written here; the registry is the real docker-registry of
tests/registry.py, whose access log shows that a refused image costs no blob request.
"""

import json
import os
import shutil
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import policy as policy_module
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.policy import load_policy
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
from imagetools import Image
from layertools import layer_names
from registry import have_tools, registries

ACCEPT = [{"type": "insecureAcceptAnything"}]
REJECT = [{"type": "reject"}]


def scope_of(policy, src):
    return policy.requirements_for(parse_reference(src))[0]


# -- which scope decides --------------------------------------------------------------------------

def test_the_most_specific_docker_scope_decides():
    policy = load_policy({"default": REJECT, "transports": {"docker": {
        "": ACCEPT,
        "reg.example.com": ACCEPT,
        "reg.example.com:5000": ACCEPT,
        "reg.example.com/team": ACCEPT,
        "reg.example.com/team/app": ACCEPT,
        "reg.example.com/team/app:1.0": REJECT,
        "reg.example.com/team/app@sha256:" + "a" * 64: REJECT,
        "*.example.com": ACCEPT,
        "*.com": ACCEPT,
        "docker.io/library/debian": ACCEPT,
    }}})
    docker = 'transports.docker["%s"]'
    assert scope_of(policy, "docker://reg.example.com/team/app:1.0") == docker % "reg.example.com/team/app:1.0"
    assert scope_of(policy, "docker://reg.example.com/team/app:2.0") == docker % "reg.example.com/team/app"
    assert scope_of(policy, "docker://reg.example.com/team/app@sha256:" + "a" * 64) == \
        docker % ("reg.example.com/team/app@sha256:" + "a" * 64)
    assert scope_of(policy, "docker://reg.example.com/team/other") == docker % "reg.example.com/team"
    assert scope_of(policy, "docker://reg.example.com/solo") == docker % "reg.example.com"
    # the port is part of the registry's scope, and only wildcards drop it
    assert scope_of(policy, "docker://reg.example.com:5000/solo") == docker % "reg.example.com:5000"
    assert scope_of(policy, "docker://reg.example.com:6000/solo") == docker % "*.example.com"
    assert scope_of(policy, "docker://mirror.sub.example.com/x") == docker % "*.example.com"
    assert scope_of(policy, "docker://other.com/x") == docker % "*.com"
    # *.example.com is the subdomains only
    assert scope_of(policy, "docker://example.com/x") == docker % "*.com"
    assert scope_of(policy, "docker://debian:12") == docker % "docker.io/library/debian"
    assert scope_of(policy, "docker://localhost:5000/x") == docker % ""
    assert scope_of(policy, "oci:/srv/images/app") == "default"


def test_file_transports_take_paths_and_the_transport_scope():
    policy = load_policy({"transports": {"oci": {"/srv/images": ACCEPT, "/srv/images/untrusted": REJECT},
                                         "docker-archive": {"": REJECT}}})
    assert scope_of(policy, "oci:/srv/images/app:v1") == 'transports.oci["/srv/images"]'
    assert scope_of(policy, "oci:/srv/images/untrusted/app") == 'transports.oci["/srv/images/untrusted"]'
    assert scope_of(policy, "docker-archive:/tmp/x.tar") == 'transports.docker-archive[""]'
    # no scope and no default: refused, never taken as "anything goes"
    with pytest.raises(ImageError) as e:
        scope_of(policy, "oci:/elsewhere/app")
    assert "has no scope for this image and no default: it is refused" in e.value.message
    with pytest.raises(ImageError):
        scope_of(policy, "docker://reg.example.com/app")


def test_registry_hosts_by_dockers_rule_are_scopes():
    policy = load_policy({"default": REJECT, "transports": {"docker": {
        "localhost/app": ACCEPT, "registry:5000": ACCEPT, "[::1]:5000": ACCEPT}}})
    assert scope_of(policy, "docker://localhost/app:1") == 'transports.docker["localhost/app"]'
    assert scope_of(policy, "docker://registry:5000/x") == 'transports.docker["registry:5000"]'


def test_a_symlinked_path_is_judged_by_where_it_leads(scratch):
    """As containers/image does: oci:<trusted>/link, a link to <untrusted>/img, is judged under <untrusted>."""
    trusted, untrusted = os.path.join(scratch, "trusted"), os.path.join(scratch, "untrusted")
    os.makedirs(os.path.join(untrusted, "img"))
    os.mkdir(trusted)
    os.symlink(os.path.join(untrusted, "img"), os.path.join(trusted, "link"))
    policy = load_policy({"default": ACCEPT, "transports": {"oci": {trusted: ACCEPT, untrusted: REJECT}}})
    assert scope_of(policy, "oci:%s/link:v1" % trusted) == 'transports.oci["%s"]' % untrusted
    # a path that does not exist (yet) is resolved as far as it exists
    assert scope_of(policy, "oci:%s/link/more" % trusted) == 'transports.oci["%s"]' % untrusted


def test_every_requirement_of_the_scope_must_be_met():
    policy = load_policy({"default": ACCEPT + REJECT})
    with pytest.raises(ImageError) as e:
        policy.enforce(parse_reference("docker://reg.example.com/app:1"), "sha256:" + "b" * 64, None)
    assert "refuses the image (scope default, reject)" in e.value.message
    assert "reg.example.com/app:1" in e.value.message


# -- what is refused when the policy is read ------------------------------------------------------

@pytest.mark.parametrize("document, fragment", [
    ({"default": [{"type": "acceptAll"}]}, "unknown requirement type 'acceptAll'"),
    ({"default": [{"type": "reject", "why": "x"}]}, "reject takes no key 'why'"),
    ({"default": []}, "default must be a non-empty list of requirements"),
    ({"default": "reject"}, "default must be a non-empty list of requirements"),
    ({"default": [{"kind": "reject"}]}, "default[0] must be an object with a type"),
    ({"default": ACCEPT, "policy": "x"}, "unknown key 'policy'"),
    ({"default": ACCEPT, "transports": {"ftp": {"": ACCEPT}}}, "unknown transport 'ftp'"),
    ({"default": ACCEPT, "transports": {"docker": []}}, "transports.docker must be an object of scopes"),
    ({"default": ACCEPT, "transports": {"docker": {"reg.example.com": []}}}, "must be a non-empty list"),
    ({"default": ACCEPT, "transports": {"docker": {"*.ex*.com": ACCEPT}}}, "a wildcard scope is `*.DOMAIN` only"),
    ({"default": ACCEPT, "transports": {"docker": {"https://reg.example.com": ACCEPT}}}, "is not a scope"),
    ({"default": ACCEPT, "transports": {"docker": {"docker.io/debian": ACCEPT}}}, "docker.io/library/NAME"),
    ({"default": ACCEPT, "transports": {"docker": {"Reg/App": ACCEPT}}}, "is not a scope"),
    # short names would never match a normalized name: refused rather than silently ignored
    ({"default": ACCEPT, "transports": {"docker": {"debian": REJECT}}}, "does not start with a registry host"),
    ({"default": ACCEPT, "transports": {"docker": {"library/debian": REJECT}}},
     "does not start with a registry host"),
    ({"default": ACCEPT, "transports": {"docker": {"team/app:1": REJECT}}}, "in full, as 'docker.io/team/app:1'"),
    ({"default": ACCEPT, "transports": {"oci": {"relative/path": ACCEPT}}}, '"" or an absolute path'),
])
def test_a_malformed_policy_is_refused_naming_what(document, fragment):
    with pytest.raises(ImageError) as e:
        load_policy(document)
    assert fragment in e.value.message


def test_an_unsupported_verifier_is_refused_not_skipped(monkeypatch):
    monkeypatch.setattr(policy_module, "VERIFIERS", {})
    monkeypatch.setattr(policy_module, "_import_verifiers", lambda: None)
    with pytest.raises(ImageError) as e:
        load_policy({"default": [{"type": "sigstoreSigned", "keyPath": "/k"}]})
    assert "sigstoreSigned is not supported by this version" in e.value.message


@pytest.mark.parametrize("data, fragment", [
    (b'{"default": [{"type": "reject"}], "default": [{"type": "insecureAcceptAnything"}]}', "appears twice"),
    (b'{"default": [', "is not valid JSON"),
    (b"\xff\xfe", "is not valid JSON"),
    (b"[]", "is not a JSON object"),
    (b"[" * 100000 + b"]" * 100000, "is not valid JSON"),
])
def test_malformed_json_is_refused(data, fragment):
    with pytest.raises(ImageError) as e:
        load_policy(data)
    assert fragment in e.value.message


@pytest.fixture
def policy_dir():
    directory = tempfile.mkdtemp(prefix="strata-policy-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def write(path, document, mode=0o644):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f)
    os.chmod(path, mode)
    return path


def test_a_policy_file_is_read_by_its_path(policy_dir):
    path = write(os.path.join(policy_dir, "policy.json"), {"default": REJECT})
    policy = load_policy(path)
    assert policy.source == path
    assert scope_of(policy, "docker://reg.example.com/x") == "default"


def test_hostile_policy_files_are_refused(policy_dir):
    real = write(os.path.join(policy_dir, "real.json"), {"default": ACCEPT})
    link = os.path.join(policy_dir, "link.json")
    os.symlink(real, link)
    with pytest.raises(ImageError) as e:
        load_policy(link)
    assert "is a symbolic link, which is not followed" in e.value.message
    fifo = os.path.join(policy_dir, "fifo.json")
    os.mkfifo(fifo)
    with pytest.raises(ImageError) as e:
        load_policy(fifo)  # never blocks
    assert "is not a regular file" in e.value.message
    loose = write(os.path.join(policy_dir, "loose.json"), {"default": ACCEPT}, mode=0o666)
    with pytest.raises(ImageError) as e:
        load_policy(loose)
    assert "writable by another user" in e.value.message
    foreign = write(os.path.join(policy_dir, "foreign.json"), {"default": ACCEPT})
    os.chown(foreign, 1000, 1000)
    with pytest.raises(ImageError) as e:
        load_policy(foreign)
    assert "owned or writable by another user" in e.value.message
    big = os.path.join(policy_dir, "big.json")
    with open(big, "wb") as f:
        f.write(b" " * (policy_module.MAX_POLICY + 1))
    with pytest.raises(ImageError) as e:
        load_policy(big)
    assert "is larger than" in e.value.message
    with pytest.raises(ImageError) as e:
        load_policy(os.path.join(policy_dir, "missing.json"))
    assert "No such file" in e.value.message
    with pytest.raises(ImageError) as e:
        load_policy("relative/policy.json")
    assert "must be an absolute path" in e.value.message
    shared = os.path.join(policy_dir, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    planted = write(os.path.join(shared, "policy.json"), {"default": ACCEPT})
    with pytest.raises(ImageError) as e:
        load_policy(planted)
    assert "in a directory another user can write" in e.value.message


def test_a_policy_path_that_is_a_directory_is_refused_naming_it(policy_dir):
    path = os.path.join(policy_dir, "policy.json")
    os.mkdir(path)
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ImageError) as e:
        load_policy(path)
    assert "the signature policy is not a regular file" in e.value.message
    assert e.value.path == path
    assert len(os.listdir("/proc/self/fd")) == fds  # no descriptor left open


# -- staging under a policy: file sources ---------------------------------------------------------

IMAGE = Image(compression="gzip")


@pytest.fixture
def image_layout(scratch):
    return IMAGE.write_layout(os.path.join(scratch, "layout"))


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_rejected_image_writes_nothing(home, image_layout, check_mode):
    store = LayerStore.for_check_run(home) if check_mode else LayerStore(home)
    with pytest.raises(ImageError) as e:
        stage_image(store, "oci:%s:v1" % image_layout, check_mode=check_mode,
                    policy=load_policy({"default": REJECT}))
    assert "refuses the image (scope default, reject)" in e.value.message
    assert layer_names(home) == []


def test_an_accepted_image_is_staged(home, image_layout):
    policy = load_policy({"default": REJECT, "transports": {"oci": {os.path.dirname(image_layout): ACCEPT}}})
    staged = stage_image(LayerStore(home), "oci:%s:v1" % image_layout, policy=policy)
    assert layer_names(home) == sorted(IMAGE.ids)
    assert staged.top == IMAGE.ids[-1]


class _NeedsSignatures:
    kind = "testSigned"
    needs_signatures = True

    def __init__(self, seen):
        self.seen = seen

    def check(self, target):
        self.seen.append(target)
        target.signatures.simple_signatures()


def test_a_signature_requirement_refuses_an_image_layout(home, image_layout, monkeypatch):
    seen = []
    monkeypatch.setitem(policy_module.VERIFIERS, "testSigned", lambda fields, where, image: _NeedsSignatures(seen))
    policy = load_policy({"default": [{"type": "testSigned"}]})
    assert policy.needs_signatures(parse_reference("oci:%s:v1" % image_layout))
    with pytest.raises(ImageError) as e:
        stage_image(LayerStore(home), "oci:%s:v1" % image_layout, policy=policy)
    assert "a oci: image carries no signatures, and the policy requires a signature for it" in e.value.message
    assert layer_names(home) == []
    assert seen[0].manifest_digest.startswith("sha256:") and seen[0].name is None


def test_the_module_reads_the_policy_before_the_home_is_made(scratch, image_layout, policy_dir):
    home = os.path.join(scratch, "home")
    params = {"src": "oci:%s:v1" % image_layout, "home": home, "uid_maps": [], "gid_maps": [], "platform": None,
              "validate_certs": True, "policy": os.path.join(policy_dir, "missing.json")}
    with pytest.raises(ImageError) as e:
        ImageManager(params)
    assert "cannot read the signature policy" in e.value.message
    params["policy"] = write(os.path.join(policy_dir, "policy.json"), {"default": REJECT})
    for check_mode in (True, False):
        with pytest.raises(ImageError) as e:
            ImageManager(params, check_mode=check_mode).run()
        assert "refuses the image" in e.value.message
        assert not os.path.exists(home)


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_an_image_the_controller_sent_is_judged_by_the_path_the_task_wrote(
        scratch, image_layout, policy_dir, check_mode):
    """The action plugin runs the module with src = the copy in a host temp dir, record_as = the task's src."""
    home = os.path.join(scratch, "home")
    params = {"src": "oci:%s:v1" % image_layout, "remote_src": True, "home": home, "uid_maps": [], "gid_maps": [],
              "platform": None, "validate_certs": True}
    params["policy"] = write(os.path.join(policy_dir, "untrusted.json"), {
        "default": ACCEPT, "transports": {"oci": {"/srv/untrusted": REJECT}}})
    with pytest.raises(ImageError) as e:
        ImageManager(dict(params, record_as="oci:/srv/untrusted/app:v1"), check_mode=check_mode).run()
    assert 'refuses the image (scope transports.oci["/srv/untrusted"], reject)' in e.value.message
    assert not os.path.exists(home)
    # the reverse: only /srv/images is trusted, and the copy's temporary path is not what is judged
    params["policy"] = write(os.path.join(policy_dir, "trusted.json"), {
        "default": REJECT, "transports": {"oci": {"/srv/images": ACCEPT}}})
    result = ImageManager(dict(params, record_as="oci:/srv/images/app:v1"), check_mode=check_mode).run()
    assert result["changed"]
    # an oci-archive the controller sent as an oci layout is judged as the oci-archive it was
    params["policy"] = write(os.path.join(policy_dir, "archives.json"), {
        "default": ACCEPT, "transports": {"oci-archive": {"": REJECT}}})
    with pytest.raises(ImageError) as e:
        ImageManager(dict(params, record_as="oci-archive:/srv/images/app.tar"), check_mode=check_mode).run()
    assert 'scope transports.oci-archive[""], reject' in e.value.message


# -- staging under a policy: a registry -----------------------------------------------------------

@pytest.fixture(scope="module")
def pushed():
    if have_tools() is not None:
        pytest.skip(have_tools())
    work = tempfile.mkdtemp(prefix="strata-policy-registry-")
    try:
        with registries(token=False, directory=os.path.join(work, "registries")) as regs:
            layout_dir = os.path.join(work, "layout")
            images = imagebuild.sample_images()
            imagebuild.write_oci_layout(layout_dir, {"base": images["base"]})
            digest = imagebuild.push(regs, "oci:%s:base" % layout_dir, "team/base", "v1")
            yield regs, images["base"], digest
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_rejected_registry_image_costs_no_blob_request(pushed, home, check_mode):
    regs, _image, digest = pushed
    policy = load_policy({"default": ACCEPT, "transports": {"docker": {regs.basic.host + "/team": REJECT}}})
    mark = regs.basic.log_mark()
    store = LayerStore.for_check_run(home) if check_mode else LayerStore(home)
    with pytest.raises(ImageError) as e:
        stage_image(store, regs.basic.ref("team/base", "v1"), registry_auth=regs.auth, ca_path=regs.pki.ca_crt,
                    check_mode=check_mode, policy=policy)
    assert 'scope transports.docker["%s/team"], reject' % regs.basic.host in e.value.message
    assert digest in e.value.message
    assert regs.basic.requests(mark, kind="blobs") == []
    assert layer_names(home) == []


def test_an_accepted_registry_image_is_staged(pushed, home):
    regs, image, _digest = pushed
    policy = load_policy({"default": REJECT, "transports": {"docker": {
        regs.basic.host + "/team/base:v1": ACCEPT, regs.basic.host: REJECT}}})
    staged = stage_image(LayerStore(home), regs.basic.ref("team/base", "v1"), registry_auth=regs.auth,
                         ca_path=regs.pki.ca_crt, policy=policy)
    assert staged.top == image.chain_ids[-1]


@pytest.mark.parametrize("accepted", ["docker.io", "pulled"])
def test_a_short_name_is_judged_by_the_name_its_alias_pulls(pushed, home, scratch, accepted):
    """containers/image judges the name a short name resolves to: an alias to the local registry is not
    docker.io's image, whatever docker.io's scope says."""
    regs, image, _digest = pushed
    conf = os.path.join(scratch, "registries.conf")
    with open(conf, "w") as f:
        f.write('[aliases]\n"myapp" = "%s/team/base"\n' % regs.basic.host)
    scope = "docker.io" if accepted == "docker.io" else regs.basic.host + "/team/base"
    policy = load_policy({"default": REJECT, "transports": {"docker": {scope: ACCEPT}}})

    def stage():
        return stage_image(LayerStore(home), "docker://myapp:v1", registry_auth=regs.auth, ca_path=regs.pki.ca_crt,
                           registries_conf=conf, registries_conf_d=os.path.join(scratch, "none"), policy=policy)

    if accepted == "docker.io":
        with pytest.raises(ImageError) as e:
            stage()
        assert "(scope default, reject)" in e.value.message
        assert layer_names(home) == []
    else:
        assert stage().top == image.chain_ids[-1]
