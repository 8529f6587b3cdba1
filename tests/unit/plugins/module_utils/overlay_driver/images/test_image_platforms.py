"""Platforms read as containerd reads them: normalized names, and the entry an index gives each platform."""

import pytest

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images import manifests, platforms
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.errors import ImageError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.manifests import Descriptor


@pytest.mark.parametrize("os_name, arch, variant, expected", [
    ("linux", "arm", None, ("linux", "arm", "v7")),
    ("linux", "arm", "7", ("linux", "arm", "v7")),
    ("linux", "arm", "6", ("linux", "arm", "v6")),
    ("linux", "arm", "v6", ("linux", "arm", "v6")),
    ("linux", "armhf", None, ("linux", "arm", "v7")),
    ("linux", "armel", None, ("linux", "arm", "v6")),
    ("linux", "arm64", None, ("linux", "arm64", "v8")),
    ("linux", "aarch64", None, ("linux", "arm64", "v8")),
    ("linux", "arm64", "8", ("linux", "arm64", "v8")),
    ("linux", "arm64", "v8.0", ("linux", "arm64", "v8")),
    ("linux", "arm64", "9.0", ("linux", "arm64", "v9")),
    ("linux", "amd64", "v1", ("linux", "amd64", "")),
    ("linux", "x86_64", None, ("linux", "amd64", "")),
    ("linux", "x86-64", "v3", ("linux", "amd64", "v3")),
    ("linux", "i386", "anything", ("linux", "386", "")),
    ("Linux", "AMD64", "V2", ("linux", "amd64", "v2")),
    ("macos", "arm64", None, ("darwin", "arm64", "v8")),
    ("linux", "s390x", None, ("linux", "s390x", "")),
])
def test_normalize_as_containerd(os_name, arch, variant, expected):
    assert platforms.normalize(os_name, arch, variant) == expected


def _entry(name, text):
    parts = text.split("/")
    platform = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return Descriptor(manifests.OCI_MANIFEST, "sha256:" + name * 64, 1, platform=platform)


# (the index's entries, the platform asked, the entry picked or None)
SELECTIONS = [
    (["linux/arm/v6", "linux/arm/v7"], "linux/arm", "linux/arm/v7"),      # arm means v7, not the first arm
    (["linux/arm/v6", "linux/arm"], "linux/arm/v7", "linux/arm"),         # an entry without variant is v7
    (["linux/arm/v6", "linux/arm/v7"], "linux/arm/v6", "linux/arm/v6"),
    (["linux/arm/v6"], "linux/arm", "linux/arm/v6"),                      # v7 runs v6 when there is no v7
    (["linux/arm/v7"], "linux/arm/v6", None),                             # but v6 never runs v7
    (["linux/arm/v5", "linux/arm/v6"], "linux/arm/v7", "linux/arm/v6"),   # the closest older variant
    (["linux/arm64", "linux/arm/v7"], "linux/arm64/v8", "linux/arm64"),
    (["linux/arm/v7", "linux/arm64/v8"], "linux/arm64", "linux/arm64/v8"),
    (["linux/arm/v7", "linux/arm/v6"], "linux/arm64", "linux/arm/v7"),    # arm64 runs 32-bit arm
    # arm64/v9.x runs the older v9s, then v8.(x+5) and below (v9.0 is v8.5's successor), all before 32-bit arm
    (["linux/arm64", "linux/arm/v7"], "linux/arm64/v9", "linux/arm64"),
    (["linux/arm/v7", "linux/arm64/v8"], "linux/arm64/v9", "linux/arm64/v8"),
    (["linux/arm64"], "linux/arm64/v9", "linux/arm64"),
    (["linux/arm64/v8", "linux/arm64/v8.6", "linux/arm64/v8.5"], "linux/arm64/v9", "linux/arm64/v8.5"),
    (["linux/arm64/v8.6"], "linux/arm64/v9", None),                       # v9.0 is not v8.6
    (["linux/arm64/v8.6", "linux/arm64/v9"], "linux/arm64/v9.1", "linux/arm64/v9"),  # any v9 before a v8
    (["linux/arm64/v8", "linux/arm64/v8.6"], "linux/arm64/v9.1", "linux/arm64/v8.6"),
    (["linux/arm64/v8.9"], "linux/arm64/v9.7", "linux/arm64/v8.9"),       # v8.9 is the last v8 there is
    (["linux/arm64/v9.1"], "linux/arm64/v9", None),                       # never a newer variant
    (["linux/arm64/v9"], "linux/arm64/v8.9", None),
    (["linux/arm/v7", "linux/arm64/v9.0"], "linux/arm64/v9", "linux/arm64/v9.0"),
    (["linux/arm/v7", "linux/arm/v8"], "linux/arm64/v9", "linux/arm/v8"),  # 32-bit arm when nothing 64-bit fits
    (["linux/arm/v7"], "linux/arm64/v9.2", "linux/arm/v7"),
    # arm64/v8.x runs the older v8s
    (["linux/arm64/v8.1", "linux/arm/v7"], "linux/arm64/v8.2", "linux/arm64/v8.1"),
    (["linux/arm64"], "linux/arm64/v8.2", "linux/arm64"),
    (["linux/arm64/v8.3"], "linux/arm64/v8.2", None),
    # a variant containerd does not know matches only an entry spelled the same: no guess at what it runs
    (["linux/arm64", "linux/arm64/v10"], "linux/arm64/v10", "linux/arm64/v10"),
    (["linux/arm64", "linux/arm/v7"], "linux/arm64/v10", None),
    (["linux/arm64/v8.x", "linux/arm64"], "linux/arm64/v8.x", "linux/arm64/v8.x"),
    (["linux/arm64/v8"], "linux/arm64/v8.x", None),
    (["linux/arm64/v9"], "linux/arm64/v9.8", None),                       # past containerd's v9.7
    (["linux/arm64/v8.1"], "linux/arm64/8.1", None),                      # containerd reads only v8.1
    # a level that is not one, or too large to be one, matches only itself
    (["linux/arm/v5"], "linux/arm/v\u00b2", None),
    (["linux/amd64"], "linux/amd64/v99999999", None),
    (["linux/aarch64"], "linux/arm64", "linux/aarch64"),
    (["linux/amd64/v3", "linux/amd64"], "linux/amd64", "linux/amd64"),
    (["linux/amd64", "linux/amd64/v3"], "linux/amd64/v3", "linux/amd64/v3"),
    (["linux/amd64/v1", "linux/amd64/v2"], "linux/amd64/v4", "linux/amd64/v2"),
    (["linux/amd64/v1"], "linux/amd64", "linux/amd64/v1"),
    (["linux/amd64/v2"], "linux/amd64", None),                            # v1 hardware lacks v2's instructions
    (["linux/386", "linux/arm64"], "linux/amd64", "linux/386"),
    (["linux/x86_64"], "linux/amd64", "linux/x86_64"),
    (["windows/amd64", "linux/arm64"], "linux/amd64", None),
    (["linux/s390x"], "linux/amd64", None),
]


