"""certs.d: per-registry CAs and client certificates, against a docker-registry that requires mutual TLS."""

import contextlib
import os
import shutil
import ssl
import stat
import tempfile
import threading

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import certs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
from fake_registry import FakeRegistry, make_ca
from imagetools import Image
from registry import Pki, Registry, have_tools


def _files(directory, files):
    os.makedirs(directory, exist_ok=True)
    for name, source in files.items():
        shutil.copyfile(source, os.path.join(directory, name))
    return directory


class MutualTls:
    """A registry that requires a client certificate signed by its client CA, holding the image `base`."""

    def __init__(self, work):
        self.pki = Pki(os.path.join(work, "pki"))
        self.key, self.cert, self.client_ca = self.pki.client_cert("client", "client-ca")
        self.other_key, self.other_cert, _other_ca = self.pki.client_cert("stranger", "stranger-ca")
        self.registry = Registry(self.pki, os.path.join(work, "registry"), auth=None, client_cas=[self.client_ca],
                                 client_cert=(self.cert, self.key)).start()
        self.image = imagebuild.sample_images()["base"]
        layout = os.path.join(work, "layout")
        imagebuild.write_oci_layout(layout, {"base": self.image})
        push_dir = _files(os.path.join(work, "push-certs"),
                          {"ca.crt": self.pki.ca_crt, "client.cert": self.cert, "client.key": self.key})
        imagebuild.skopeo_copy("oci:%s:base" % layout, self.registry.ref("base"), cert_dir=push_dir,
                               compression="gzip", private_cache=True)

    def certs_d(self, root, **files):
        """A certs.d directory with the registry's directory holding files (name -> the file copied)."""
        _files(os.path.join(root, self.registry.host), files)
        return root


@pytest.fixture(scope="module")
def mtls():
    reason = have_tools()
    if reason:
        pytest.skip(reason)
    work = tempfile.mkdtemp(prefix="strata-mtls-")
    server = None
    try:
        server = MutualTls(work)
        yield server
    finally:
        if server is not None:
            server.registry.stop()
        shutil.rmtree(work, ignore_errors=True)


def pull(mtls, scratch, certs_dirs, **kw):
    return stage_image(LayerStore(os.path.join(scratch, "home")), mtls.registry.ref("base"), certs_dirs=certs_dirs,
                       **kw)


def test_the_client_certificate_and_ca_from_certs_d_are_used(mtls, scratch):
    root = mtls.certs_d(os.path.join(scratch, "certs.d"), **{"ca.crt": mtls.pki.ca_crt, "client.cert": mtls.cert,
                                                             "client.key": mtls.key})
    result = pull(mtls, scratch, [root])
    assert result.top == mtls.image.chain_ids[-1]


def test_without_a_client_certificate_the_registry_refuses(mtls, scratch):
    root = mtls.certs_d(os.path.join(scratch, "certs.d"), **{"ca.crt": mtls.pki.ca_crt})
    with pytest.raises(ImageError) as e:
        pull(mtls, scratch, [root])
    assert "may require a client certificate, and none was presented" in e.value.message
    assert not os.path.exists(os.path.join(scratch, "home")) or not [
        n for n in os.listdir(os.path.join(scratch, "home")) if not n.startswith(".")]


def test_a_client_certificate_of_another_ca_is_refused(mtls, scratch):
    root = mtls.certs_d(os.path.join(scratch, "certs.d"), **{"ca.crt": mtls.pki.ca_crt,
                                                             "client.cert": mtls.other_cert,
                                                             "client.key": mtls.other_key})
    with pytest.raises(ImageError) as e:
        pull(mtls, scratch, [root])
    assert "TLS with %s failed" % mtls.registry.host in e.value.message
    assert "refused the client certificate %s" % os.path.join(root, mtls.registry.host, "client.cert") \
        in e.value.message


