"""Every module's and filter's documentation parses as ansible-doc reads it: YAML, with each description text.

A colon followed by a space inside a description line makes YAML read a mapping there, and ansible-doc then
shows no documentation for the module at all; nothing else in the unit tests reads these strings.
"""

import ast
import glob
import os

import pytest
import yaml

PLUGINS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins")
FILES = sorted(glob.glob(os.path.join(PLUGINS, "modules", "*.py")) + glob.glob(os.path.join(PLUGINS, "filter", "*.py")))


def documentation_strings(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in ("DOCUMENTATION", "RETURN",
                                                                                     "EXAMPLES"):
            yield node.targets[0].id, node.value.value


def descriptions(doc, where=()):
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "description":
                yield where, value
            yield from descriptions(value, where + (str(key),))
    elif isinstance(doc, list):
        for item in doc:
            yield from descriptions(item, where)


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_the_documentation_parses_and_every_description_is_text(path):
    found = dict(documentation_strings(path))
    if os.path.basename(path) != "__init__.py":
        assert "DOCUMENTATION" in found
    for name, text in found.items():
        doc = yaml.safe_load(text)
        for where, value in descriptions(doc):
            for line in value if isinstance(value, list) else [value]:
                assert isinstance(line, str), "%s %s %s: a description line is not text: %r" % (
                    os.path.basename(path), name, ".".join(where), line)
