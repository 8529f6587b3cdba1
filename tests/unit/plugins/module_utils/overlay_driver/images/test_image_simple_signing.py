"""signedBy: GPG simple signing, with signatures skopeo made and a registries.d lookaside, against a real registry.

The keys are made here (gpg --quick-gen-key in a temporary GNUPGHOME); skopeo pushes the
images to the docker-registry of tests/registry.py and writes the signatures into a
file:// lookaside named by a registries.d file, as an operator's signing pipeline does.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import simple_signing
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.network import Network
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.policy import (
    PolicyDenied, Target, load_policy)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.reference import parse_reference
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.signed_identity import (
    DEFAULT_IDENTITY)
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
from connect_proxy import ConnectProxy
from layertools import layer_names
from lookaside_server import LookasideServer
from registry import have_tools, registries

pytestmark = pytest.mark.skipif(have_tools() is not None or shutil.which("gpg") is None,
                                reason=str(have_tools() or "gpg is not installed"))


class Key:
    """A GPG signing key made for the run: its GNUPGHOME, fingerprint and exported public key file."""

    def __init__(self, directory, name):
        self.home = os.path.join(directory, "gnupg-" + name)
        os.mkdir(self.home, 0o700)
        self.env = dict(os.environ, GNUPGHOME=self.home)
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "%s <%s@example.com>" % (name, name),
                        "ed25519", "sign", "never"], env=self.env, check=True, capture_output=True)
        listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys"], env=self.env, check=True,
                                 capture_output=True, text=True).stdout
        self.fingerprint = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")][0]
        self.public = subprocess.run(["gpg", "--batch", "--export", self.fingerprint], env=self.env, check=True,
                                     capture_output=True).stdout
        self.path = os.path.join(directory, name + ".gpg")
        with open(self.path, "wb") as f:
            f.write(self.public)

    def stop(self):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], env=self.env, check=False,
                       capture_output=True)


class Signed:
    """The module's registry, keys, lookaside and images: digests by name."""

    def __init__(self, work, regs):
        self.work = work
        self.regs = regs
        self.trust = os.path.join(work, "trust")  # the keys, the policies, registries.d: root's alone
        os.mkdir(self.trust, 0o700)
        self.lookaside = os.path.join(work, "lookaside")
        self.signing_d = os.path.join(work, "signing.d")  # skopeo's: where it writes signatures
        self.registries_d = os.path.join(self.trust, "registries.d")  # ours: where they are read
        for directory in (self.signing_d, self.registries_d):
            os.mkdir(directory, 0o700)
        with open(os.path.join(self.signing_d, "test.yaml"), "w", encoding="utf-8") as f:
            f.write("docker:\n  %s:\n    lookaside-staging: file://%s\n" % (regs.basic.host, self.lookaside))
        with open(os.path.join(self.registries_d, "test.yaml"), "w", encoding="utf-8") as f:
            f.write("# the test's lookaside\ndocker:\n  %s:\n    lookaside: file://%s\n"
                    % (regs.basic.host, self.lookaside))
        self.keys = {}
        self.digests = {}
        self.images = imagebuild.sample_images()
        self.layout = os.path.join(work, "layout")
        imagebuild.write_oci_layout(self.layout, {"base": self.images["base"], "app": self.images["app"],
                                                  "multi": self.images["multi"]})

    def push(self, image, repo, tag, key=None, all_platforms=False):
        fd, digest_file = tempfile.mkstemp(dir=self.work)
        os.close(fd)
        cmd = ["skopeo", "--insecure-policy", "--registries.d", self.signing_d, "copy", "--quiet", "--digestfile",
               digest_file, "--dest-cert-dir", self.regs.pki.cert_dir, "--dest-creds", self.regs.creds]
        if key is not None:
            cmd += ["--sign-by", key.fingerprint]
        if all_platforms:
            cmd += ["--all"]
        cmd += ["oci:%s:%s" % (self.layout, image), self.regs.basic.ref(repo, tag)]
        subprocess.run(cmd, env=key.env if key else None, check=True, capture_output=True, timeout=600)
        with open(digest_file, encoding="ascii") as f:
            self.digests[(repo, tag)] = f.read().strip()
        return self.digests[(repo, tag)]

    def signature_dir(self, repo, digest):
        return os.path.join(self.lookaside, "%s@%s" % (repo, digest.replace(":", "=")))

    def policy(self, requirements, scope=None):
        """A policy file in the trusted directory: requirements for the registry (or scope), reject elsewhere."""
        path = os.path.join(self.trust, "policy.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"default": [{"type": "reject"}],
                       "transports": {"docker": {scope or self.regs.basic.host: requirements}}}, f)
        return path

    def signed_by(self, key="a", **extra):
        return [dict({"type": "signedBy", "keyType": "GPGKeys", "keyPath": self.keys[key].path}, **extra)]


