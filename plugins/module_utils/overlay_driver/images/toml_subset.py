# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The part of TOML that registries.conf uses, read strictly; everything else refused by line.

This runs on the managed host, whose Python may predate tomllib (3.11), so it
reads only what containers-registries.conf(5) needs: comments, `key = value`
with bare or quoted keys, `[table]` and `[[array.of.tables]]` headers, and
values that are strings (basic "..." and literal '...', on one line),
booleans and arrays of those (across lines, trailing comma allowed). Numbers,
dates, inline tables, dotted keys and multi-line strings are refused naming
the line, never guessed at: a file read wrongly would send a pull to the
wrong place.
Tables come back as `Table` (a dict that remembers the line of each key).
"""

import re

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
MAX_DEPTH = 8


class TomlError(ValueError):
    """What is wrong, and on which line (1-based)."""

    def __init__(self, message, line):
        super().__init__("line %d: %s" % (line, message))
        self.line = line
        self.reason = message


class Table(dict):
    """A TOML table; `lines` maps each key to the line it was set on, `line` is the header's."""

    def __init__(self, line=0):
        super().__init__()
        self.line = line
        self.lines = {}


class _Reader:
    def __init__(self, text):
        self.text = text
        self.pos = 0
        self.line = 1

    def error(self, message):
        return TomlError(message, self.line)

    def peek(self, n=1):
        return self.text[self.pos:self.pos + n]

    def skip_space(self):
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def skip_comment(self):
        if self.peek() == "#":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end

    def skip_blank(self):
        """Spaces, comments and newlines (inside an array, or between statements)."""
        while True:
            self.skip_space()
            self.skip_comment()
            if self.peek() == "\n":
                self.pos += 1
                self.line += 1
            elif self.peek(2) == "\r\n":
                self.pos += 2
                self.line += 1
            else:
                return

    def end_of_line(self):
        self.skip_space()
        self.skip_comment()
        if self.pos >= len(self.text):
            return
        if self.peek() == "\n" or self.peek(2) == "\r\n":
            return
        raise self.error("unexpected %r after the value (one statement per line)" % self.peek())

    def key(self):
        if self.peek() == '"':
            return self.basic_string()
        if self.peek() == "'":
            return self.literal_string()
        match = _BARE_KEY.match(self.text, self.pos)
        if not match:
            raise self.error("expected a key, found %r" % (self.peek() or "the end of the file"))
        self.pos = match.end()
        return match.group(0)

    def dotted_key(self):
        parts = [self.key()]
        self.skip_space()
        while self.peek() == ".":
            self.pos += 1
            self.skip_space()
            parts.append(self.key())
            self.skip_space()
        return parts

    def basic_string(self):
        if self.peek(3) == '"""':
            raise self.error("multi-line strings are not supported here")
        self.pos += 1
        out = []
        while True:
            c = self.peek()
            if c == "":
                raise self.error("a string that does not end")
            if c == '"':
                self.pos += 1
                return "".join(out)
            if c == "\n" or (ord(c) < 0x20 and c != "\t") or c == "\x7f":
                raise self.error("a control character or line end inside a string")
            if c == "\\":
                esc = self.text[self.pos + 1:self.pos + 2]
                if esc in _ESCAPES:
                    out.append(_ESCAPES[esc])
                    self.pos += 2
                    continue
                if esc in ("u", "U"):
                    width = 4 if esc == "u" else 8
                    digits = self.text[self.pos + 2:self.pos + 2 + width]
                    if len(digits) != width or not all(d in "0123456789abcdefABCDEF" for d in digits):
                        raise self.error("a bad \\%s escape" % esc)
                    code = int(digits, 16)
                    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                        raise self.error("a \\%s escape that is no Unicode scalar value" % esc)
                    out.append(chr(code))
                    self.pos += 2 + width
                    continue
                raise self.error("an unknown escape \\%s" % esc)
            out.append(c)
            self.pos += 1

    def literal_string(self):
        if self.peek(3) == "'''":
            raise self.error("multi-line strings are not supported here")
        end = self.text.find("'", self.pos + 1)
        newline = self.text.find("\n", self.pos + 1)
        if end < 0 or (0 <= newline < end):
            raise self.error("a string that does not end on its line")
        value = self.text[self.pos + 1:end]
        if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
            raise self.error("a control character inside a string")
        self.pos = end + 1
        return value

    def value(self, depth=0):
        c = self.peek()
        if c == '"':
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        if c == "[":
            return self.array(depth)
        for word, value in (("true", True), ("false", False)):
            if self.text.startswith(word, self.pos):
                after = self.text[self.pos + len(word):self.pos + len(word) + 1]
                if not (after.isalnum() or after in ("_", "-")):
                    self.pos += len(word)
                    return value
        if c == "{":
            raise self.error("inline tables are not supported here")
        raise self.error("only strings, booleans and arrays of them are supported here, not %r"
                         % self.text[self.pos:self.pos + 20].split("\n")[0])

    def array(self, depth):
        if depth >= MAX_DEPTH:
            raise self.error("arrays nested too deeply")
        self.pos += 1
        items = []
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.pos += 1
                return items
            items.append(self.value(depth + 1))
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() == "]":
                self.pos += 1
                return items
            raise self.error("expected ',' or ']' in an array, found %r" % (self.peek() or "the end of the file"))


