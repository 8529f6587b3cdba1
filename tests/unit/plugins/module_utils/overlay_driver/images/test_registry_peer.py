"""Staging images from a real registry, with containers-storage as the reference for the result.

The registry is Debian's docker-registry over TLS (a CA made by the test), once
with htpasswd auth and once with a token server, so both Basic and the Bearer
flow are the real ones (tests/registry.py). The images are built here and
pushed with skopeo, gzip and zstd (tests/imagebuild.py). The peer is skopeo
pulling the same image into a private containers-storage graph: a writable
layer on strata's top layer must show exactly what containers-storage's mount
of that image shows, entry by entry.
"""

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import urllib.error

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
from layertools import layer_names, read_in_layer
from registry import SERVICE, Registry, have_tools, registries

pytestmark = [pytest.mark.peer, pytest.mark.skipif(have_tools() is not None, reason=str(have_tools()))]


# -- the registries and the images in them (once per module: pushing is the slow part) ------------

class Pushed:
    """What the module's registries hold: images by name, manifest digests by (registry, repo, tag)."""

    def __init__(self, regs, images):
        self.regs = regs
        self.images = images
        self.digests = {}

    def push(self, layout, name, tag, compression, registry, all_platforms=False, fmt=None):
        digest = imagebuild.push(self.regs, "oci:%s:%s" % (layout, name), name, tag, compression=compression,
                                 all_platforms=all_platforms, fmt=fmt, registry=registry)
        self.digests[(registry.host, name, tag)] = digest
        return digest


@pytest.fixture(scope="module")
def pushed():
    work = tempfile.mkdtemp(prefix="strata-registry-images-")
    try:
        with registries(directory=os.path.join(work, "registries")) as regs:
            images = imagebuild.sample_images()
            layout = os.path.join(work, "layout")
            imagebuild.write_oci_layout(layout, images)
            out = Pushed(regs, images)
            for registry in (regs.basic, regs.token):
                for name in ("base", "app"):
                    out.push(layout, name, "gzip", "gzip", registry)
                    out.push(layout, name, "zstd", "zstd", registry)
                out.push(layout, "multi", "latest", "gzip", registry, all_platforms=True)
                # Docker's own media types: a v2 schema 2 manifest, and a manifest list
                out.push(layout, "base", "v2s2", "gzip", registry, fmt="v2s2")
                out.push(layout, "multi", "v2s2", "gzip", registry, all_platforms=True, fmt="v2s2")
            yield out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stage(pushed, home, src, auth="default", ca="default", **kw):
    """stage_image as the module calls it, with the test registries' credentials and CA by default.

    As the module does, check mode gets no store when the home does not exist yet.
    """
    regs = pushed.regs
    kw.setdefault("registry_auth", regs.auth if auth == "default" else auth)
    kw.setdefault("ca_path", regs.pki.ca_crt if ca == "default" else ca)
    store = None if kw.get("check_mode") and not os.path.isdir(home) else LayerStore(home)
    return stage_image(store, src, **kw)


def assert_staged(home, result, image, manifest_digest):
    chain = image.chain_ids
    assert [layer.id for layer in result.layers] == chain
    assert [layer.diff_id for layer in result.layers] == image.diff_ids
    assert result.top == chain[-1]
    assert result.manifest_digest == manifest_digest
    for layer in result.layers:
        assert layer.digest.startswith("sha256:") and layer.size > 0
    for key, value in image.runtime_config.items():
        assert result.config.get(key) == value, key
    assert layer_names(home) == sorted(chain)
    store = LayerStore(home)
    for layer_id, diff_id in zip(chain, image.diff_ids):
        assert store.record(layer_id).diff_id == diff_id


# -- the harness itself: the auth flows are the real ones ----------------------------------------

def test_registries_challenge_for_basic_and_bearer(pushed):
    regs = pushed.regs
    with pytest.raises(urllib.error.HTTPError) as basic:
        regs.basic.v2("")
    assert basic.value.code == 401
    assert basic.value.headers["WWW-Authenticate"].startswith("Basic ")
    with pytest.raises(urllib.error.HTTPError) as bearer:
        regs.token.v2("")
    assert bearer.value.code == 401
    challenge = bearer.value.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and regs.tokens.realm in challenge
    # The registry itself never takes Basic credentials in token mode.
    with pytest.raises(urllib.error.HTTPError) as refused:
        regs.token.v2("base/manifests/gzip", basic=(regs.USER, regs.PASSWORD))
    assert refused.value.code == 401


