"""install_dir_problems and path_ancestors: the entries on the way to the restore program, judged.

The role test (tests/unit/roles/overlay_layers/test_restore_program.py) runs them on a real host
through a real stat; here the lines stat prints for shapes a temp directory cannot easily make
(symlinks on the way, group 0, names holding '|') are judged.
"""

import os
import subprocess

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.strata.overlay.plugins.filter.install_dir_problems import install_dir_problems
from ansible_collections.strata.overlay.plugins.filter.path_ancestors import path_ancestors


def test_the_ancestors_of_a_path_are_each_entry_on_the_way():
    assert path_ancestors("/usr/local/lib/../lib/strata-overlay/") == [
        "/usr", "/usr/local", "/usr/local/lib", "/usr/local/lib/strata-overlay"]
    assert path_ancestors("/") == []


@pytest.mark.parametrize("path", ["lib/strata-overlay", "/a\nb", None])
def test_a_relative_path_or_one_with_a_newline_has_no_ancestors_to_judge(path):
    with pytest.raises(AnsibleFilterError, match="absolute path"):
        path_ancestors(path)


@pytest.mark.parametrize("line, problem", [
    ("0|0|775|directory|/opt", None),  # group root: root's own
    ("0|0|1777|directory|/opt", None),
    ("0|0|777|symbolic link|/opt", None),  # a link's mode means nothing; root made it
    ("1000|1000|777|symbolic link|/opt", "/opt is a symbolic link owned by uid 1000"),
    ("0|50|2775|directory|/opt", "/opt is writable by group 50 (mode 2775)"),
    ("0|0|757|directory|/opt", "/opt is writable by every user (mode 0757, no sticky bit)"),
    ("1000|0|755|directory|/opt", "/opt is owned by uid 1000, not by root"),
])
def test_each_entry_is_judged_by_owner_mode_and_sticky_bit(line, problem):
    lines = [line, "1000|0|777|directory|/opt/other"]  # not on the way
    assert install_dir_problems(lines, path_ancestors("/opt/strata")) == ([problem] if problem else [])


def test_what_a_real_stat_prints_is_read_and_a_name_with_a_bar_kept_whole(tmp_path):
    odd = tmp_path / "a|b"
    odd.mkdir()
    os.chmod(odd, 0o777)
    ancestors = path_ancestors(str(odd / "lib"))
    run = subprocess.run(["stat", "--printf", "%u|%g|%a|%F|%n\n", "--"] + ancestors, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 1 and "No such file or directory" in run.stderr  # lib is not there yet
    assert install_dir_problems(run.stdout.splitlines(), ancestors) == [
        "%s is writable by every user (mode 0777, no sticky bit)" % odd]


def test_a_line_that_is_not_stats_is_an_error():
    with pytest.raises(AnsibleFilterError, match="not uid"):
        install_dir_problems(["drwxr-xr-x /opt"], ["/opt"])