@pytest.fixture(scope="module")
def signed():
    work = tempfile.mkdtemp(prefix="strata-signing-")
    keys = []
    try:
        with registries(token=False, directory=os.path.join(work, "registries")) as regs:
            out = Signed(work, regs)
            for name in ("a", "b"):
                keys.append(Key(out.trust, name))
                out.keys[name] = keys[-1]
            out.push("base", "team/base", "v1", out.keys["a"])
            out.push("base", "team/base", "v2")  # the same manifest, its signature says v1
            out.push("base", "team/by-b", "v1", out.keys["b"])
            out.push("app", "team/plain", "v1")
            out.push("app", "team/forged", "v1")
            out.push("multi", "team/multi", "v1", out.keys["a"], all_platforms=True)  # the index is signed
            # the good signature of base, copied to where the lookaside has app's
            forged = out.signature_dir("team/forged", out.digests[("team/forged", "v1")])
            os.makedirs(forged)
            shutil.copyfile(os.path.join(out.signature_dir("team/base", out.digests[("team/base", "v1")]),
                                         "signature-1"), os.path.join(forged, "signature-1"))
            yield out
    finally:
        for key in keys:
            key.stop()
        shutil.rmtree(work, ignore_errors=True)


def stage(signed, home, repo, tag, policy, check_mode=False, **kw):
    store = LayerStore.for_check_run(home) if check_mode and os.path.isdir(home) else \
        None if check_mode else LayerStore(home)
    kw.setdefault("registries_d", signed.registries_d)
    return stage_image(store, signed.regs.basic.ref(repo, tag), registry_auth=signed.regs.auth,
                       ca_path=signed.regs.pki.ca_crt, policy=policy, check_mode=check_mode, **kw)


def refused(signed, home, repo, tag, policy, **kw):
    mark = signed.regs.basic.log_mark()
    before = layer_names(home)
    with pytest.raises(ImageError) as e:
        stage(signed, home, repo, tag, policy, **kw)
    assert signed.regs.basic.requests(mark, kind="blobs") == []  # neither the config nor a layer
    assert layer_names(home) == before
    return e.value.message


# -- the cases skopeo's signatures make ------------------------------------------------------------

@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_good_signature_is_accepted(signed, home, check_mode):
    staged = stage(signed, home, "team/base", "v1", signed.policy(signed.signed_by()), check_mode=check_mode)
    assert staged.top == signed.images["base"].chain_ids[-1]
    assert staged.manifest_digest == signed.digests[("team/base", "v1")]
    assert layer_names(home) == ([] if check_mode else sorted(signed.images["base"].chain_ids))


def test_a_pull_by_digest_matches_the_signed_repository(signed, home):
    digest = signed.digests[("team/base", "v1")]
    staged = stage(signed, home, "team/base", digest, signed.policy(signed.signed_by()))
    assert staged.manifest_digest == digest


