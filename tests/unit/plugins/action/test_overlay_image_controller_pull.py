"""pull: controller against the real registry (docker-registry over TLS with Basic auth, tests/registry.py).

The action plugin runs as Ansible runs it for each host of a fleet, the host
being this machine with a home and a temp dir of its own: the modules it asks
for (overlay_info, overlay_image) run in-process on that home, commands run
here, and a transfer is a copy. The registry's access log counts what it served.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor

import pytest

from ansible_collections.strata.overlay.plugins.action.overlay_image import ActionModule
from ansible_collections.strata.overlay.plugins.module_utils.image_manager import ImageManager
from ansible_collections.strata.overlay.plugins.module_utils.managers import InfoManager
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import stage

import imagebuild
from registry import have_tools, registries

FLEET = 20
FORKS = 5


@pytest.fixture(scope="module")
def regs():
    if have_tools() is not None:
        pytest.skip(have_tools())
    work = tempfile.mkdtemp(prefix="strata-ctlpull-")
    try:
        with registries(token=False, directory=os.path.join(work, "registries")) as started:
            imagebuild.push_samples(started, work, {"base": "base", "app": "app"}, tag="gzip")
            started.images = imagebuild.sample_images()
            yield started
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Shell:
    def __init__(self, tmpdir):
        self.tmpdir = tmpdir

    @staticmethod
    def join_path(*parts):
        return os.path.join(*parts)


def _module(name, args, check_mode):
    manager = InfoManager if name == "strata.overlay.overlay_info" else ImageManager
    try:
        return manager(dict(args), check_mode=check_mode).run()
    except OverlayError as e:
        return {"failed": True, "msg": e.message}


class Host:
    """One inventory host on a local connection: its own home and temp dir; what was sent to it is kept."""

    def __init__(self, root):
        self.home = os.path.join(root, "home")
        self.tmp = os.path.join(root, "tmp")
        self.sent = []
        self.module_args = []

    def action(self, args, check_mode=False):
        os.makedirs(self.tmp, exist_ok=True)
        action = object.__new__(ActionModule)
        action._task = types.SimpleNamespace(check_mode=check_mode, action="strata.overlay.overlay_image",
                                             args=args)  # pylint: disable=protected-access
        action._connection = types.SimpleNamespace(_shell=_Shell(self.tmp))  # pylint: disable=protected-access

        def execute(module_name, module_args, task_vars):
            del task_vars
            if module_name != "strata.overlay.overlay_info":
                self.module_args.append(module_args)
            return _module(module_name, dict(module_args), check_mode)

        def command(cmd, sudoable=False):
            del sudoable
            done = subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False)
            return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

        def transfer(path, remote):
            shutil.copyfile(path, remote)
            self.sent.append(os.path.relpath(remote, self.tmp))
            return remote

        action._execute_module = execute  # pylint: disable=protected-access
        action._low_level_execute_command = command  # pylint: disable=protected-access
        action._transfer_file = transfer  # pylint: disable=protected-access
        action._fixup_perms2 = lambda paths: None  # pylint: disable=protected-access
        action._remove_tmp_path = lambda path: shutil.rmtree(path, ignore_errors=True)  # pylint: disable=protected-access
        return action

    def stage(self, args, check_mode=False):
        args = dict(args, home=self.home)
        return self.action(args, check_mode)._run_with_src({}, dict(args), False, {})  # pylint: disable=protected-access


def pull_args(regs, repo, cache, **extra):
    args = {"src": regs.basic.ref(repo, "gzip"), "pull": "controller", "controller_cache": cache,
            "registry_auth": dict(regs.auth), "ca_path": regs.pki.ca_crt}
    args.update(extra)
    return args


def layer_blob_gets(regs, mark):
    return sorted(path.rsplit("/", 1)[1] for _m, path, _s in regs.basic.blob_gets(mark))


def test_one_registry_fetch_of_each_blob_for_a_fleet_of_20(regs, scratch, layout):
    """20 hosts, 5 forks at once: the registry serves each blob once, as many blob requests as for one host."""
    del layout
    image = regs.images["base"]
    mark = regs.basic.log_mark()
    one = Host(os.path.join(scratch, "one"))
    result = one.stage(pull_args(regs, "base", os.path.join(scratch, "cache-one")))
    assert not result.get("failed"), result
    assert result["pulled_by"] == "controller" and result["top"] == image.chain_ids[-1]
    one_host = layer_blob_gets(regs, mark)
    assert len(one_host) == len(image.diff_ids) + 1  # the layers and the config

    mark = regs.basic.log_mark()
    fleet = [Host(os.path.join(scratch, "host-%02d" % n)) for n in range(FLEET)]
    cache = os.path.join(scratch, "cache-fleet")
    with ThreadPoolExecutor(FORKS) as pool:
        results = list(pool.map(lambda host: host.stage(pull_args(regs, "base", cache)), fleet))
    assert [r.get("failed") for r in results] == [None] * FLEET, [r.get("msg") for r in results if r.get("failed")]
    assert all(r["top"] == image.chain_ids[-1] and r["changed"] for r in results)
    assert layer_blob_gets(regs, mark) == one_host
    assert sum(len(r["controller_fetched"]) for r in results) == len(one_host)
    for host in fleet:  # every host has the image, sent as an OCI layout with each layer
        assert sum(1 for name in host.sent if "/blobs/sha256/" in name) == len(image.diff_ids) + 2
        assert host.module_args[0]["src"].startswith("oci:" + host.tmp)


def test_the_host_gets_only_the_layers_it_lacks_and_nothing_of_the_credentials(regs, scratch, layout):
    del layout
    host = Host(os.path.join(scratch, "host"))
    cache = os.path.join(scratch, "cache")
    assert not host.stage(pull_args(regs, "base", cache)).get("failed")
    mark = regs.basic.log_mark()
    host.sent.clear()
    result = host.stage(pull_args(regs, "app", cache))
    assert not result.get("failed"), result
    app = regs.images["app"]
    assert result["top"] == app.chain_ids[-1] and result["sent_layers"] == 1
    assert [layer["changed"] for layer in result["layers"]] == [False, False, True]
    # the config and the one new layer: base's layers were neither fetched nor sent
    assert len(layer_blob_gets(regs, mark)) == 2 and len(result["controller_fetched"]) == 2
    assert sum(1 for name in host.sent if "/blobs/sha256/" in name) == 3  # manifest, config, one layer
    module_args = host.module_args[-1]
    assert module_args["record_as"] == regs.basic.ref("app", "gzip")
    assert not {"registry_auth", "ca_path", "pull", "controller_cache"} & set(module_args)
    again = host.stage(pull_args(regs, "app", cache))
    assert not again["changed"] and again["sent_layers"] == 0 and again["controller_fetched"] == []


def test_a_corrupt_blob_in_the_cache_is_fetched_again_and_never_sent(regs, scratch, layout):
    del layout
    cache = os.path.join(scratch, "cache")
    first = Host(os.path.join(scratch, "first"))
    result = first.stage(pull_args(regs, "base", cache))
    assert not result.get("failed"), result
    digest = result["layers"][0]["digest"]
    blob = os.path.join(cache, "blobs", "sha256", digest.split(":", 1)[1])
    with open(blob, "r+b") as f:
        good = f.read()
        f.seek(0)
        f.write(bytes([good[0] ^ 0xFF]))  # same size: only the digest tells
    mark = regs.basic.log_mark()
    second = Host(os.path.join(scratch, "second"))
    result = second.stage(pull_args(regs, "base", cache))
    assert not result.get("failed"), result  # the host verifies what it gets: it got the registry's blob
    assert result["controller_fetched"] == [digest]
    assert layer_blob_gets(regs, mark) == [digest]
    with open(blob, "rb") as f:
        assert f.read() == good


def test_check_mode_reads_the_registry_and_writes_neither_the_cache_nor_the_host(regs, scratch, layout):
    del layout
    cache = os.path.join(scratch, "cache")
    host = Host(os.path.join(scratch, "host"))
    result = host.stage(pull_args(regs, "base", cache), check_mode=True)
    assert not result.get("failed"), result
    assert result["changed"] and result["sent_layers"] == 0 and result["controller_fetched"] == []
    assert not os.path.exists(cache) and not os.path.exists(host.home)
    assert not any("/blobs/sha256/" in name and name.endswith(result["layers"][0]["digest"].split(":")[1])
                   for name in host.sent)


def write_policy(scratch, document):
    directory = os.path.join(scratch, "controller-etc")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "policy.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f)
    return path


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_the_policy_is_applied_on_the_controller_before_anything_is_fetched(regs, scratch, check_mode):
    """The policy file is the controller's; a refused image costs no blob request and the host gets nothing."""
    policy = write_policy(scratch, {"default": [{"type": "insecureAcceptAnything"}],
                                    "transports": {"docker": {regs.basic.host + "/base": [{"type": "reject"}]}}})
    host = Host(os.path.join(scratch, "host"))
    cache = os.path.join(scratch, "cache")
    mark = regs.basic.log_mark()
    result = host.stage(pull_args(regs, "base", cache, policy=policy), check_mode=check_mode)
    assert result.get("failed") and "reject" in result["msg"], result
    assert regs.basic.requests(mark, kind="blobs") == []
    assert host.sent == [] and host.module_args == [] and not os.path.exists(host.home)
    assert not os.path.exists(os.path.join(cache, "blobs", "sha256")) or not os.listdir(
        os.path.join(cache, "blobs", "sha256"))


