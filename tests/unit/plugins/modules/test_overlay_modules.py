"""The module glue: argument specs, check and diff mode, and every failure as failed/msg."""

import os

import pytest

from ansible_collections.strata.overlay.plugins.modules import (
    overlay_apply_diff, overlay_diff, overlay_image, overlay_info, overlay_layer, overlay_mount)

from layertools import TarBuilder, applies_naively, content_dir, sha256

BASE = TarBuilder().dir("etc").file("etc/motd", "hello\n").bytes()


@pytest.fixture
def tarball(scratch):
    path = os.path.join(scratch, "base.tar")
    with open(path, "wb") as f:
        f.write(BASE)
    return path


def test_layer_present_check_real_rerun(run_module, home):
    res = run_module(overlay_layer, {"id": "base", "home": home}, check_mode=True, diff=True)
    assert res["changed"] and not os.path.exists(os.path.join(home, "base"))
    assert res["diff"]["before"]["exists"] is False and res["diff"]["after"]["exists"] is True
    res = run_module(overlay_layer, {"id": "base", "home": home})
    assert res["changed"] and res["layer"]["kind"] == "root"
    assert os.path.isdir(content_dir(home, "base"))
    assert run_module(overlay_layer, {"id": "base", "home": home})["changed"] is False


def test_apply_diff_returns_the_seed_size_not_the_path_size(run_module, home, layout, tarball):
    res = run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarball, "remote_src": True})
    assert res["changed"] and res["size"] == len("hello\n") and res["diff_id"] == sha256(BASE)
    assert res["path"] == os.path.join(home, "base", "merged")  # never root/ nor diff/
    assert res["fallback"] is applies_naively(layout, "none")
    assert "uid" not in res  # the path's file attributes are not mixed in


def test_apply_diff_without_src_answers_from_the_record(run_module, home, tarball):
    res = run_module(overlay_apply_diff, {"id": "base", "home": home, "diff_id": sha256(BASE), "remote_src": True})
    assert res["failed"] and res["needs_src"] and "src is required" in res["msg"]
    # a check run needs the tarball too: it verifies it, and reports what the real run would
    res = run_module(overlay_apply_diff, {"id": "base", "home": home, "diff_id": sha256(BASE), "remote_src": True},
                     check_mode=True)
    assert res["failed"] and res["needs_src"] and not os.path.exists(os.path.join(home, "base"))
    res = run_module(overlay_apply_diff, {"id": "base", "home": home, "diff_id": sha256(BASE), "src": tarball,
                                          "remote_src": True}, check_mode=True)
    assert res["changed"] and res["diff_id"] == sha256(BASE) and res["size"] == len("hello\n")
    assert not os.path.exists(os.path.join(home, "base"))
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarball, "remote_src": True})
    res = run_module(overlay_apply_diff, {"id": "base", "home": home, "diff_id": sha256(BASE), "remote_src": True})
    assert res["changed"] is False and res["size"] == len("hello\n")


def test_mount_cycle(run_module, home, tarball):
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarball, "remote_src": True})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    res = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web"}, diff=True)
    try:
        assert res["changed"] and res["mounted"] and res["holders"] == ["web"]
        # the recorded directory, not the descriptor the mount was made with
        assert res["options"]["lowerdir"] == content_dir(home, "base")
        assert res["diff"]["after"]["mounted"] is True
        assert run_module(overlay_mount, {"id": "app", "home": home, "holder": "web"})["changed"] is False
    finally:
        res = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web", "state": "unmounted"})
    assert res["changed"] and not res["mounted"] and res["options"] == {}


