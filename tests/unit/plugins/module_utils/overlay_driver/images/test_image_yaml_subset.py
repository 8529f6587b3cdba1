"""The YAML subset registries.d files are read with: what they hold is read, anything else is refused by line."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.yaml_subset import YamlError, parse


def test_nested_mappings_scalars_and_comments():
    document = parse("""---
# a comment
default-docker:
  lookaside: https://sigs.example.com/a#b   # a comment after a space
docker:
  127.0.0.1:5000:
    lookaside: 'file:///var/lib/it''s'
    use-sigstore-attachments: true
  "reg.example.com/team":
    sigstore: "file:///x \\"y\\""
  empty:
""")
    assert document == {"default-docker": {"lookaside": "https://sigs.example.com/a#b"},
                        "docker": {"127.0.0.1:5000": {"lookaside": "file:///var/lib/it's",
                                                      "use-sigstore-attachments": True},
                                   "reg.example.com/team": {"sigstore": 'file:///x "y"'},
                                   "empty": None}}
    assert document["docker"].lines["reg.example.com/team"] == 9
    assert parse("") == {}


@pytest.mark.parametrize("text, line, fragment", [
    ("a:\n  - b\n", 2, "only plain or quoted scalars"),
    ("a: [b]\n", 1, "only plain or quoted scalars"),
    ("a: {b: c}\n", 1, "only plain or quoted scalars"),
    ("a: &x b\n", 1, "only plain or quoted scalars"),
    ("a: |\n  b\n", 1, "only plain or quoted scalars"),
    ("a:\n\tb: c\n", 2, "a tab in the indentation"),
    ("a: 1\na: 2\n", 2, "appears twice"),
    ("a:\n    b: 1\n  c: 2\n", 3, "matches no enclosing mapping"),
    ("  a: 1\n", 1, "matches no enclosing mapping"),
    ("just text\n", 1, "expected `key: value`"),
    ("a: 'open\n", 1, "unterminated"),
    ('a: "\\n"\n', 1, "escapes are understood"),
    ("- a\n", 1, "a list"),
    ("-x: 1\n", 1, "not a key"),
])
def test_what_is_not_understood_is_refused_by_line(text, line, fragment):
    with pytest.raises(YamlError) as e:
        parse(text)
    assert e.value.line == line and fragment in str(e.value)