@pytest.mark.parametrize("offered, wanted, picked", SELECTIONS)
def test_the_entry_each_platform_picks(offered, wanted, picked):
    entries = [_entry("%x" % i, text) for i, text in enumerate(offered)]
    wanted = manifests.parse_platform(wanted)
    if picked is None:
        with pytest.raises(ImageError) as e:
            manifests.select_platform(entries, wanted, "img", "sha256:idx")
        assert "has no image for platform" in e.value.message
        return
    chosen = manifests.select_platform(entries, wanted, "img", "sha256:idx")
    assert chosen is entries[offered.index(picked)]


@pytest.mark.parametrize("variant, runs", [
    (None, ["arm64/v8", "arm/v8", "arm/v7", "arm/v6", "arm/v5"]),
    ("v8.2", ["arm64/v8.2", "arm64/v8.1", "arm64/v8", "arm/v8", "arm/v7", "arm/v6", "arm/v5"]),
    ("v9", ["arm64/v9", "arm64/v8.5", "arm64/v8.4", "arm64/v8.3", "arm64/v8.2", "arm64/v8.1", "arm64/v8",
            "arm/v8", "arm/v7", "arm/v6", "arm/v5"]),
    ("v9.2", ["arm64/v9.2", "arm64/v9.1", "arm64/v9", "arm64/v8.7", "arm64/v8.6", "arm64/v8.5", "arm64/v8.4",
              "arm64/v8.3", "arm64/v8.2", "arm64/v8.1", "arm64/v8", "arm/v8", "arm/v7", "arm/v6", "arm/v5"]),
    ("v10", ["arm64/v10"]),
])
def test_the_platforms_an_arm64_variant_runs_closest_first(variant, runs):
    assert ["%s/%s" % p[1:] for p in platforms.compatible("linux", "arm64", variant)] == runs


def test_equals_keep_the_index_order_and_entries_without_platform_are_skipped():
    first, second = _entry("a", "linux/arm/v7"), _entry("b", "linux/arm")
    bare = Descriptor(manifests.OCI_MANIFEST, "sha256:" + "c" * 64, 1)
    odd = Descriptor(manifests.OCI_MANIFEST, "sha256:" + "d" * 64, 1, platform={"os": "linux", "architecture": 7})
    assert manifests.select_platform([bare, odd, first, second], ("linux", "arm", None), "img", "i") is first
    assert manifests.select_platform([second, first], ("linux", "arm", None), "img", "i") is second
