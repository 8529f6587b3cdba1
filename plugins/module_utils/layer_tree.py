# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layers of a home drawn as a tree, for people rather than programs.

An operator looking at a store wants to see which layer sits on which, what
is mounted and for whom, and what is stale; a list of dicts hides exactly
that. The drawing uses plain ASCII so that it survives any terminal, log or
callback plugin.
"""


def _size(size):
    """Bytes as people read them: 1023 B, 4.0 KiB, 29.1 MiB."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return "%d B" % size if unit == "B" else "%.1f %s" % (value, unit)


def _label(layer):
    parts = [layer["id"], "(%s)" % (layer.get("kind") or "?")]
    images = layer.get("images") or []
    if images:
        parts.append("image: %s" % ", ".join(images))
    if isinstance(layer.get("size"), int):
        parts.append(_size(layer["size"]))
    if layer.get("mounted"):
        parts.append("mounted")
    holders = layer.get("holders") or []
    if holders:
        parts.append("holders: %s" % ", ".join(holders))
    if layer.get("stale"):
        parts.append("STALE: held but not mounted")
    if layer.get("problem"):
        parts.append("DAMAGED: %s" % layer["problem"])
    return " ".join(parts)


def missing_home(home):
    """The one line drawn for a home that is not there (a mistyped path shows as such)."""
    return "no layer home at %s (it does not exist)" % home


def render(layers):
    """Lines drawing layers (dicts with id, parent, kind, mounted, holders, stale) as a forest.

    Roots are layers without a parent or whose parent is not in the list;
    children are sorted by id. A cycle in bad records cannot loop: each layer
    is drawn once.
    """
    by_id = {layer["id"]: layer for layer in layers}
    children = {}
    roots = []
    for layer in sorted(layers, key=lambda item: item["id"]):
        parent = layer.get("parent")
        if parent and parent in by_id and parent != layer["id"]:
            children.setdefault(parent, []).append(layer)
        else:
            if parent:
                layer = dict(layer, id="%s <- %s (not in this home)" % (layer["id"], parent))
            roots.append(layer)
    lines = []
    drawn = set()

    def walk(layer, prefix, last, top):
        key = layer["id"].split(" ", 1)[0]
        drawn.add(key)
        if top:
            lines.append(_label(layer))
            below = ""
        else:
            lines.append("%s%s%s" % (prefix, "`-- " if last else "|-- ", _label(layer)))
            below = prefix + ("    " if last else "|   ")
        kids = [kid for kid in children.get(key, []) if kid["id"] not in drawn]
        for index, kid in enumerate(kids):
            walk(kid, below, index == len(kids) - 1, False)

    for root in roots:
        walk(root, "", True, True)
    for layer in sorted(layers, key=lambda item: item["id"]):
        if layer["id"] not in drawn:  # only in a cycle of records
            walk(dict(layer, id="%s (in a parent cycle)" % layer["id"]), "", True, True)
    return lines