def test_the_client_certificate_goes_also_without_verifying_the_server(mtls, scratch):
    root = mtls.certs_d(os.path.join(scratch, "certs.d"), **{"client.cert": mtls.cert, "client.key": mtls.key})
    result = pull(mtls, scratch, [root], validate_certs=False)
    assert result.top == mtls.image.chain_ids[-1]


def test_the_ca_of_certs_d_is_needed_without_ca_path(mtls, scratch):
    root = mtls.certs_d(os.path.join(scratch, "certs.d"), **{"client.cert": mtls.cert, "client.key": mtls.key})
    with pytest.raises(ImageError) as e:
        pull(mtls, scratch, [root])
    assert "does not verify" in e.value.message
    result = pull(mtls, scratch, [root], ca_path=mtls.pki.ca_crt)
    assert result.top == mtls.image.chain_ids[-1]


@contextlib.contextmanager
def _registry_and_another_host(mtls, scratch, registry_kw, other_kw):
    """(registry, other host, certs.d root, image): two fake registries on the pki's server certificate, the first
    holding the image, with its CA and the client certificate in its certs.d; both stopped afterwards."""
    tls = (mtls.pki.server_crt, mtls.pki.server_key)
    registry = FakeRegistry(**dict({"tls": tls}, **registry_kw)).start()
    other = FakeRegistry(**dict({"tls": tls}, **other_kw)).start()
    try:
        image = Image()
        registry.push("strata/app", image)
        root = os.path.join(scratch, "certs.d")
        _files(os.path.join(root, registry.netloc),
               {"ca.crt": mtls.pki.ca_crt, "client.cert": mtls.cert, "client.key": mtls.key})
        yield registry, other, root, image
    finally:
        registry.stop()
        other.stop()


def _stage(scratch, registry, root, **kw):
    return stage_image(LayerStore(os.path.join(scratch, "home")), "docker://%s/strata/app:v1" % registry.netloc,
                       certs_dirs=[root], **kw)


def _der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


@pytest.mark.parametrize("storage_has_own", [False, True], ids=["storage without certs.d", "storage with its own"])
def test_the_registrys_client_certificate_never_goes_to_the_host_it_redirects_to(mtls, scratch, storage_has_own):
    """The client certificate is the registry's credential, as its Authorization is: the blob storage a redirect
    leads to gets only what certs.d holds for its own host. The CA of the registry's certs.d still verifies that
    host (a private registry's storage is often signed by the same CA)."""
    both_cas = os.path.join(scratch, "client-cas.pem")
    with open(both_cas, "w") as out:
        for path in (mtls.client_ca, os.path.join(mtls.pki.dir, "stranger-ca.crt")):
            with open(path) as f:
                out.write(f.read())
    with _registry_and_another_host(mtls, scratch, {"client_ca": mtls.client_ca}, {"client_ca": both_cas}) as (
            registry, storage, root, image):
        registry.redirect_blobs_to("strata/app", storage)
        if storage_has_own:
            _files(os.path.join(root, storage.netloc), {"client.cert": mtls.other_cert, "client.key": mtls.other_key})
        assert _stage(scratch, registry, root).top == image.ids[-1]
    assert _der(mtls.cert) in registry.client_certs
    assert storage.client_certs and set(storage.client_certs) == {_der(mtls.other_cert) if storage_has_own else None}


def test_a_host_the_registry_redirects_to_that_wants_a_client_certificate_is_said_so(mtls, scratch):
    """The registry's own certificate is not sent there: the error says where this host's goes."""
    with _registry_and_another_host(mtls, scratch, {}, {"client_ca": mtls.client_ca, "client_required": True}) as (
            registry, storage, root, _image):
        registry.redirect_blobs_to("strata/app", storage)
        with pytest.raises(ImageError) as e:
            _stage(scratch, registry, root)
    assert "this host, which a redirect led to from the registry %s, may require a client certificate" % registry.netloc \
        in e.value.message, e.value.message
    assert "the registry's own is not sent to another host" in e.value.message


