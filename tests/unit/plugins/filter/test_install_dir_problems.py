"""install_dir_problems and path_ancestors: the directories on the way to the restore program, judged.

The role test (tests/unit/roles/overlay_layers/test_restore_program.py) runs them on a real host;
here the shapes a find run gives that a temp directory cannot easily make (symlinks on the way,
group 0) are judged.
"""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.strata.overlay.plugins.filter.install_dir_problems import install_dir_problems
from ansible_collections.strata.overlay.plugins.filter.path_ancestors import path_ancestors


def test_the_ancestors_of_a_path_are_each_entry_on_the_way():
    assert [(a["dir"], a["name"], a["path"]) for a in path_ancestors("/usr/local/lib/../lib/strata-overlay/")] == [
        ("/", "usr", "/usr"), ("/usr", "local", "/usr/local"), ("/usr/local", "lib", "/usr/local/lib"),
        ("/usr/local/lib", "strata-overlay", "/usr/local/lib/strata-overlay")]
    assert path_ancestors("/") == []
    [entry] = path_ancestors("/a.b*")
    assert entry["pattern"] == r"a\.b\*\Z"


def test_a_relative_path_has_no_ancestors_to_judge():
    with pytest.raises(AnsibleFilterError, match="absolute path"):
        path_ancestors("lib/strata-overlay")


def _entry(path, uid=0, gid=0, mode="0755", islnk=False):
    return {"path": path, "uid": uid, "gid": gid, "mode": mode, "islnk": islnk, "isdir": not islnk}


@pytest.mark.parametrize("entry, problem", [
    (_entry("/opt", mode="0775", gid=0), None),  # group root: root's own
    (_entry("/opt", mode="1777"), None),
    (_entry("/opt", islnk=True, mode="0777"), None),  # a link's mode means nothing; root made it
    (_entry("/opt", uid=1000, islnk=True, mode="0777"), "/opt is a symbolic link owned by uid 1000"),
    (_entry("/opt", mode="2775", gid=50), "/opt is writable by group 50 (mode 2775)"),
    (_entry("/opt", mode="0757"), "/opt is writable by every user (mode 0757, no sticky bit)"),
    (_entry("/opt", uid=1000), "/opt is owned by uid 1000, not by root"),
])
def test_each_entry_is_judged_by_owner_mode_and_sticky_bit(entry, problem):
    found = [entry, _entry("/opt/other", uid=1000, mode="0777")]  # matched by find, not on the way
    ancestors = path_ancestors("/opt/strata")
    assert install_dir_problems(found, ancestors) == ([problem] if problem else [])