def test_a_registry_that_cannot_start_is_reported_and_leaves_no_process(pushed, scratch):
    broken = Registry(pushed.regs.pki, os.path.join(scratch, "broken"), None,
                      tls_cert=os.path.join(scratch, "missing.crt"), tls_key=os.path.join(scratch, "missing.key"))
    with pytest.raises(RuntimeError) as err:
        broken.start(timeout=10)
    assert "exited" in str(err.value) and "missing.crt" in str(err.value)
    assert broken.proc is None


def test_zstd_push_is_zstd(pushed):
    regs = pushed.regs
    accept = imagebuild.OCI_MANIFEST
    with regs.basic.v2("base/manifests/zstd", basic=(regs.USER, regs.PASSWORD), accept=accept) as r:
        manifest = json.load(r)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {imagebuild.OCI_LAYER["zstd"]}
    with regs.basic.v2("base/manifests/gzip", basic=(regs.USER, regs.PASSWORD), accept=accept) as r:
        gz = json.load(r)
    assert all(layer["mediaType"].endswith("gzip") for layer in gz["layers"])
    assert not {layer["digest"] for layer in gz["layers"]} & {layer["digest"] for layer in manifest["layers"]}


# -- pulls ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["basic", "token"])
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_pull_by_tag(pushed, home, which, compression):
    registry = getattr(pushed.regs, which)
    mark = registry.log_mark()
    result = stage(pushed, home, registry.ref("base", compression))
    assert result.changed is True
    assert all(layer.changed for layer in result.layers)
    assert_staged(home, result, pushed.images["base"], pushed.digests[(registry.host, "base", compression)])
    assert len(registry.blob_gets(mark)) == 3  # two layers and the config, each once


@pytest.mark.parametrize("which", ["basic", "token"])
def test_pull_by_digest(pushed, home, which):
    registry = getattr(pushed.regs, which)
    digest = pushed.digests[(registry.host, "app", "zstd")]
    mark = registry.log_mark()
    result = stage(pushed, home, registry.ref("app", digest))
    assert_staged(home, result, pushed.images["app"], digest)
    manifests = registry.requests(mark, method="GET", kind="manifests")
    assert any(path.endswith("/manifests/" + digest) for _m, path, _s in manifests)


@pytest.mark.parametrize("which", ["basic", "token"])
def test_docker_manifest_and_manifest_list(pushed, home, scratch, which):
    registry = getattr(pushed.regs, which)
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    with registry.v2("base/manifests/v2s2", accept=accept, token=_pull_token(pushed, registry, "base"),
                     basic=None if which == "token" else (pushed.regs.USER, pushed.regs.PASSWORD)) as r:
        assert r.headers["Content-Type"] == accept
    result = stage(pushed, home, registry.ref("base", "v2s2"))
    assert_staged(home, result, pushed.images["base"], pushed.digests[(registry.host, "base", "v2s2")])
    arm64 = pushed.images["multi"].images[1]
    result = stage(pushed, os.path.join(scratch, "arm64"), registry.ref("multi", "v2s2"), platform="linux/arm64/v8")
    assert result.top == arm64.chain_ids[-1]


def _pull_token(pushed, registry, repo):
    if registry.auth != "token":
        return None
    return pushed.regs.tokens.issue(pushed.regs.USER, SERVICE, ["repository:%s:pull" % repo])


def test_token_is_reused_within_a_run(pushed, home):
    regs = pushed.regs
    before = len(regs.tokens.issued)
    stage(pushed, home, regs.token.ref("app", "gzip"))
    issued = regs.tokens.issued[before:]
    assert issued, "the Bearer flow was used"
    assert all(user == regs.USER for user, _scopes in issued)
    scopes = [scopes for _user, scopes in issued]
    assert len(scopes) == len(set(scopes)), "one token per scope, reused for every blob: %s" % scopes


@pytest.mark.parametrize("which", ["basic", "token"])
def test_pull_with_an_auth_file(pushed, home, scratch, which):
    """Credentials from a containers auth.json, as podman login and skopeo login write it."""
    regs = pushed.regs
    registry = getattr(regs, which)
    auth_file = os.path.join(scratch, "auth.json")
    with open(auth_file, "w", encoding="ascii") as f:
        json.dump({"auths": {registry.host: {"auth": base64.b64encode(regs.creds.encode()).decode()}}}, f)
    result = stage(pushed, home, registry.ref("base", "gzip"), auth={"auth_file": auth_file})
    assert result.top == pushed.images["base"].chain_ids[-1]