def test_the_token_server_the_registry_names_gets_its_client_certificate(mtls, scratch):
    """The token server is the registry's own, on another host or port: it gets the registry's credentials,
    and its client certificate with them, and is verified with its own certs.d's CAs too."""
    own_ca = os.path.join(scratch, "token-server-ca")
    os.mkdir(own_ca)
    own_ca_crt, own_crt, own_key = make_ca(own_ca)  # a CA only the token server's own certs.d holds
    users = {"alice": "secret"}
    with _registry_and_another_host(
            mtls, scratch, {"auth": "bearer", "users": users, "client_ca": mtls.client_ca},
            {"auth": "bearer", "users": users, "client_ca": mtls.client_ca, "tls": (own_crt, own_key)}) as (
            registry, tokens, root, image):
        tokens.tokens = registry.tokens  # what the token server issues, the registry accepts
        registry.token_realm = tokens.base + "/token"
        _files(os.path.join(root, tokens.netloc), {"ca.crt": own_ca_crt})
        result = _stage(scratch, registry, root, registry_auth={"username": "alice", "password": "secret"})
        assert result.top == image.ids[-1]
    assert tokens.token_requests and tokens.client_certs and set(tokens.client_certs) == {_der(mtls.cert)}


# -- the directory itself ---------------------------------------------------------------------

def test_the_first_certs_dir_with_the_registry_is_read_alone(tmp_path):
    first, second = str(tmp_path / "containers"), str(tmp_path / "docker")
    os.makedirs(os.path.join(second, "reg.example:5000"))
    os.makedirs(os.path.join(first, "other.example"))
    assert certs.host_dir("reg.example:5000", (first, second)) == os.path.join(second, "reg.example:5000")
    os.makedirs(os.path.join(first, "reg.example:5000"))
    assert certs.host_dir("reg.example:5000", (first, second)) == os.path.join(first, "reg.example:5000")
    assert certs.host_dir("nowhere.example", (first, second)) is None
    assert certs.host_dir("..", (first, second)) is None
    assert certs.DEFAULT_CERTS_DIRS == ("/etc/containers/certs.d", "/etc/docker/certs.d")


@pytest.mark.parametrize("names, fragment", [
    (["client.cert"], "the client certificate client.cert has no key client.key beside it"),
    (["ca.crt", "client.key"], "the key client.key has no client certificate client.cert beside it"),
])
def test_half_a_client_certificate_is_an_error_naming_it(tmp_path, names, fragment):
    directory = tmp_path / "reg.example"
    directory.mkdir()
    for name in names:
        (directory / name).write_text("x")
    context = ssl.create_default_context()
    with pytest.raises(ImageError) as e:
        certs.apply(context, "reg.example", (str(tmp_path),), "img")
    assert fragment in e.value.message and e.value.path == str(directory)


def test_a_bad_ca_file_is_an_error_naming_it(tmp_path):
    directory = tmp_path / "reg.example"
    directory.mkdir()
    (directory / "ca.crt").write_text("not a certificate")
    (directory / "README").write_text("other files are ignored")
    with pytest.raises(ImageError) as e:
        certs.apply(ssl.create_default_context(), "reg.example", (str(tmp_path),), "img")
    assert "cannot load the CA certificate ca.crt" in e.value.message


def test_the_modules_certs_dir_option(mtls, scratch):
    root = mtls.certs_d(os.path.join(scratch, "certs.d"), **{"ca.crt": mtls.pki.ca_crt, "client.cert": mtls.cert,
                                                             "client.key": mtls.key})
    params = {"src": mtls.registry.ref("base"), "home": os.path.join(scratch, "home"), "uid_maps": [],
              "gid_maps": [], "platform": None, "registry_auth": None, "validate_certs": True, "ca_path": None,
              "certs_dir": root}
    result = ImageManager(params, check_mode=True).run()
    assert [layer["id"] for layer in result["layers"]] == mtls.image.chain_ids
    params["certs_dir"] = os.path.join(scratch, "empty-certs.d")
    with pytest.raises(ImageError) as e:
        ImageManager(params, check_mode=True).run()
    assert "does not verify" in e.value.message