def test_info_and_diff(run_module, home, tarball, scratch):
    res = run_module(overlay_info, {"home": home})
    assert res["status"]["overlay_supported"] and res["layers"] == [] and not os.path.exists(home)
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarball, "remote_src": True})
    res = run_module(overlay_info, {"home": home, "id": "base", "changes": True})
    assert [c["path"] for c in res["changes"]] == ["/etc", "/etc/motd"] and res["diff_size"] == len("hello\n")
    dest = os.path.join(scratch, "out.tar")
    res = run_module(overlay_diff, {"id": "base", "home": home, "dest": dest})
    assert res["changed"] and res["size"] == len("hello\n") and res["tar_size"] == os.path.getsize(dest)
    assert run_module(overlay_diff, {"id": "base", "home": home, "dest": dest})["changed"] is False


BAD_ARGS = [
    (overlay_layer, {"id": "../x"}, "invalid layer id"),
    (overlay_layer, {"id": "a", "parent": "b/c"}, "invalid parent id"),
    (overlay_layer, {"id": "a", "state": "gone"}, "value of state must be one of"),
    (overlay_layer, {}, "missing required arguments: id"),
    (overlay_layer, {"id": "a", "uid_maps": [{"container_id": 0, "host_id": 1}]}, "missing required arguments: size"),
    (overlay_layer, {"id": "a", "uid_maps": [{"container_id": 1, "host_id": 1, "size": 1}]}, "not mapped"),
    (overlay_layer, {"id": "a", "uid_maps": [{"container_id": -1, "host_id": 1, "size": 1}]}, "non-negative"),
    (overlay_layer, {"id": "a", "force": "maybe"}, "force"),
    (overlay_mount, {"id": "nothing"}, "does not exist"),
    (overlay_mount, {"id": "a", "holder": ""}, "holder must be a non-empty string"),
    (overlay_apply_diff, {"id": "a", "src": "/nonexistent.tar", "remote_src": True}, "src is not a file"),
    (overlay_apply_diff, {"id": "a", "diff_id": "sha256:xyz", "remote_src": True}, "sha256:<64 hex digits>"),
    (overlay_apply_diff, {"id": "a", "compression": "lz4"}, "value of compression must be one of"),
    (overlay_diff, {"id": "a", "dest": "/tmp/x.tar"}, "does not exist"),
    (overlay_info, {"id": "nothing", "changes": True}, "does not exist"),
]


@pytest.mark.parametrize("module,args,message", BAD_ARGS, ids=[str(i) for i in range(len(BAD_ARGS))])
def test_bad_options_fail_cleanly(run_module, home, module, args, message):
    os.makedirs(home, exist_ok=True)
    if module is overlay_mount and args.get("id") == "a":
        run_module(overlay_layer, {"id": "a", "home": home})
    res = run_module(module, dict(args, home=home))
    assert res["failed"] is True
    assert message in res["msg"]
    assert "Traceback" not in res["msg"]
    assert not os.path.exists(os.path.join(home, "nothing"))


def test_unexpected_errors_are_reported_without_a_traceback_in_msg(run_module, home, monkeypatch):
    from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver import store

    def boom(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.LayerStore, "ensure_present", boom)
    res = run_module(overlay_layer, {"id": "a", "home": home})
    assert res["failed"] and res["msg"] == "layer a: unexpected error: RuntimeError: disk on fire"
    assert "Traceback" in res["exception"]


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_no_module_returns_a_path_into_a_root(run_module, home, tarball):
    """Image layers are immutable: every path a module hands out avoids root/, also in metadata."""
    results = [run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarball, "remote_src": True}),
               run_module(overlay_layer, {"id": "app", "parent": "base", "home": home}),
               run_module(overlay_layer, {"id": "base", "home": home})]
    mounted = run_module(overlay_mount, {"id": "base", "home": home})
    try:
        results += [mounted, run_module(overlay_info, {"home": home, "id": "base"})]
        root = content_dir(home, "base")
        leaks = [s for res in results for s in _strings(res) if s.startswith(root)]
        assert leaks == []
        assert results[1]["layer"]["metadata"]["LowerId"] == "base"
        assert results[2]["layer"]["metadata"] == {"MergedDir": os.path.join(home, "base", "merged")}
    finally:
        run_module(overlay_mount, {"id": "base", "home": home, "state": "unmounted"})