def test_the_index_picks_the_host_platform_or_the_one_asked(pushed, home, scratch):
    regs = pushed.regs
    amd64, arm64 = pushed.images["multi"].images
    assert os.uname().machine == "x86_64", "the default platform of this test is linux/amd64"
    result = stage(pushed, home, regs.basic.ref("multi"))
    assert result.top == amd64.chain_ids[-1]
    assert read_in_layer(home, result.top, "etc/arch") == "amd64\n"
    other = os.path.join(scratch, "home-arm64")
    result = stage(pushed, other, regs.token.ref("multi"), platform="linux/arm64")
    assert result.top == arm64.chain_ids[-1]
    assert read_in_layer(other, result.top, "etc/arch") == "arm64\n"
    # The base layer is the same in both platforms' images: the same ChainID.
    assert amd64.chain_ids[0] == arm64.chain_ids[0]


def test_a_platform_the_index_lacks_is_a_clear_error(pushed, home):
    regs = pushed.regs
    with pytest.raises(OverlayError) as err:
        stage(pushed, home, regs.basic.ref("multi"), platform="linux/s390x")
    message = str(err.value)
    assert "linux/s390x" in message and regs.basic.host + "/multi" in message
    assert layer_names(home) == []


def test_shared_base_is_stored_once_and_fetched_once(pushed, home):
    regs = pushed.regs
    base, app = pushed.images["base"], pushed.images["app"]
    stage(pushed, home, regs.basic.ref("base", "gzip"))
    mark = regs.basic.log_mark()
    result = stage(pushed, home, regs.basic.ref("app", "gzip"))
    assert result.changed is True
    assert [layer.changed for layer in result.layers] == [False, False, True]
    assert layer_names(home) == sorted(app.chain_ids)
    assert app.chain_ids[:2] == base.chain_ids
    fetched = {path.rsplit("/", 1)[1] for _m, path, _s in regs.basic.blob_gets(mark)}
    gz_layers = set(l_.digest for l_ in result.layers)
    assert fetched & gz_layers == {result.layers[2].digest}, "only the app's own layer is fetched"


def test_same_diff_ids_in_another_compression_fetch_no_layer(pushed, home):
    regs = pushed.regs
    stage(pushed, home, regs.basic.ref("base", "gzip"))
    mark = regs.basic.log_mark()
    result = stage(pushed, home, regs.basic.ref("base", "zstd"))
    assert result.changed is False
    layer_digests = {layer.digest for layer in result.layers}
    fetched = {path.rsplit("/", 1)[1] for _m, path, _s in regs.basic.blob_gets(mark)}
    assert not fetched & layer_digests


@pytest.mark.parametrize("which", ["basic", "token"])
def test_staging_again_is_unchanged_and_fetches_no_layer(pushed, home, which):
    registry = getattr(pushed.regs, which)
    first = stage(pushed, home, registry.ref("app", "gzip"))
    tree = _tree_stat(home)
    mark = registry.log_mark()
    again = stage(pushed, home, registry.ref("app", "gzip"))
    assert again.changed is False
    assert [layer.changed for layer in again.layers] == [False, False, False]
    assert again.top == first.top and again.manifest_digest == first.manifest_digest
    layer_digests = {layer.digest for layer in first.layers}
    fetched = {path.rsplit("/", 1)[1] for _m, path, _s in registry.blob_gets(mark)}
    assert not fetched & layer_digests, "no layer blob is fetched again"
    assert _tree_stat(home) == tree


@pytest.mark.parametrize("which", ["basic", "token"])
def test_staging_again_downloads_only_the_manifest(pushed, home, which):
    """Issue 12: the same image again is changed: false and downloads only the manifest (not the config)."""
    registry = getattr(pushed.regs, which)
    stage(pushed, home, registry.ref("base", "zstd"))
    mark = registry.log_mark()
    stage(pushed, home, registry.ref("base", "zstd"))
    assert registry.blob_gets(mark) == []