@pytest.mark.parametrize("signed_manifests", ["all", "index", "platform", "none"])
def test_a_multi_platform_image_is_signed_by_its_manifest_or_its_index(signed, home, signed_manifests):
    """skopeo --all signs the index and every platform's manifest; cosign signs only the index."""
    index = signed.digests[("team/multi", "v1")]
    arm64 = signed.images["multi"].images[1]
    platform_digest = [name.split("@", 1)[1].replace("=", ":") for name in os.listdir(os.path.join(signed.lookaside, "team"))
                       if name.startswith("multi@") and not name.endswith(".hidden")]
    platform_digest.remove(index)
    assert len(platform_digest) == 2
    hidden = []
    if signed_manifests in ("index", "none"):
        hidden += platform_digest
    if signed_manifests in ("platform", "none"):
        hidden.append(index)
    for digest in hidden:
        os.rename(signed.signature_dir("team/multi", digest), signed.signature_dir("team/multi", digest) + ".hidden")
    try:
        policy = signed.policy(signed.signed_by())
        if signed_manifests == "none":
            message = refused(signed, home, "team/multi", "v1", policy, platform="linux/arm64")
            assert "the image has no simple signing signature" in message and "and for the index %s" % index in message
            return
        staged = stage(signed, home, "team/multi", "v1", policy, platform="linux/arm64")
        assert staged.manifest_digest in platform_digest
        assert staged.top == arm64.chain_ids[-1]
    finally:
        for digest in hidden:
            os.rename(signed.signature_dir("team/multi", digest) + ".hidden", signed.signature_dir("team/multi", digest))


def test_the_module_takes_the_policy_and_registries_d(signed, scratch):
    home = os.path.join(scratch, "home")
    params = {"src": signed.regs.basic.ref("team/by-b", "v1"), "home": home, "uid_maps": [], "gid_maps": [],
              "platform": None, "registry_auth": signed.regs.auth, "validate_certs": True,
              "ca_path": signed.regs.pki.ca_crt, "policy": signed.policy(signed.signed_by("a")),
              "registries_d": signed.registries_d}
    with pytest.raises(ImageError) as e:
        ImageManager(params, check_mode=True).run()
    assert "which is not among the policy's keys" in e.value.message
    assert not os.path.exists(home)
    params["policy"] = signed.policy(signed.signed_by("b"))
    assert ImageManager(params).run()["changed"] is True


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_a_signature_by_another_key_is_refused(signed, home, check_mode):
    message = refused(signed, home, "team/by-b", "v1", signed.policy(signed.signed_by("a")), check_mode=check_mode)
    assert "signedBy): no signature is accepted (signature 1: signed by key" in message
    assert "which is not among the policy's keys" in message
    # the same image under a policy that names that key
    assert stage(signed, home, "team/by-b", "v1", signed.policy(signed.signed_by("b"))).top


def test_a_signature_for_another_digest_is_refused(signed, home):
    message = refused(signed, home, "team/forged", "v1", signed.policy(signed.signed_by()))
    assert "it signs manifest %s, not %s, the one pulled" % (signed.digests[("team/base", "v1")],
                                                             signed.digests[("team/forged", "v1")]) in message


def test_an_unsigned_image_is_refused_under_signed_by(signed, home):
    message = refused(signed, home, "team/plain", "v1", signed.policy(signed.signed_by()))
    assert "the image has no simple signing signature in the lookaside file://%s" % signed.lookaside in message


def test_an_unsigned_image_is_refused_under_reject_and_allowed_by_its_scope(signed, home):
    policy = signed.policy([{"type": "reject"}])
    assert "reject" in refused(signed, home, "team/plain", "v1", policy)
    with open(policy, "w", encoding="utf-8") as f:
        json.dump({"default": [{"type": "reject"}], "transports": {"docker": {
            signed.regs.basic.host: signed.signed_by(),
            signed.regs.basic.host + "/team/plain": [{"type": "insecureAcceptAnything"}]}}}, f)
    assert stage(signed, home, "team/plain", "v1", policy).top == signed.images["app"].chain_ids[-1]


# -- an https lookaside, reached as operators run it ------------------------------------------------