def test_a_failure_naming_a_path_carries_no_file_stats(run_module, home):
    """AnsibleModule adds a returned path's owner, mode, state and size to failures too: the path an
    error names is the file the failure is about, not the task's result."""
    run_module(overlay_layer, {"id": "a", "home": home})
    mounted = run_module(overlay_mount, {"id": "a", "home": home, "holder": "web"})
    try:
        res = run_module(overlay_layer, {"id": "a", "home": home, "state": "absent"})
        assert res["failed"] and "still held by web" in res["msg"] and res["path"] == os.path.join(home, "a")
        assert not {"uid", "owner", "mode", "state", "size"} & set(res)
    finally:
        run_module(overlay_mount, {"id": "a", "home": home, "holder": "web", "state": "unmounted"})
    assert mounted["changed"]


@pytest.mark.parametrize("module,args", [
    (overlay_layer, {"id": "a"}), (overlay_mount, {"id": "a"}), (overlay_apply_diff, {"id": "a", "remote_src": True}),
    (overlay_diff, {"id": "a", "dest": "/nonexistent/a.tar"}), (overlay_info, {}),
    (overlay_image, {"src": "oci:LAYOUT", "remote_src": True})], ids=lambda v: getattr(v, "__name__", "").rsplit(".")[-1])
def test_no_failure_carries_the_file_stats_of_the_path_it_names(run_module, home, scratch, module, args):
    """A foreign home (and an image layout that is none) fails every module naming an existing path."""
    os.makedirs(home)
    os.chown(home, 65534, 65534)
    layout = os.path.join(scratch, "layout")
    os.makedirs(layout)
    res = run_module(module, dict(args, home=home, **({"src": "oci:" + layout} if module is overlay_image else {})))
    assert res["failed"] and res["path"] in (home, layout), res
    assert not {"uid", "owner", "mode", "state", "size"} & set(res)


def test_overlay_image_takes_name_and_reports_what_it_fetched(run_module, home, scratch):
    """name is src as community.docker spells it; fetched_bytes and seconds are what the role reports per image."""
    from imagetools import Image  # pylint: disable=import-outside-toplevel

    image = Image()
    layout = image.write_layout(os.path.join(scratch, "layout"))
    res = run_module(overlay_image, {"name": "oci:%s:v1" % layout, "remote_src": True, "home": home})
    assert res["changed"] and not res.get("failed"), res
    assert res["fetched_bytes"] == res["bytes"] > 0 and res["seconds"] == res["elapsed"] >= 0
    again = run_module(overlay_image, {"name": "oci:%s:v1" % layout, "remote_src": True, "home": home})
    assert not again["changed"] and again["fetched_bytes"] == 0


def test_overlay_image_takes_community_docker_credentials_at_the_top_level(run_module, home):
    from ansible_collections.strata.overlay.plugins.module_utils.image_request import (  # pylint: disable=import-outside-toplevel
        registry_credentials)

    assert registry_credentials({"src": "docker://r/x", "username": "u", "password": "p"}) == {
        "username": "u", "password": "p"}
    assert registry_credentials({"src": "docker://r/x", "auth_file": "/a.json", "registry_auth": None}) == {
        "auth_file": "/a.json"}
    assert registry_credentials({"src": "docker://r/x", "registry_auth": {"username": "u", "password": "p",
                                                                          "auth_file": None}}) == {
        "username": "u", "password": "p"}
    res = run_module(overlay_image, {"src": "docker://127.0.0.1:1/x", "home": home, "username": "u",
                                     "password": "secret", "registry_auth": {"username": "v", "password": "w"}})
    assert res["failed"] and "not both" in res["msg"] and "secret" not in res["msg"]
    assert not os.path.exists(home)


