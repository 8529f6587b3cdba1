import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.strata.overlay.plugins.filter.knob_names import knob_names

BUSY = ("layer app, path /h/app/merged: cannot unmount: target is busy, pid 7 (sleep) cwd (lazy: true detaches it "
        "now and the kernel finishes the unmount when the last user goes)")
HELD = "layer app, path /h/app: still held by web (force: true removes it anyway)"


def test_a_failure_names_the_variables_the_user_sets():
    assert knob_names({"failed": True, "msg": HELD}) == (
        "layer app, path /h/app: still held by web (overlay_force: true removes it anyway)")
    assert "(overlay_lazy: true detaches it now" in knob_names({"failed": True, "msg": BUSY})
    assert knob_names({"msg": "the layer is damaged: x (state: absent with force: true removes it)"}) == (
        "the layer is damaged: x (state: absent with overlay_force: true removes it)")


def test_a_loop_gives_one_line_per_failed_item_with_its_label():
    result = {"failed": True, "msg": "One or more items failed", "results": [
        {"changed": True, "_ansible_item_label": "base"},
        {"failed": True, "msg": HELD, "_ansible_item_label": "app for web"},
        {"failed": True, "msg": BUSY, "_ansible_item_label": "app for db"}]}
    text = knob_names(result)
    assert text.startswith("app for web: layer app") and "; app for db: layer app" in text
    assert "overlay_force: true" in text and "overlay_lazy: true" in text
    assert "(force: true" not in text and "(lazy: true" not in text


def test_only_the_option_words_change():
    assert knob_names({"msg": "overlay_force: true and x.force: true stay"}) == "overlay_force: true and x.force: true stay"
    assert knob_names({"msg": "force: true"}, {"force": "remove_force"}) == "remove_force: true"
    with pytest.raises(AnsibleFilterError):
        knob_names("force: true")


def test_a_message_that_already_names_the_roles_variable_names_it_once():
    """The busy unmount names overlay_lazy beside lazy for the role's per-item failure line; renamed, it is said once."""
    msg = ("cannot unmount: target is busy, pid 7 (sleep) cwd (lazy: true detaches it now, overlay_lazy: true with "
           "the overlay_layers role, and the kernel unmounts it once they let go)")
    assert knob_names({"failed": True, "msg": msg}) == (
        "cannot unmount: target is busy, pid 7 (sleep) cwd (overlay_lazy: true detaches it now, and the kernel "
        "unmounts it once they let go)")