def test_an_https_lookaside_is_reached_through_the_proxy_with_its_certs_d_and_no_registry_credentials(
        signed, home, scratch):
    """The registry is trusted by ca_path and reached directly (no_proxy); the lookaside, another host whose
    certificate another private CA signed, is trusted by its own certs.d directory and reached through the
    task's proxy. The registry's credentials go to the registry alone."""
    key, crt = signed.regs.pki.self_signed_server()  # signed by other_ca, which ca_path does not name
    lookaside = LookasideServer(signed.lookaside, tls=(crt, key)).start()
    proxy = ConnectProxy().start()
    registries_d = os.path.join(signed.trust, "https.d")
    certs_d = os.path.join(scratch, "certs.d")
    try:
        os.mkdir(registries_d, 0o700)
        with open(os.path.join(registries_d, "x.yaml"), "w", encoding="utf-8") as f:
            f.write("docker:\n  %s:\n    lookaside: %s\n" % (signed.regs.basic.host, lookaside.url))
        os.makedirs(os.path.join(certs_d, lookaside.netloc))
        shutil.copyfile(signed.regs.pki.other_ca_crt, os.path.join(certs_d, lookaside.netloc, "ca.crt"))
        network = Network(proxy=proxy.url, no_proxy=signed.regs.basic.host, environ={})
        policy = signed.policy(signed.signed_by())
        staged = stage(signed, home, "team/base", "v1", policy, registries_d=registries_d, network=network,
                       certs_dirs=[certs_d])
        assert staged.manifest_digest == signed.digests[("team/base", "v1")]
        assert [line.split(" ")[:2] for line in proxy.lines] == [["CONNECT", lookaside.netloc]] * 2  # -1, then -2's 404
        assert len(lookaside.requests) == 2
        assert all(name.lower() not in ("authorization", "proxy-authorization")
                   for _path, headers in lookaside.requests for name in headers)
        # without the lookaside's certs.d directory: refused, naming the lookaside and its CA problem
        os.rename(os.path.join(certs_d, lookaside.netloc), os.path.join(certs_d, "elsewhere.example"))
        message = refused(signed, os.path.join(scratch, "home2"), "team/base", "v1", policy,
                          registries_d=registries_d, network=network, certs_dirs=[certs_d])
        assert "the TLS certificate of the lookaside %s does not verify" % lookaside.netloc in message
    finally:
        proxy.stop()
        lookaside.stop()
        shutil.rmtree(registries_d, ignore_errors=True)


# -- signedIdentity --------------------------------------------------------------------------------

def test_a_tag_the_signature_does_not_name_is_refused_unless_the_identity_allows_it(signed, home):
    message = refused(signed, home, "team/base", "v2", signed.policy(signed.signed_by()))
    assert "it names %s/team/base:v1, which signedIdentity matchRepoDigestOrExact does not accept for " \
        "%s/team/base:v2" % (signed.regs.basic.host, signed.regs.basic.host) in message
    by_repository = signed.signed_by(signedIdentity={"type": "matchRepository"})
    assert stage(signed, home, "team/base", "v2", signed.policy(by_repository)).top


def test_a_tag_and_digest_is_matched_whole_as_containers_image_does(signed, home):
    """team/base:v2 is v1's manifest, signed as v1 only: pinning v2 by that digest does not make v1's signature
    its own (it did when a digest meant comparing repositories alone); the digest alone still does."""
    digest = signed.digests[("team/base", "v1")]
    policy = signed.policy(signed.signed_by())
    for tag in ("v2", "v1"):  # containers/image compares a tagged name whole: "...:v1" is not "...:v1@sha256:..."
        message = refused(signed, home, "team/base", "%s@%s" % (tag, digest), policy)
        assert "it names %s/team/base:v1, which signedIdentity matchRepoDigestOrExact does not accept for " \
            "%s/team/base:%s@%s" % (signed.regs.basic.host, signed.regs.basic.host, tag, digest) in message
        assert "pull by the digest alone" in message
    assert stage(signed, home, "team/base", digest, policy).manifest_digest == digest