# -- files another user may have planted ------------------------------------------------------

def test_a_fifo_in_the_registrys_directory_is_an_error_not_a_hang(tmp_path):
    # a FIFO named like a CA: opened without blocking and refused as not a regular file (ssl would wait
    # for a writer forever)
    directory = tmp_path / "reg.example"
    directory.mkdir()
    fifo = str(directory / "ca.crt")
    os.mkfifo(fifo)

    def writer():  # so that a reader that blocks on the FIFO gets junk and ends, rather than hang the test
        with open(fifo, "wb") as f:
            f.write(b"junk")
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with pytest.raises(ImageError) as e:
            certs.apply(ssl.create_default_context(), "reg.example", (str(tmp_path),), "img")
    finally:
        unblock = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the writer's open returns once a reader is there
        thread.join()
        os.close(unblock)
    assert "ca.crt in the registry's certs.d directory is not a regular file" in e.value.message
    assert e.value.path == str(directory)


def test_a_client_key_that_is_a_symbolic_link_is_not_followed(tmp_path):
    # a link to a key only root may read would otherwise present that key with root's authority
    secret = tmp_path / "root-only.key"
    secret.write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    secret.chmod(0o600)
    directory = tmp_path / "certs.d" / "reg.example"
    directory.mkdir(parents=True)
    (directory / "client.cert").write_text("x")
    os.symlink(str(secret), str(directory / "client.key"))
    with pytest.raises(ImageError) as e:
        certs.apply(ssl.create_default_context(), "reg.example", (str(tmp_path / "certs.d"),), "img")
    assert "cannot read client.key in the registry's certs.d directory" in e.value.message
    assert "symbolic link is not followed" in e.value.message


@pytest.mark.parametrize("which", ["certs", "host"])
@pytest.mark.parametrize("how, fragment", [
    ("group-writable", "is writable by group or others (mode 0775)"),
    ("other-writable", "is writable by group or others (mode 0757)"),
    ("foreign-owner", "is owned by uid 4242, not root"),
])
def test_a_certs_dir_another_user_may_write_is_refused_naming_it(tmp_path, which, how, fragment):
    root = tmp_path / "certs.d"
    directory = root / "reg.example"
    directory.mkdir(parents=True)
    (directory / "ca.crt").write_text("not read")
    target = root if which == "certs" else directory
    if how == "foreign-owner":
        os.chown(str(target), 4242, 4242)
    else:
        target.chmod(0o775 if how == "group-writable" else 0o757)
    with pytest.raises(ImageError) as e:
        certs.apply(ssl.create_default_context(), "reg.example", (str(root),), "img")
    assert fragment in e.value.message and e.value.path == str(target)
    assert ("certs directory" if which == "certs" else "registry's certs.d directory") in e.value.message


def test_the_client_key_is_loaded_from_a_private_copy_removed_after(tmp_path, monkeypatch):
    pki = Pki(str(tmp_path / "pki"))
    key, cert, _ca = pki.client_cert("client", "client-ca")
    root = str(tmp_path / "certs.d")
    _files(os.path.join(root, "reg.example"), {"ca.crt": pki.ca_crt, "client.cert": cert, "client.key": key})
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    seen = []

    class Spy(ssl.SSLContext):
        """Sees the file ssl is given for the chain while it is there."""

        def load_cert_chain(self, path, *args):
            st, parent = os.lstat(path), os.lstat(os.path.dirname(path))
            seen.append((stat.S_IMODE(st.st_mode), stat.S_IMODE(parent.st_mode), st.st_uid, path))
            return super().load_cert_chain(path, *args)
    context = Spy(ssl.PROTOCOL_TLS_CLIENT)
    result = certs.apply(context, "reg.example", (root,), "img")
    assert result.client_cert == os.path.join(root, "reg.example", "client.cert")
    assert [s[:3] for s in seen] == [(0o600, 0o700, os.geteuid())]
    assert seen[0][3].startswith(str(private) + os.sep)
    assert os.listdir(str(private)) == []
