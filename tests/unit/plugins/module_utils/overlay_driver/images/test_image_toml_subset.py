"""The TOML subset registries.conf needs: read as tomllib reads it, and everything else refused by line."""

import os
import tomllib

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.toml_subset import TomlError, parse

VALID = [
    "",
    "# only a comment\n\n",
    'unqualified-search-registries = ["a.example", "b.example:5000"]\nshort-name-mode = "enforcing"\n',
    'a = [\n  "x", # a comment inside\n  \'y\',\n]\n',
    'a = []\nb = [[], ["x"]]\n',
    '[[registry]]\nprefix = "example.com/foo"\nlocation = "internal.example/bar"\ninsecure = false\n'
    'blocked = true\n\n[[registry.mirror]]\nlocation = "m0.local"\npull-from-mirror = "digest-only"\n'
    '[[registry.mirror]]\nlocation = "m1.local"\ninsecure = true\n[[registry]]\nlocation = "x.example"\n',
    '[aliases]\n  "fedora" = "registry.fedoraproject.org/fedora"\n  \'ubi\' = "registry.access.redhat.com/ubi"\n',
    'a = "tab\\there \\"quoted\\" \\\\ \\u00e9\\U0001F600"\nb = \'C:\\path\'\n',
    'a = "x"\r\nb = true\r\n',
    '[t]\nk = "v"\n[t.sub]\nk = "w"\n',
    'key-with_dash9 = false # trailing comment\n',
]


@pytest.mark.parametrize("text", VALID)
def test_reads_what_tomllib_reads(text):
    assert parse(text) == tomllib.loads(text)


def test_the_debian_files_read_alike():
    for path in ("/etc/containers/registries.conf", "/etc/containers/registries.conf.d/shortnames.conf"):
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            assert parse(text) == tomllib.loads(text)


@pytest.mark.parametrize("text, line, fragment", [
    ("a = 1", 1, "only strings, booleans and arrays"),
    ("a = 1.5", 1, "only strings, booleans and arrays"),
    ("a = 2024-01-01", 1, "only strings, booleans and arrays"),
    ("\n\na.b = 'x'", 3, "dotted keys are not supported"),
    ("a = {x = 'y'}", 1, "inline tables are not supported"),
    ('a = """x"""', 1, "multi-line strings are not supported"),
    ("a = '''x'''", 1, "multi-line strings are not supported"),
    ('a = "x', 1, "does not end"),
    ("a = 'x\n'", 1, "does not end on its line"),
    ('a = "x" b = "y"', 1, "one statement per line"),
    ("[t]\n[t]", 2, "defined twice"),
    ('a = "1"\na = "2"', 2, "set twice"),
    ("[[r]]\n[r]", 2, "something other than a table"),
    ('a = ["x" "y"]', 1, "expected ',' or ']'"),
    ('a = "\\q"', 1, "unknown escape"),
    ('a = "\\uD800"', 1, "no Unicode scalar value"),
    ('a = "bell\x07"', 1, "control character"),
    ("a = truex", 1, "only strings, booleans"),
    ("= 'x'", 1, "expected a key"),
    ("[t", 1, "expected ']'"),
    ("[[t]", 1, "expected ']]'"),
    ('a = "x"\n[a]', 2, "something other than a table"),
    ("a = " + "[" * 20 + "]" * 20, 1, "nested too deeply"),
])
def test_anything_else_is_refused_naming_the_line(text, line, fragment):
    with pytest.raises(TomlError) as e:
        parse(text)
    assert e.value.line == line and fragment in str(e.value)
    with pytest.raises(Exception):  # neither is it something tomllib would read differently
        if fragment in ("only strings, booleans and arrays", "dotted keys are not supported",
                        "inline tables are not supported", "multi-line strings are not supported",
                        "nested too deeply"):
            raise ValueError("valid TOML outside the subset")
        tomllib.loads(text)


def test_tables_remember_their_lines():
    doc = parse('\n[[registry]]\nprefix = "a"\n\nlocation = "b"\n')
    registry = doc["registry"][0]
    assert registry.line == 2 and registry.lines == {"prefix": 3, "location": 5}