def test_exact_identities_and_remapping(signed, home):
    host = signed.regs.basic.host
    exact = signed.signed_by(signedIdentity={"type": "exactReference", "dockerReference": host + "/team/base:v1"})
    assert stage(signed, home, "team/base", "v2", signed.policy(exact)).top
    other = signed.signed_by(signedIdentity={"type": "exactRepository", "dockerRepository": host + "/team/app"})
    assert "exactRepository %s/team/app does not accept" % host in refused(signed, home, "team/base", "v1",
                                                                           signed.policy(other))
    # by-b holds base's manifest signed as team/by-b:v1: remapped, team/base is read as team/by-b
    remap = signed.signed_by("b", signedIdentity={"type": "remapIdentity", "prefix": host + "/team/base",
                                                  "signedPrefix": host + "/team/by-b"})
    policy = signed.policy(remap)
    registries_d = os.path.join(signed.trust, "by-b.d")
    os.mkdir(registries_d, 0o700)
    try:
        with open(os.path.join(registries_d, "x.yaml"), "w", encoding="utf-8") as f:
            f.write("docker:\n  %s/team/base:\n    lookaside: file://%s/by-b-as-base\n" % (host, signed.work))
        digest = signed.digests[("team/base", "v1")]
        target = os.path.join(signed.work, "by-b-as-base", "team", "base@" + digest.replace(":", "="))
        os.makedirs(target)
        shutil.copyfile(os.path.join(signed.signature_dir("team/by-b", digest), "signature-1"),
                        os.path.join(target, "signature-1"))
        staged = stage_image(LayerStore(home), signed.regs.basic.ref("team/base", digest),
                             registry_auth=signed.regs.auth, ca_path=signed.regs.pki.ca_crt, policy=policy,
                             registries_d=registries_d)
        assert staged.manifest_digest == digest
    finally:
        shutil.rmtree(registries_d)
        shutil.rmtree(os.path.join(signed.work, "by-b-as-base"), ignore_errors=True)


def test_key_data_and_key_paths(signed, home):
    data = signed.signed_by()
    del data[0]["keyPath"]
    data[0]["keyData"] = base64.b64encode(signed.keys["a"].public).decode()
    assert stage(signed, home, "team/base", "v1", signed.policy(data)).top
    paths = signed.signed_by()
    del paths[0]["keyPath"]
    paths[0]["keyPaths"] = [signed.keys["b"].path, signed.keys["a"].path]
    assert stage(signed, home, "team/base", "v1", signed.policy(paths)).top


# -- what cannot verify, fails -----------------------------------------------------------------------

def test_a_host_without_gpg_refuses_rather_than_passes(signed, home, monkeypatch):
    monkeypatch.setattr(simple_signing, "gpg_program", lambda: None)
    message = refused(signed, home, "team/base", "v1", signed.policy(signed.signed_by()))
    assert "signedBy needs the gpg program to verify signatures, and this host has none" in message