def test_an_image_the_controller_policy_allows_is_staged_and_the_host_gets_no_policy(regs, scratch, layout):
    del layout
    policy = write_policy(scratch, {"default": [{"type": "reject"}],
                                    "transports": {"docker": {regs.basic.host + "/base": [
                                        {"type": "insecureAcceptAnything"}]}}})
    host = Host(os.path.join(scratch, "host"))
    result = host.stage(pull_args(regs, "base", os.path.join(scratch, "cache"), policy=policy,
                                  registries_d=os.path.join(scratch, "controller-etc")))
    assert not result.get("failed"), result
    assert result["top"] == regs.images["base"].chain_ids[-1]
    assert not {"policy", "registries_d"} & set(host.module_args[-1])  # an OCI layout carries no signatures


def test_wrong_credentials_on_the_controller_fail_the_task_without_the_password(regs, scratch):
    host = Host(os.path.join(scratch, "host"))
    args = pull_args(regs, "base", os.path.join(scratch, "cache"))
    args["registry_auth"] = {"username": regs.USER, "password": "not-the-password-xyz"}
    result = host.stage(args)
    assert result["failed"] and "not-the-password-xyz" not in result["msg"]
    assert not os.path.exists(host.home)


def test_the_module_without_its_action_refuses_pull_controller(scratch):
    with pytest.raises(OverlayError) as e:
        ImageManager({"home": os.path.join(scratch, "home"), "src": "docker://r.example/app:v1",
                      "pull": "controller"})
    assert "action plugin" in e.value.message
    assert not os.path.exists(os.path.join(scratch, "home"))


