"""certs.d: per-registry CAs and client certificates, against a docker-registry that requires mutual TLS."""

import os
import shutil
import ssl
import tempfile

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import certs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage import stage_image
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store import LayerStore

import imagebuild
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