def test_check_mode_stages_nothing_and_fetches_no_layer(pushed, home):
    regs = pushed.regs
    mark = regs.basic.log_mark()
    result = stage(pushed, home, regs.basic.ref("app", "gzip"), check_mode=True)
    assert result.changed is True
    assert [layer.id for layer in result.layers] == pushed.images["app"].chain_ids
    assert all(layer.changed for layer in result.layers)
    assert not os.path.exists(home), "check mode creates no home"
    layer_digests = {layer.digest for layer in result.layers}
    fetched = {path.rsplit("/", 1)[1] for _m, path, _s in regs.basic.blob_gets(mark)}
    assert not fetched & layer_digests, "check mode fetches manifests and config only"


def test_check_mode_on_a_partly_staged_home(pushed, home):
    regs = pushed.regs
    stage(pushed, home, regs.basic.ref("base", "gzip"))
    tree = _tree_stat(home)
    result = stage(pushed, home, regs.basic.ref("app", "gzip"), check_mode=True)
    assert result.changed is True
    assert [layer.changed for layer in result.layers] == [False, False, True]
    assert _tree_stat(home) == tree


def test_check_mode_leaves_leftovers_of_killed_runs_alone(pushed, home):
    """DESIGN 3: check mode does no cleanup of leftovers, in a home that exists too."""
    regs = pushed.regs
    stage(pushed, home, regs.basic.ref("base", "gzip"))
    leftover = os.path.join(home, ".strata", "tmp", "apply-killed-run")
    os.makedirs(os.path.join(leftover, "root"))
    orphan = os.path.join(home, ".strata", "layers", "gone.json")
    with open(orphan, "w", encoding="ascii") as f:
        f.write('{"parent": null, "holders": []}')
    stage(pushed, home, regs.basic.ref("app", "gzip"), check_mode=True)
    assert os.path.isdir(leftover) and os.path.exists(orphan), "check mode changed nothing on the host"


# -- errors: clear, naming the image, nothing staged ---------------------------------------------------

def _expect_error(pushed, home, src, *fragments, **kw):
    with pytest.raises(OverlayError) as err:
        stage(pushed, home, src, **kw)
    message = str(err.value)
    image = src.split("://", 1)[1].split("@")[0].rsplit(":", 1)[0]
    assert image in message, "the error names the image: %s" % message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), "%r in %s" % (fragment, message)
    assert pushed.regs.PASSWORD not in message and "wrong-pw" not in message
    assert layer_names(home) == [], "nothing of the image is staged"
    return message


@pytest.mark.parametrize("which", ["basic", "token"])
def test_wrong_credentials(pushed, home, which):
    registry = getattr(pushed.regs, which)
    _expect_error(pushed, home, registry.ref("base", "gzip"), "401",
                  auth={"username": pushed.regs.USER, "password": "wrong-pw"})


def test_no_credentials_is_a_401(pushed, home):
    _expect_error(pushed, home, pushed.regs.basic.ref("base", "gzip"), "credentials", auth=None)


def test_a_valid_token_without_access_is_a_401(pushed, home):
    """The token server says yes, the registry says 401 to that token: an error, not a retry loop."""
    regs = pushed.regs
    before = len(regs.tokens.issued)
    _expect_error(pushed, home, regs.token.ref("base", "gzip"), auth={"username": "reader", "password": "reader-pw"})
    assert 1 <= len(regs.tokens.issued) - before <= 3


def test_untrusted_certificate_without_ca_path(pushed, home):
    _expect_error(pushed, home, pushed.regs.basic.ref("base", "gzip"), "certificate", ca=None)


def test_certificate_from_another_ca(pushed, home, scratch):
    """The registry presents a certificate our CA did not sign: refused although ca_path is given."""
    regs = pushed.regs
    key, crt = regs.pki.self_signed_server()
    rogue = Registry(regs.pki, os.path.join(scratch, "rogue"), "htpasswd", regs.users, tls_cert=crt, tls_key=key)
    try:
        rogue.start()
        _expect_error(pushed, home, rogue.ref("base", "gzip"), "certificate")
    finally:
        rogue.stop()


def test_validate_certs_false_accepts_the_untrusted_certificate(pushed, home):
    regs = pushed.regs
    result = stage(pushed, home, regs.basic.ref("base", "gzip"), ca=None, validate_certs=False)
    assert result.top == pushed.images["base"].chain_ids[-1]