def test_garbage_signatures_and_keys_are_refused(signed, home):
    digest = signed.digests[("team/plain", "v1")]
    directory = signed.signature_dir("team/plain", digest)
    os.makedirs(directory)
    try:
        with open(os.path.join(directory, "signature-1"), "wb") as f:
            f.write(b"not an OpenPGP message")
        message = refused(signed, home, "team/plain", "v1", signed.policy(signed.signed_by()))
        assert "signature 1: gpg found 0 valid signatures in it, not one" in message
        os.unlink(os.path.join(directory, "signature-1"))
        os.symlink(os.path.join(signed.signature_dir("team/base", signed.digests[("team/base", "v1")]),
                                "signature-1"), os.path.join(directory, "signature-1"))
        assert "Too many levels of symbolic links" in refused(signed, home, "team/plain", "v1",
                                                              signed.policy(signed.signed_by()))
    finally:
        shutil.rmtree(directory)
    not_a_key = os.path.join(signed.trust, "not-a-key.gpg")
    with open(not_a_key, "wb") as f:
        f.write(b"garbage")
    policy = signed.policy([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": not_a_key}])
    message = refused(signed, home, "team/base", "v1", policy)
    assert "the policy's keys hold no OpenPGP public key gpg can import" in message


def test_a_compressed_message_cannot_make_gpg_write_more_than_the_payload_bound(signed):
    """A few KB of compressed literal data decompress to 16 times MAX_PAYLOAD: gpg is stopped at the bound."""
    key = signed.keys["a"]
    size = 16 * simple_signing.MAX_PAYLOAD
    with subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE) as zeros:
        bomb = subprocess.run(["gpg", "--batch", "--store", "--compress-algo", "zlib", "-z", "9"], env=key.env,
                              stdin=zeros.stdout, check=True, capture_output=True).stdout
    assert len(bomb) < size // 100
    with simple_signing.GpgHome(simple_signing.gpg_program(), [key.public]) as gpg_home:
        with pytest.raises(simple_signing.PolicyDenied) as e:
            gpg_home.verify(bomb)
        written = [os.path.getsize(os.path.join(top, name))
                   for top, _dirs, names in os.walk(gpg_home.dir) for name in names]
    assert "gpg wrote more than %d bytes (the signed content)" % simple_signing.MAX_PAYLOAD in e.value.reason
    assert max(written) < simple_signing.MAX_PAYLOAD


@pytest.mark.parametrize("fields, fragment", [
    ({"keyType": "GPGKeys"}, "exactly one of keyPath, keyPaths and keyData"),
    ({"keyType": "GPGKeys", "keyPath": "/a", "keyData": "eA=="}, "exactly one of keyPath, keyPaths and keyData"),
    ({"keyType": "X509Certificates", "keyPath": "/a"}, "keyType X509Certificates is not supported"),
    ({"keyType": "PGP", "keyPath": "/a"}, "signedBy needs keyType, one of"),
    ({"keyType": "GPGKeys", "keyPath": "relative"}, "keyPath must be an absolute path"),
    ({"keyType": "GPGKeys", "keyPaths": []}, "keyPaths must be a non-empty list of absolute paths"),
    ({"keyType": "GPGKeys", "keyData": "not base64!"}, "keyData must be the base64 of the keys"),
    ({"keyType": "GPGKeys", "keyPath": "/a", "keyId": "x"}, "signedBy takes no key 'keyId'"),
    ({"keyType": "GPGKeys", "keyPath": "/a", "signedIdentity": {"type": "x"}}, "signedIdentity type 'x'"),
    ({"keyType": "GPGKeys", "keyPath": "/a",
      "signedIdentity": {"type": "exactReference", "dockerReference": "reg.example.com/a"}},
     "is not a reference with a tag or digest"),
    ({"keyType": "GPGKeys", "keyPath": "/a", "signedIdentity": {"type": "matchExact", "x": 1}},
     "signedIdentity matchExact takes no key 'x'"),
])
def test_a_malformed_signed_by_is_refused(fields, fragment):
    with pytest.raises(ImageError) as e:
        load_policy({"default": [dict(fields, type="signedBy")]})
    assert fragment in e.value.message


# -- the signed document, read by the payload reader sigstore's payloads go through too -------------------

def _document(**critical):
    value = {"critical": {"type": "atomic container signature", "image": {"docker-manifest-digest": "sha256:" + "a" * 64},
                          "identity": {"docker-reference": "reg.example.com/team/app:v1"}}, "optional": {}}
    value["critical"].update(critical)
    return value


@pytest.mark.parametrize("data, fragment", [
    (json.dumps(_document()).encode(), None),
    (json.dumps(_document(type="cosign container image signature")).encode(), "critical.type is 'cosign container"),
    (json.dumps(_document(extra=1)).encode(), "critical has the keys"),
    (json.dumps(dict(_document(), optional=None)).encode(), "optional is not an object"),
    (json.dumps(_document()).replace('"optional"', '"critical": {}, "optional"', 1).encode(), "appears twice"),
    (b"not json", "the payload is not JSON"),
    (json.dumps(_document(image={"docker-manifest-digest": "sha256:" + "b" * 64})).encode(),
     "it signs manifest sha256:%s, not sha256:%s, the one pulled" % ("b" * 64, "a" * 64)),
    (json.dumps(_document(identity={"docker-reference": "reg.example.com/team/app:v2"})).encode(),
     "it names reg.example.com/team/app:v2, which signedIdentity matchRepoDigestOrExact does not accept"),
])
def test_the_signed_document_is_read_strictly(data, fragment):
    target = Target(parse_reference("docker://reg.example.com/team/app:v1"), "sha256:" + "a" * 64, None)
    if fragment is None:
        simple_signing.check_payload(data, target, DEFAULT_IDENTITY)
        return
    with pytest.raises(PolicyDenied) as e:
        simple_signing.check_payload(data, target, DEFAULT_IDENTITY)
    assert fragment in e.value.reason
