# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A relative src, as a playbook writes it: found on the controller, refused on the host.

With remote_src: false the action plugin looks src up on the controller as Ansible does
(the playbook's files/, then beside the playbook), never in the directory ansible-playbook was
started in. With remote_src: true the module would take it from its own working directory on the
host, which is nobody's choice: the task fails saying what to write. The tasks run for real
(ansible-playbook on localhost), started in a directory holding a tarball of the same name.
"""

import os
import subprocess
import sys

import pytest

from layertools import TarBuilder, read_in_layer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - strata.overlay.overlay_apply_diff:
        home: "{{ home }}"
        layout: "{{ layout }}"
        id: base
        src: layer.tar
        remote_src: "{{ remote }}"
"""


@pytest.fixture
def play(scratch, layout):
    collections = os.path.join(scratch, "collections", "ansible_collections", "strata")
    os.makedirs(collections)
    os.symlink(REPO, os.path.join(collections, "overlay"))
    project = os.path.join(scratch, "project")
    os.makedirs(os.path.join(project, "files"))
    with open(os.path.join(project, "play.yml"), "w") as f:
        f.write(PLAYBOOK)
    with open(os.path.join(project, "files", "layer.tar"), "wb") as f:
        f.write(TarBuilder().file("motd", "from files/\n").bytes())
    started_in = os.path.join(scratch, "cwd")  # where the operator typed ansible-playbook
    os.mkdir(started_in)
    with open(os.path.join(started_in, "layer.tar"), "wb") as f:
        f.write(TarBuilder().file("motd", "from the working directory\n").bytes())
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(scratch, "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=os.path.join(scratch, "tmp"), ANSIBLE_REMOTE_TEMP=os.path.join(scratch, "tmp"))

    def run(home, remote):
        return subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
             "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "home=%s" % home, "-e", "layout=%s" % layout,
             "-e", "remote=%s" % remote, os.path.join(project, "play.yml")],
            env=env, cwd=started_in, capture_output=True, text=True, check=False)
    return run


def test_a_relative_src_is_found_in_the_playbooks_files(play, home):
    proc = play(home, "false")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert read_in_layer(home, "base", "motd") == "from files/\n"


def test_a_relative_src_on_the_host_fails_saying_what_to_write(play, home):
    proc = play(home, "true")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "src must be an absolute path, got 'layer.tar'" in out
    assert "write the tarball's full path on the host, or set remote_src: false" in out
    assert not os.path.exists(home)