def test_unknown_tag_is_a_clear_error(pushed, home):
    _expect_error(pushed, home, pushed.regs.basic.ref("base", "no-such-tag"), "no-such-tag")


# -- the peer: containers-storage's view of the same image ---------------------------------------------

class Peer:
    """A private containers-storage graph, filled by skopeo from the same registry."""

    def __init__(self, base, regs):
        self.graph = os.path.join(base, "cs-graph")
        self.run = os.path.join(base, "cs-run")
        self.regs = regs

    def __call__(self, *args):
        cmd = ["containers-storage", "-g", self.graph, "-R", self.run, "-s", "overlay"] + list(args)
        return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode()

    def pull(self, registry, repo, tag):
        dest = "containers-storage:[overlay@%s+%s]%s:%s" % (self.graph, self.run, repo, tag)
        imagebuild.skopeo_copy(registry.ref(repo, tag), dest, src_cert_dir=self.regs.pki.cert_dir,
                               src_creds=self.regs.creds)
        # skopeo stores the name normalised (docker.io/library/REPO:TAG): find the image by its suffix.
        for image in json.loads(self("images", "--json")):
            if any(name.endswith("/%s:%s" % (repo, tag)) for name in image.get("names") or []):
                return image
        raise AssertionError("skopeo stored no image named %s:%s" % (repo, tag))

    def mount_container(self, image):
        container = self("create-container", image).split()[-1]
        return container, self("mount", container).strip()

    def shutdown(self):
        subprocess.run(["containers-storage", "-g", self.graph, "-R", self.run, "-s", "overlay", "shutdown"],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        overlay = os.path.join(self.graph, "overlay")
        if os.path.ismount(overlay):
            subprocess.run(["umount", overlay], check=False)


@pytest.fixture
def peer(scratch, pushed):
    p = Peer(scratch, pushed.regs)
    try:
        yield p
    finally:
        p.shutdown()  # the scratch fixture unmounts whatever is left below it


def full_view(root):
    """Every entry below root: type, mode, owner, size, content hash, link target, rdev, mtime, xattrs.

    Hard links are compared as groups of paths sharing an inode. The link
    count is not compared: strata's layers share their parent's files by hard
    link (the seed's ApplyDiff), so counts are the store's, not the image's.
    """
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            item = {"type": stat.S_IFMT(st.st_mode), "mode": oct(stat.S_IMODE(st.st_mode)), "uid": st.st_uid,
                    "gid": st.st_gid, "mtime_ns": st.st_mtime_ns}
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                        h.update(chunk)
                item["size"] = st.st_size
                item["sha256"] = h.hexdigest()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                item["link"] = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                item["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
            item["xattrs"] = {x: os.getxattr(path, x, follow_symlinks=False)
                              for x in sorted(os.listxattr(path, follow_symlinks=False))}
            out[rel] = item
    links = sorted(sorted(paths) for paths in inodes.values() if len(paths) > 1)
    return out, links


def _diff(ours, theirs):
    lines = []
    for path in sorted(set(ours) | set(theirs)):
        if ours.get(path) != theirs.get(path):
            lines.append("%s\n  strata: %s\n  containers-storage: %s" % (path, ours.get(path), theirs.get(path)))
    return "\n".join(lines[:20])


@pytest.mark.parametrize("which,repo,compression", [("basic", "app", "gzip"), ("token", "app", "zstd"),
                                                    ("basic", "base", "zstd"), ("token", "multi", "latest")])
def test_peer_mount_equals_a_writable_layer_on_our_top(pushed, peer, home, which, repo, compression):
    registry = getattr(pushed.regs, which)
    result = stage(pushed, home, registry.ref(repo, compression))
    store = LayerStore(home)
    with store.locked():
        store.ensure_present("rw", result.top)
        store.ensure_mounted("rw", holder="peer-test")
    ours = full_view(store.state("rw")["path"])

    image = peer.pull(registry, repo, compression)
    container, merged = peer.mount_container(image["id"])
    try:
        theirs = full_view(merged)
    finally:
        peer("unmount", container)
        with store.locked():
            store.ensure_unmounted("rw", holder="peer-test")

    assert ours[0] == theirs[0], _diff(ours[0], theirs[0])
    assert ours[1] == theirs[1], "hard link groups"
    assert len(ours[0]) > 30


def _tree_stat(root):
    """Everything under root, names and inode data (mtime and ctime too): staging again touches nothing."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return out
