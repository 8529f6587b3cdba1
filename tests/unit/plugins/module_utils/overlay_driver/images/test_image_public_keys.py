"""Signatures checked with a PEM public key, by the cryptography module and by the openssl program.

Each case runs with both verifiers: public_keys.USE_CRYPTOGRAPHY switched off
leaves the openssl program, as on a host without the module. Keys and
signatures are made here by the cryptography module, as cosign makes them.
"""

import base64
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import public_keys
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError

from sigstore_signing import SigningKey

pytest.importorskip("cryptography")

KINDS = ["ecdsa", "ed25519", "rsa"]


@pytest.fixture(params=["cryptography", "openssl"])
def verifier(request, monkeypatch):
    if request.param == "openssl":
        if shutil.which("openssl") is None:
            pytest.skip("openssl is not installed")
        monkeypatch.setattr(public_keys, "USE_CRYPTOGRAPHY", False)
    assert public_keys.verifier_name() == request.param
    return request.param


@pytest.fixture(scope="module")
def keys():
    return {kind: SigningKey(kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_a_signature_by_the_key_verifies_and_nothing_else_does(verifier, keys, kind):
    del verifier
    key = keys[kind]
    data = b'{"critical":{}}'
    public = public_keys.PublicKey(key.public_pem(), "the test key")
    public.check_loadable()
    assert public.kind == kind
    assert public.verify(data, key.sign(data))
    assert not public.verify(data + b" ", key.sign(data))
    other = SigningKey(kind)
    assert not public.verify(data, other.sign(data))
    assert not public.verify(data, b"")
    assert not public.verify(data, b"\x30\x06\x02\x01\x01\x02\x01\x01")  # DER of an ECDSA (1, 1)


def test_openssl_gets_its_files_in_a_private_directory_it_leaves_nothing_in(keys, monkeypatch, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    monkeypatch.setattr(public_keys, "USE_CRYPTOGRAPHY", False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(public_keys.tempfile, "tempdir", None)
    seen = []
    real_run = subprocess.run

    def spy(argv, **kw):
        directory = os.path.dirname(argv[argv.index("-signature") + 1 if "-signature" in argv else -1])
        seen.append((directory, oct(os.stat(directory).st_mode & 0o777), sorted(os.listdir(directory))))
        return real_run(argv, **kw)  # pylint: disable=subprocess-run-check

    monkeypatch.setattr(public_keys.subprocess, "run", spy)
    key = keys["ecdsa"]
    assert public_keys.PublicKey(key.public_pem(), "k").verify(b"x", key.sign(b"x"))
    assert seen and seen[0][1] == "0o700" and seen[0][2] == ["key.pem", "payload", "signature"]
    assert os.path.dirname(seen[0][0]) == str(tmp_path)
    assert os.listdir(tmp_path) == []


def test_neither_verifier_fails_naming_both(monkeypatch, keys):
    monkeypatch.setattr(public_keys, "USE_CRYPTOGRAPHY", False)
    monkeypatch.setattr(public_keys, "OPENSSL", "strata-no-such-openssl")
    assert public_keys.verifier_name() is None
    key = public_keys.PublicKey(keys["ecdsa"].public_pem(), "the policy's key")
    for call in (key.check_loadable, lambda: key.verify(b"x", keys["ecdsa"].sign(b"x"))):
        with pytest.raises(ImageError) as e:
            call()
        assert "needs the Python cryptography module or the openssl program" in str(e.value)
        assert "the policy's key" in str(e.value)


def test_a_host_without_the_cryptography_module_uses_openssl(keys):
    """In a fresh interpreter where importing cryptography fails, as on a host without it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key = keys["ecdsa"]
    data = b"payload"
    script = "\n".join([
        "import base64, sys",
        "sys.modules['cryptography'] = None",  # import cryptography now raises ImportError
        "from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import public_keys",
        "key = public_keys.PublicKey(base64.b64decode(sys.argv[1]), 'k')",
        "print(public_keys.verifier_name(), key.verify(b'payload', base64.b64decode(sys.argv[2])),",
        "      key.verify(b'payload!', base64.b64decode(sys.argv[2])))",
    ])
    proc = subprocess.run([sys.executable, "-c", script, base64.b64encode(key.public_pem()).decode(),
                           base64.b64encode(key.sign(data)).decode()], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                          check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["openssl", "True", "False"]


@pytest.mark.parametrize("pem, fragment", [
    (b"not a pem at all", "holds no PEM public key"),
    (b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "is not base64"),
    (b"-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n", "not supported"),
])
def test_keys_that_are_no_public_key_are_refused(pem, fragment):
    with pytest.raises(ImageError) as e:
        public_keys.PublicKey(pem, "keyData of the policy")
    assert fragment in str(e.value) and "keyData of the policy" in str(e.value)


def test_a_private_key_is_refused_as_such(keys):
    encrypted = keys["ecdsa"].encrypted_pem(b"pw")
    with pytest.raises(ImageError) as e:
        public_keys.PublicKey(encrypted, "keyPath")
    assert "not a PUBLIC KEY" in str(e.value) and "private key" in str(e.value)
    two = keys["ecdsa"].public_pem() + keys["rsa"].public_pem()
    with pytest.raises(ImageError) as e:
        public_keys.PublicKey(two, "keyPath")
    assert "holds 2 PEM blocks" in str(e.value)


def test_a_key_file_is_read_only_when_no_one_else_can_change_it(tmp_path, keys):
    path = tmp_path / "cosign.pub"
    path.write_bytes(keys["ecdsa"].public_pem())
    os.chmod(path, 0o644)
    assert public_keys.PublicKey.from_file(str(path), "keyPath").kind == "ecdsa"
    fifo = tmp_path / "fifo.pub"
    os.mkfifo(fifo)
    link = tmp_path / "link.pub"
    os.symlink(path, link)
    cases = [(fifo, "is not a regular file"), (link, "is a symbolic link, which is not followed"),
             (tmp_path / "missing.pub", "No such file")]
    for name, fragment in cases:
        with pytest.raises(ImageError) as e:
            public_keys.PublicKey.from_file(str(name), "keyPath")
        assert fragment in str(e.value) and "keyPath" in str(e.value)
    os.chmod(path, 0o666)
    with pytest.raises(ImageError) as e:
        public_keys.PublicKey.from_file(str(path), "keyPath")
    assert "writable by another user" in str(e.value)
    os.chmod(path, 0o644)
    os.chmod(tmp_path, 0o777)
    try:
        with pytest.raises(ImageError) as e:
            public_keys.PublicKey.from_file(str(path), "keyPath")
        assert "in a directory another user can write" in str(e.value)
    finally:
        os.chmod(tmp_path, 0o700)
