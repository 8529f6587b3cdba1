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
    assert path_ancestors("/usr/local/lib/strata-overlay/") == [
        "/usr", "/usr/local", "/usr/local/lib", "/usr/local/lib/strata-overlay"]
    assert path_ancestors("//usr//local") == ["/usr", "/usr/local"]
    assert path_ancestors("/") == []


@pytest.mark.parametrize("path", ["lib/strata-overlay", "/a\nb", None])
def test_a_relative_path_or_one_with_a_newline_has_no_ancestors_to_judge(path):
    with pytest.raises(AnsibleFilterError, match="absolute path"):
        path_ancestors(path)


@pytest.mark.parametrize("path", ["/usr/local/lib/../lib/strata-overlay", "/opt/link/..", "/opt/./strata"])
def test_a_path_with_dot_or_dot_dot_is_refused_not_resolved_as_text(path):
    """As text /opt/link/.. is /opt; the kernel goes wherever link leads first, so judging /opt would judge
    the wrong directories."""
    with pytest.raises(AnsibleFilterError, match=r"without \. or \.\."):
        path_ancestors(path)


OTHER = "1000|0|777|directory|/opt/other"  # not on the way


@pytest.mark.parametrize("line, problem", [
    ("0|0|755|directory|/opt", None),
    ("0|0|775|directory|/opt", "/opt is writable by group 0 or an ACL entry (mode 0775, no sticky bit)"),
    ("0|0|777|symbolic link|/opt", "/opt is a symbolic link (the directories it leads to are not judged here: "
                                   "name the directory it leads to)"),
    ("1000|1000|777|symbolic link|/opt", "/opt is a symbolic link owned by uid 1000"),
    ("0|50|2775|directory|/opt", "/opt is writable by group 50 or an ACL entry (mode 2775, no sticky bit)"),
    ("0|0|757|directory|/opt", "/opt is writable by every user (mode 0757, no sticky bit)"),
    ("1000|0|755|directory|/opt", "/opt is owned by uid 1000, not by root"),
])
def test_each_entry_is_judged_by_owner_mode_and_type(line, problem):
    assert install_dir_problems([line, OTHER], path_ancestors("/opt/strata")) == ([problem] if problem else [])


def test_a_sticky_directory_is_judged_by_whether_the_next_entry_is_there():
    """In /tmp only root may rename or remove root's entry; but an entry not there yet, anybody may make."""
    ancestors = path_ancestors("/tmp/strata/lib")
    sticky = "0|0|1777|directory|/tmp"
    there = ["0|0|755|directory|/tmp/strata", "0|0|755|directory|/tmp/strata/lib"]
    assert install_dir_problems([sticky] + there, ancestors) == []
    missing = install_dir_problems([sticky], ancestors)
    assert missing == ["/tmp is writable by every user (mode 1777) and what comes next on the way is not there "
                       "yet: any of them could make it first"]
    # the last path is judged as if what is below it were not there: the role makes overlay_driver in it
    assert install_dir_problems(["0|0|755|directory|/tmp", "0|0|1777|directory|/tmp/strata",
                                 "0|0|1777|directory|/tmp/strata/lib"], ancestors) == [
        "/tmp/strata/lib is writable by every user (mode 1777) and what comes next on the way is not there yet: "
        "any of them could make it first"]


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