def _descend(root, path, reader):
    """The table a header's path names (the last element of each array of tables on the way)."""
    table = root
    for name in path:
        child = table.get(name)
        if child is None:
            child = Table(reader.line)
            table[name] = child
            table.lines[name] = reader.line
        elif isinstance(child, list) and child and isinstance(child[-1], Table):
            child = child[-1]
        elif not isinstance(child, Table):
            raise reader.error("%s is a value, not a table" % ".".join(path))
        table = child
    return table


def parse(text):
    """The document as nested Tables, lists, strings and booleans; TomlError for anything else."""
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = _Reader(text)
    root = Table(0)
    current = root
    defined = set()
    while True:
        reader.skip_blank()
        if reader.pos >= len(text):
            return root
        if reader.peek(2) == "[[":
            reader.pos += 2
            reader.skip_space()
            path = reader.dotted_key()
            if reader.peek(2) != "]]":
                raise reader.error("expected ']]' to end the array-of-tables header")
            reader.pos += 2
            parent = _descend(root, path[:-1], reader)
            name = path[-1]
            existing = parent.get(name)
            if existing is None:
                existing = parent[name] = []
                parent.lines[name] = reader.line
            elif not isinstance(existing, list) or (existing and not isinstance(existing[-1], Table)):
                raise reader.error("%s is already something other than an array of tables" % ".".join(path))
            current = Table(reader.line)
            existing.append(current)
        elif reader.peek() == "[":
            reader.pos += 1
            reader.skip_space()
            path = reader.dotted_key()
            if reader.peek() != "]":
                raise reader.error("expected ']' to end the table header")
            reader.pos += 1
            key = tuple(path)
            if key in defined:
                raise reader.error("table [%s] is defined twice" % ".".join(path))
            parent = _descend(root, path[:-1], reader)
            existing = parent.get(path[-1])
            if existing is None:
                current = parent[path[-1]] = Table(reader.line)
                parent.lines[path[-1]] = reader.line
            elif isinstance(existing, Table):
                current = existing
            else:
                raise reader.error("[%s] is already something other than a table" % ".".join(path))
            defined.add(key)
        else:
            key = reader.key()
            reader.skip_space()
            if reader.peek() == ".":
                raise reader.error("dotted keys are not supported here; write a [table] header")
            if reader.peek() != "=":
                raise reader.error("expected '=' after the key %r" % key)
            reader.pos += 1
            reader.skip_space()
            line = reader.line
            value = reader.value()
            if key in current:
                raise TomlError("the key %r is set twice" % key, line)
            current[key] = value
            current.lines[key] = line
        reader.end_of_line()
