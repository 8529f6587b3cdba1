"""The layer tree as text: parents above children, state on each line, never a loop."""

from ansible_collections.strata.overlay.plugins.module_utils.layer_tree import render


def layer(layer_id, parent=None, kind="overlay", mounted=False, holders=(), stale=False):
    return {"id": layer_id, "parent": parent, "kind": kind, "mounted": mounted, "holders": list(holders),
            "stale": stale}


def test_a_tree_with_branches():
    lines = render([
        layer("web", "base", mounted=True, holders=["nginx", "backup"]),
        layer("base", kind="root"),
        layer("db", "base", holders=["pg"], stale=True),
        layer("web-cfg", "web"),
        layer("other", kind="root"),
    ])
    assert lines == [
        "base (root)",
        "|-- db (overlay) holders: pg STALE: held but not mounted",
        "`-- web (overlay) mounted holders: nginx, backup",
        "    `-- web-cfg (overlay)",
        "other (root)",
    ]


def test_a_parent_outside_the_home_is_named():
    assert render([layer("c", "gone")]) == ["c <- gone (not in this home) (overlay)"]


def test_a_cycle_of_records_is_drawn_once():
    lines = render([layer("a", "b"), layer("b", "a")])
    assert len(lines) == 2 and "a (in a parent cycle)" in lines[0] and lines[1].endswith("b (overlay)")


def test_empty_home():
    assert render([]) == []


def test_an_image_layer_is_drawn_with_its_images_and_its_size():
    chain = "a" * 64
    lines = render([
        {"id": chain, "parent": None, "kind": "root", "images": ["docker://r/debian:12", "oci:/srv/d:12"],
         "size": 30512345},
        {"id": "app", "parent": chain, "kind": "overlay", "images": [], "size": None},
        {"id": "small", "parent": None, "kind": "root", "images": [], "size": 1000}])
    assert lines == [chain + " (root) image: docker://r/debian:12, oci:/srv/d:12 29.1 MiB",
                     "`-- app (overlay)",
                     "small (root) 1000 B"]