def test_an_unknown_pull_is_refused(scratch):
    result = Host(os.path.join(scratch, "h")).stage({"src": "docker://r.example/app:v1", "pull": "proxy"})
    assert result["failed"] and "pull must be one of host, controller" in result["msg"]


@pytest.mark.parametrize("name, value", [("retries", "many"), ("retry_max_delay", [1]), ("blob_deadline", "1h"),
                                         ("image_deadline", 0), ("blob_deadline", 2.5),
                                         ("controller_cache_max_age", "a month"), ("controller_cache_max_size", "lots")])
def test_a_bad_number_read_on_the_controller_fails_clearly(scratch, name, value):
    """The controller reads these before any module's argument spec has: int("1h") raised a traceback."""
    host = Host(os.path.join(scratch, "h"))
    args = {"src": "docker://127.0.0.1:9/app:v1", "pull": "controller", "controller_cache": os.path.join(scratch, "c"),
            name: value}
    result = host.stage(args)
    assert result["failed"] and name in result["msg"], result
    assert not os.path.exists(host.home)


def age_cache(cache, days):
    """Date the last use of every blob in the cache that many days back."""
    blobs = os.path.join(cache, "blobs", "sha256")
    when = time.time() - days * 86400
    for name in os.listdir(blobs):
        os.utime(os.path.join(blobs, name), (when, when))
    return {name: os.stat(os.path.join(blobs, name)).st_mtime for name in os.listdir(blobs)}


