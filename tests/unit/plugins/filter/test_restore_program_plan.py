import hashlib

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.strata.overlay.plugins.filter.restore_program_plan import restore_program_plan


def _entry(path, data, mode="0644", uid=0, gid=0, isreg=True):
    entry = {"path": path, "mode": mode, "uid": uid, "gid": gid, "isreg": isreg, "islnk": not isreg}
    if isreg:
        entry["checksum"] = hashlib.sha1(data).hexdigest()
    return entry


@pytest.fixture
def sources(tmp_path):
    paths = []
    for name in ("a.py", "b.py", "c.py", "d.py", "e.py", "f.py"):
        (tmp_path / name).write_bytes(b"# %s\n\n" % name.encode())
        paths.append(str(tmp_path / name))
    return paths


def test_only_missing_or_differing_files_are_installed_and_extra_ones_are_stale(sources):
    lib = "/lib/overlay_driver/"
    installed = [_entry(lib + "a.py", b"# a.py\n\n"),
                 _entry(lib + "b.py", b"# b.py\n"),                  # a trailing newline lost
                 _entry(lib + "c.py", b"# c.py\n\n", mode="0664"),
                 _entry(lib + "d.py", b"# d.py\n\n", uid=1000),
                 _entry(lib + "e.py", b"", isreg=False),              # a symlink in its place
                 _entry(lib + "old.py", b"x")]
    assert restore_program_plan(sources, installed) == {
        "install": sorted(s for s in sources if not s.endswith("a.py")),
        "stale": [lib + "old.py"]}
    assert restore_program_plan(sources, []) == {"install": sorted(sources), "stale": []}


def test_an_unchanged_copy_needs_nothing(sources):
    installed = [_entry("/l/" + s.rsplit("/", 1)[1], open(s, "rb").read()) for s in sources]
    assert restore_program_plan(sources, installed) == {"install": [], "stale": []}


def test_bad_input_is_refused(sources):
    with pytest.raises(AnsibleFilterError):
        restore_program_plan(sources, {"files": []})
    with pytest.raises(AnsibleFilterError):
        restore_program_plan(sources, [{"mode": "0644"}])
