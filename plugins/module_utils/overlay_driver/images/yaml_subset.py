# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The part of YAML registries.d files use, read strictly (a managed host need not have PyYAML).

Understood: nested block mappings (`key:` then more-indented lines), scalar
values plain or quoted ('...' with '' for a quote, "..." with \\" and \\\\),
`true`/`false`, comments, a leading `---`. Keys may hold `:` not followed
by a space (`127.0.0.1:5000:`). Anything else (lists, flow `{}`/`[]`,
anchors, tags, block scalars, tabs in indentation, a key twice) is refused
naming the line, so a file is never half read.
"""


class YamlError(ValueError):
    def __init__(self, line, message):
        super().__init__("line %d: %s" % (line, message))
        self.line = line


class Mapping(dict):
    """A mapping with the line of each key (`lines`), for messages."""

    def __init__(self):
        super().__init__()
        self.lines = {}


def _strip_comment(text):
    quote = None
    for i, c in enumerate(text):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
    return text.rstrip()


def _quoted(text, line):
    q = text[0]
    if len(text) < 2 or text[-1] != q:
        raise YamlError(line, "an unterminated quoted string")
    body = text[1:-1]
    if q == "'":
        if "'" in body.replace("''", ""):
            raise YamlError(line, "a quote inside a single-quoted string must be doubled")
        return body.replace("''", "'")
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body) or body[i + 1] not in "\\\"":
                raise YamlError(line, "only \\\\ and \\\" escapes are understood")
            out.append(body[i + 1])
            i += 2
            continue
        if c == '"':
            raise YamlError(line, "an unescaped \" inside a double-quoted string")
        out.append(c)
        i += 1
    return "".join(out)


def _scalar(text, line):
    if text[0] in "'\"":
        return _quoted(text, line)
    if text[0] in "[]{}&*!|>%@`-?," or text.startswith("- "):
        raise YamlError(line, "%r: only plain or quoted scalars and nested mappings are understood" % text)
    if text in ("true", "false"):
        return text == "true"
    return text


def _split_key(text, line):
    if text[0] in "'\"":
        q = text[0]
        end = text.find(q, 1)
        while q == "'" and end != -1 and text[end:end + 2] == "''":
            end = text.find(q, end + 2)
        if end == -1 or text[end + 1:end + 2] != ":":
            raise YamlError(line, "a quoted key must be followed by ':'")
        return _quoted(text[:end + 1], line), text[end + 2:].strip()
    for i, c in enumerate(text):
        if c == ":" and (i + 1 == len(text) or text[i + 1] == " "):
            key = text[:i].strip()
            if not key or key[0] in "[]{}&*!|>%@`-?,":
                raise YamlError(line, "%r is not a key this reader understands" % key)
            return key, text[i + 1:].strip()
    raise YamlError(line, "expected `key: value` or `key:`")


def parse(text):
    """The document as nested Mappings; an empty document is an empty Mapping."""
    root = Mapping()
    stack = [(-1, root)]  # (indent, mapping)
    pending = None  # (indent, mapping, key, line): a `key:` waiting for its nested lines
    for number, raw in enumerate(text.splitlines(), 1):
        if number == 1 and raw.startswith("\ufeff"):
            raw = raw[1:]
        stripped = _strip_comment(raw)
        if not stripped.strip() or (not stack[1:] and stripped.strip() == "---" and not root):
            continue
        body = stripped.lstrip(" ")
        if body.startswith("\t") or "\t" in stripped[:len(stripped) - len(body)]:
            raise YamlError(number, "a tab in the indentation")
        indent = len(stripped) - len(body)
        if pending is not None:
            p_indent, p_map, p_key, _p_line = pending
            if indent > p_indent:
                child = Mapping()
                p_map[p_key] = child
                stack.append((indent, child))
            else:
                p_map[p_key] = None
            pending = None
        while stack[-1][0] > indent:
            stack.pop()
        if stack[-1][0] != indent and not (len(stack) == 1 and indent == 0):
            raise YamlError(number, "the indentation matches no enclosing mapping")
        if len(stack) == 1:
            stack.append((0, root))
        mapping = stack[-1][1]
        if body == "-" or body.startswith("- "):
            raise YamlError(number, "a list: only plain or quoted scalars and nested mappings are understood")
        key, value = _split_key(body, number)
        if key in mapping:
            raise YamlError(number, "the key %r appears twice" % key)
        mapping.lines[key] = number
        if value == "":
            mapping[key] = None
            pending = (indent, mapping, key, number)
        else:
            mapping[key] = _scalar(value, number)
    return root