def test_a_run_prunes_the_blobs_it_did_not_use_and_keeps_those_it_sent(regs, scratch, layout):
    """controller_cache_max_age: base's blobs, unused for 40 days, go; the app blobs this task sent stay."""
    del layout
    host = Host(os.path.join(scratch, "host"))
    cache = os.path.join(scratch, "cache")
    base = host.stage(pull_args(regs, "base", cache))
    assert not base.get("failed"), base
    aged = age_cache(cache, 40)
    result = host.stage(pull_args(regs, "app", cache, controller_cache_max_age=30))
    assert not result.get("failed"), result
    assert result["sent_layers"] == 1 and len(result["controller_fetched"]) == 2
    assert sorted(result["controller_pruned"]) == sorted("sha256:" + name for name in aged)
    assert sorted(os.listdir(os.path.join(cache, "blobs", "sha256"))) == sorted(
        d.split(":", 1)[1] for d in result["controller_fetched"])
    assert not os.listdir(os.path.join(cache, "tmp"))


def test_check_mode_prunes_nothing_and_records_no_use(regs, scratch, layout):
    del layout
    cache = os.path.join(scratch, "cache")
    assert not Host(os.path.join(scratch, "one")).stage(pull_args(regs, "base", cache)).get("failed")
    aged = age_cache(cache, 40)
    result = Host(os.path.join(scratch, "two")).stage(
        pull_args(regs, "app", cache, controller_cache_max_age=0, controller_cache_max_size=0), check_mode=True)
    assert not result.get("failed"), result
    assert result["controller_pruned"] == [] and result["controller_fetched"] == []
    assert {name: os.stat(os.path.join(cache, "blobs", "sha256", name)).st_mtime
            for name in os.listdir(os.path.join(cache, "blobs", "sha256"))} == aged


def plant_abandoned_temp(cache):
    """What a fetch killed mid-way leaves: a half-written temp in tmp/, its fetch lock free (the kernel dropped it
    with the process), for a blob no later task fetches again."""
    os.makedirs(os.path.join(cache, "tmp"), 0o700, exist_ok=True)
    temp = os.path.join(cache, "tmp", "d" * 64 + ".0123456789abcdef")
    with open(temp, "wb") as f:
        f.write(b"\0" * 4096)
    return temp


def test_a_run_removes_the_temp_a_killed_fetch_left(regs, scratch, layout):
    del layout
    cache = os.path.join(scratch, "cache")
    assert not Host(os.path.join(scratch, "one")).stage(pull_args(regs, "base", cache)).get("failed")
    temp = plant_abandoned_temp(cache)
    result = Host(os.path.join(scratch, "two")).stage(pull_args(regs, "base", cache))
    assert not result.get("failed"), result
    assert not os.path.exists(temp) and os.listdir(os.path.join(cache, "tmp")) == []


def test_check_mode_leaves_an_abandoned_temp_alone(regs, scratch, layout):
    del layout
    cache = os.path.join(scratch, "cache")
    assert not Host(os.path.join(scratch, "one")).stage(pull_args(regs, "base", cache)).get("failed")
    temp = plant_abandoned_temp(cache)
    result = Host(os.path.join(scratch, "two")).stage(pull_args(regs, "base", cache), check_mode=True)
    assert not result.get("failed"), result
    assert os.path.exists(temp)


def test_an_image_of_too_many_layers_is_refused_before_any_layer_is_fetched_or_sent(scratch):
    """The host would refuse more than MAX_IMAGE_LAYERS layers: the controller says so after the config, having
    fetched no layer into its cache and sent the host nothing."""
    from fake_registry import FakeRegistry, make_ca  # pylint: disable=import-outside-toplevel
    from imagetools import Image, mkimages  # pylint: disable=import-outside-toplevel
    pki = make_ca(scratch)
    server = FakeRegistry(tls=(pki[1], pki[2])).start()
    try:
        layers = stage.MAX_IMAGE_LAYERS + 1
        server.push("team/many", Image(tars=[mkimages.layer_tar([("f%d" % i, b"x", 0o644)]) for i in range(layers)]))
        host = Host(os.path.join(scratch, "host"))
        result = host.stage({"src": "docker://%s/team/many:v1" % server.netloc, "pull": "controller",
                             "ca_path": pki[0], "controller_cache": os.path.join(scratch, "cache")})
        assert result.get("failed") and "the image has %d layers; at most %d" % (layers, stage.MAX_IMAGE_LAYERS) in \
            result["msg"]
        assert len([p for p, _h in server.requests if "/blobs/" in p]) == 1  # the config only
        assert host.sent == [] and host.module_args == []
        assert len(os.listdir(os.path.join(scratch, "cache", "blobs", "sha256"))) == 1  # the config
    finally:
        server.stop()