def test_overlay_mount_takes_the_roles_state_words_too(run_module, home):
    """present and absent, as the role's overlay_mounts entries say them, are mounted and unmounted."""
    run_module(overlay_layer, {"id": "base", "home": home})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    try:
        res = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web", "state": "present"})
        assert res["changed"] and res["mounted"] and res["holders"] == ["web"]
        assert not run_module(overlay_mount, {"id": "app", "home": home, "holder": "web", "state": "mounted"})["changed"]
    finally:
        res = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web", "state": "absent"})
    assert res["changed"] and not res["mounted"] and res["holders"] == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_released_lists_the_holders_force_dropped(run_module, home, check_mode):
    run_module(overlay_layer, {"id": "base", "home": home})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    for holder in ("web", "backup"):
        assert run_module(overlay_mount, {"id": "app", "home": home, "holder": holder})["released"] == []
    res = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web", "state": "unmounted", "force": True},
                     check_mode=check_mode)
    assert res["changed"] and res["released"] == ["backup", "web"]
    if check_mode:
        res = run_module(overlay_layer, {"id": "app", "home": home, "state": "absent", "force": True}, check_mode=True)
        assert res["changed"] and res["released"] == ["backup", "web"]
        run_module(overlay_mount, {"id": "app", "home": home, "holder": "web", "state": "unmounted", "force": True})
    res = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web", "state": "unmounted"})
    assert not res["changed"] and res["released"] == []


def test_mount_says_whether_the_layer_is_read_only(run_module, home, tarball):
    """A layer with children (or an applied diff) is mounted read-only and says so; its child on top is the
    writable one."""
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarball, "remote_src": True})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    run_module(overlay_layer, {"id": "top", "parent": "app", "home": home})
    try:
        checked = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web"}, check_mode=True)
        assert checked["changed"] and checked["readonly"] is True
        res = {layer_id: run_module(overlay_mount, {"id": layer_id, "home": home, "holder": "web"})
               for layer_id in ("base", "app", "top")}
        assert {k: (v["mounted"], v["readonly"]) for k, v in res.items()} == {
            "base": (True, True), "app": (True, True), "top": (True, False)}
        assert run_module(overlay_info, {"home": home, "id": "app"})["layer"]["readonly"] is True
    finally:
        for layer_id in ("top", "app", "base"):
            run_module(overlay_mount, {"id": layer_id, "home": home, "holder": "web", "state": "unmounted"})


@pytest.mark.layout("overlay2")  # overlay2's l/ of short links
def test_a_home_whose_short_links_were_renamed_away_is_repaired_by_a_mount(run_module, home, tarball, scratch):
    """l/ renamed away: overlay_info and a check run say what the next writer makes again and change nothing;
    the mount makes it again (changed, with a warning) and mounts; the next run has nothing to do."""
    run_module(overlay_apply_diff, {"id": "base", "home": home, "src": tarball, "remote_src": True})
    run_module(overlay_layer, {"id": "app", "parent": "base", "home": home})
    links = os.path.join(home, "l")
    wanted = sorted(os.path.join(links, name) for name in os.listdir(links))
    os.rename(links, os.path.join(scratch, "l-away"))

    info = run_module(overlay_info, {"home": home})
    assert info["repairs"] == [links] + wanted and info["damaged"] == []
    assert any("made again" in w for w in info["warnings"])
    res = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web"}, check_mode=True)
    assert res["changed"] and res["mounted"] and "would be made again" in res["warnings"][-1]
    assert not os.path.lexists(links)

    res = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web"})
    try:
        assert res["changed"] and res["mounted"] and res["warnings"][-1].endswith(", ".join([links] + wanted))
        assert sorted(os.path.join(links, name) for name in os.listdir(links)) == wanted
        assert os.listdir(os.path.join(res["path"], "etc")) == ["motd"]
        again = run_module(overlay_mount, {"id": "app", "home": home, "holder": "web"})
        assert again["changed"] is False and "warnings" not in again
        assert run_module(overlay_info, {"home": home})["repairs"] == []
    finally:
        run_module(overlay_mount, {"id": "app", "home": home, "holder": "web", "state": "unmounted"})
