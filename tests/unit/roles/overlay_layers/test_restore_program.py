# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role installs the boot unit's restore program in a fixed number of module runs.

The tasks run for real (ansible-playbook on localhost, into a temp directory): an unchanged
host costs the directory and one read of the installed files, whatever the package's size;
files that differ in content, mode or owner are put back and stale ones removed.
"""

import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SOURCES = sorted(glob.glob(os.path.join(REPO, "plugins", "module_utils", "overlay_driver", "*.py")))

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Install the restore program
      ansible.builtin.include_role:
        name: strata.overlay.overlay_layers
        tasks_from: restore_program
    - name: Write down what the install did
      ansible.builtin.copy:
        dest: "{{ summary }}"
        mode: "0600"
        content: >-
          {{ {'dir': overlay_layers_lib_dir_made, 'found': overlay_layers_lib_found,
              'copied': overlay_layers_lib.results, 'removed': overlay_layers_lib_stale.results} | to_json }}
      check_mode: false
"""


@pytest.fixture
def play(tmp_path):
    collections = tmp_path / "collections"
    (collections / "ansible_collections" / "strata").mkdir(parents=True)
    os.symlink(REPO, collections / "ansible_collections" / "strata" / "overlay")
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    lib = tmp_path / "lib"
    summary = tmp_path / "summary.json"

    def run(*args, fails=False, env=None):
        env = dict(os.environ, **(env or {}))
        env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"))
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
             "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "overlay_layers_lib_dir=%s" % lib,
             "-e", "summary=%s" % summary, str(playbook)] + list(args),
            env=env, capture_output=True, text=True, check=False)
        if fails:
            assert proc.returncode != 0, proc.stdout + proc.stderr
            return proc.stdout + proc.stderr
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with open(summary) as f:
            result = json.load(f)
        os.unlink(summary)
        result["output"] = proc.stdout + proc.stderr
        return result

    run.installed = lib / "overlay_driver"
    return run


def _module_runs(result):
    """The module runs of the install: the skipped ones and empty loops ran nothing on the host."""
    runs = [r for r in (result["dir"], result["found"]) if not r.get("skipped")]
    return len(runs) + len(result["copied"]) + len(result["removed"])


def _changed(result):
    return [r for r in [result["dir"]] + result["copied"] + result["removed"] if r.get("changed")]


def _sha1(path):
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def _assert_installed(directory):
    assert sorted(os.listdir(directory)) == sorted(os.path.basename(s) for s in SOURCES)
    for source in SOURCES:
        st = os.lstat(os.path.join(directory, os.path.basename(source)))
        assert (oct(st.st_mode), st.st_uid, st.st_gid) == (oct(0o100644), 0, 0)
        assert _sha1(os.path.join(directory, os.path.basename(source))) == _sha1(source)


def test_an_unchanged_host_costs_two_module_runs_not_one_per_file(play):
    assert len(SOURCES) > 10
    first = play()
    assert len(first["copied"]) == len(SOURCES)
    assert _changed(first)
    assert "WARNING" not in first["output"]
    _assert_installed(play.installed)

    again = play()
    assert _module_runs(again) == 2
    assert _changed(again) == []
    _assert_installed(play.installed)


def test_a_check_run_on_a_new_host_predicts_the_install_and_writes_nothing(play):
    result = play("--check")
    assert result["found"].get("skipped")
    assert len(result["copied"]) == len(SOURCES)
    assert all(r["changed"] for r in result["copied"])
    assert "WARNING" not in result["output"]
    assert not play.installed.parent.exists()


def test_files_changed_on_the_host_are_put_back_and_stale_ones_removed(play):
    play()
    edited, loosened, chowned, linked = (play.installed / os.path.basename(s) for s in SOURCES[:4])
    with open(edited, "a") as f:
        f.write("import os\n")
    os.chmod(loosened, 0o666)
    os.chown(chowned, 1000, 1000)
    os.unlink(linked)
    os.symlink("/etc/passwd", linked)
    (play.installed / "gone_from_the_package.py").write_text("raise SystemExit\n")

    check = play("--check")
    assert sorted(os.path.basename(r["overlay_layers_driver_file"]) for r in check["copied"]) == sorted(
        p.name for p in (edited, loosened, chowned, linked))
    assert [r["overlay_layers_stale_file"] for r in check["removed"]] == [str(play.installed / "gone_from_the_package.py")]
    assert (play.installed / "gone_from_the_package.py").exists()
    assert os.path.islink(linked)

    fixed = play()
    assert _module_runs(fixed) == 2 + 4 + 1
    assert len(_changed(fixed)) == 5
    _assert_installed(play.installed)
    assert _module_runs(play()) == 2


def test_a_symlink_planted_at_the_directorys_name_is_refused_and_its_target_untouched(play, tmp_path):
    """Where someone else can write the lib dir, a link at overlay_driver must not lead the chown, the copies
    and the removal of stale files to a directory of root's."""
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    (victim / "keep.py").write_text("secret = 1\n")
    play.installed.parent.mkdir()
    os.symlink(victim, play.installed)
    output = play(fails=True)
    assert "link" in output
    assert os.path.islink(play.installed)
    assert oct(os.lstat(victim).st_mode) == oct(0o40700)
    assert os.listdir(victim) == ["keep.py"]


