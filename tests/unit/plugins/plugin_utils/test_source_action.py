"""What both action plugins that send src share: remote_src read strictly, and the host's temp dir always removed."""

import pytest

from ansible.plugins.action import ActionBase

from ansible_collections.strata.overlay.plugins.plugin_utils.source_action import SourceAction


class _Task:
    def __init__(self, args):
        self.args = args
        self.action = "strata.overlay.overlay_apply_diff"


class _Recorder(SourceAction):
    def _run_with_src(self, result, args, remote_src, task_vars):
        return dict(result, args=args, remote_src=remote_src)


def _action(monkeypatch, args):
    monkeypatch.setattr(ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    action = object.__new__(_Recorder)
    action._task = _Task(args)  # pylint: disable=protected-access
    return action


@pytest.mark.parametrize("given, expected", [(None, False), ("yes", True), (False, False)])
def test_remote_src_is_a_boolean(monkeypatch, given, expected):
    args = {"id": "app"} if given is None else {"id": "app", "remote_src": given}
    result = _action(monkeypatch, args).run(task_vars={})
    assert result["remote_src"] is expected
    assert result["args"] == args


def test_a_remote_src_that_is_no_boolean_fails_the_task(monkeypatch):
    result = _action(monkeypatch, {"id": "app", "remote_src": "sometimes"}).run(task_vars={})
    assert result["failed"] is True
    assert result["msg"].startswith("remote_src: ")


def test_the_host_tmpdir_is_removed_when_sending_fails(monkeypatch):
    action = _action(monkeypatch, {})
    removed = []

    class _Shell:
        tmpdir = None

    class _Connection:
        _shell = _Shell()

    action._connection = _Connection()  # pylint: disable=protected-access
    action._make_tmp_path = lambda: "/tmp/ansible-tmp-1"  # pylint: disable=protected-access
    action._remove_tmp_path = removed.append  # pylint: disable=protected-access
    with pytest.raises(OSError):
        with action._host_tmpdir() as tmpdir:  # pylint: disable=protected-access
            assert tmpdir == "/tmp/ansible-tmp-1"
            raise OSError("connection lost")
    assert removed == ["/tmp/ansible-tmp-1"]