@pytest.mark.parametrize("mode, owner, problem", [
    (0o777, 0, "is writable by every user (mode 0777, no sticky bit)"),
    (0o775, (0, 1000), "is writable by group 1000 or an ACL entry (mode 0775, no sticky bit)"),
    (0o775, (0, 0), "is writable by group 0 or an ACL entry (mode 0775, no sticky bit)"),
    (0o1777, 0, "is writable by every user (mode 1777) and what comes next on the way is not there yet"),
    (0o755, (1000, 1000), "is owned by uid 1000, not by root"),
], ids=["world-writable", "group-writable", "group-root-writable", "sticky-next-missing", "another-owner"])
def test_a_lib_dir_another_user_could_change_fails_naming_the_directory(play, tmp_path, mode, owner, problem):
    """Whoever can write the lib dir or a directory above it could swap the program the boot unit runs as
    root: the role stops before installing anything, naming the directory and why. In a sticky directory
    (/tmp) whoever makes the missing lib dir first owns it, so that is refused too; a group-writable
    directory of group root is how a POSIX ACL letting another user write shows."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, *(owner if isinstance(owner, tuple) else (0, 0)))
    os.chmod(shared, mode)
    lib = shared / "lib" / "strata-overlay"
    output = play("-e", "overlay_layers_lib_dir=%s" % lib, fails=True)
    assert "overlay_layers_lib_dir %s: %s %s" % (lib, shared, problem) in " ".join(output.split()), output
    assert "so a user other than root could replace the restore program" in " ".join(output.split()), output
    assert os.listdir(shared) == []
    assert "Copy the files that are missing or differ" not in output


def test_a_lib_dir_that_exists_under_a_sticky_world_writable_directory_and_the_default_pass(play, tmp_path):
    """Only root may rename or remove root's own entry of a sticky directory: once it is there, it is root's."""
    shared = tmp_path / "sticky"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "lib").mkdir(mode=0o755)
    first = play("-e", "overlay_layers_lib_dir=%s" % (shared / "lib"))
    assert len(first["copied"]) == len(SOURCES)
    _assert_installed(shared / "lib" / "overlay_driver")
    # the default, checked only: a check run installs nothing on this host
    default = play("--check", "-e", "overlay_layers_lib_dir=/usr/local/lib/strata-overlay")
    assert "Refuse a restore program directory" in default["output"]
    assert "overlay_layers_lib_dir /usr/local/lib/strata-overlay:" not in default["output"]


def test_a_symlink_on_the_way_is_refused_whoever_owns_it_and_what_it_leads_to_untouched(play, tmp_path):
    """root's own link to a directory uid 1000 owns: judging the link alone, the role installed the program
    where that user could swap it."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 1000, 1000)
    os.symlink(theirs, tmp_path / "link")
    lib = tmp_path / "link" / "lib"
    output = play("-e", "overlay_layers_lib_dir=%s" % lib, fails=True)
    assert "%s is a symbolic link (the directories it leads to are not judged here" % (tmp_path / "link") in \
        " ".join(output.split()), output
    assert os.listdir(theirs) == []


@pytest.mark.parametrize("lib", ["relative/lib", "{tmp}/x/../lib", "{tmp}/./lib"])
def test_a_lib_dir_named_otherwise_than_absolute_without_dots_fails_naming_the_variable(play, tmp_path, lib):
    lib = lib.format(tmp=tmp_path)
    output = play("-e", "overlay_layers_lib_dir=%s" % lib, fails=True)
    assert "overlay_layers_lib_dir %s: name the directory by an absolute path without . or .." % lib in \
        " ".join(output.split()), output
    assert not os.path.exists(tmp_path / "lib")


def _german_locale(where):
    """A de_DE.UTF-8 locale made into a directory of its own (LOCPATH), or None where it cannot be made or
    stat is not translated (no coreutils translations): then the case cannot be shown here."""
    where.mkdir()
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(where / "de_DE.UTF-8")],
                          capture_output=True, check=False)
    if made.returncode not in (0, 1) or not (where / "de_DE.UTF-8").exists():
        return None
    env = dict(os.environ, LOCPATH=str(where), LC_ALL="de_DE.UTF-8")
    probe = subprocess.run(["stat", "--", str(where / "missing")], capture_output=True, text=True, env=env,
                           check=False)
    return env if "No such file or directory" not in probe.stderr else None


def test_a_first_install_under_a_translated_locale_reads_stat_as_in_english(play, tmp_path):
    """The connection passes the controller's locale to the host: stat's 'No such file' in German failed a
    first install, and its file types, translated, were not read as directories or links."""
    env = _german_locale(tmp_path / "locales")
    if env is None:
        pytest.skip("no translated stat here: localedef or the coreutils translations are missing")
    first = play(env={"LOCPATH": env["LOCPATH"], "LC_ALL": env["LC_ALL"]})
    assert len(first["copied"]) == len(SOURCES)
    _assert_installed(play.installed)
