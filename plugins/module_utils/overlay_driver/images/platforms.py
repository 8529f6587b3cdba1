# -*- coding: utf-8 -*-
# Copyright: strata.overlay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Platforms as containerd reads them: normalized names, and which index entry a platform picks.

An index names the same platform several ways (`arm` and `arm/v7`, `arm64` and
`arm64/v8`, `amd64` and `amd64/v1`, `aarch64`, `x86_64`); containerd's
platforms.Normalize makes them one, so both the asked platform and each
entry are normalized before they are compared. A platform also runs the
images of the older variants of its architecture (containerd's
platforms.Only): `arm/v7` takes `arm/v6` and `arm/v5` when the index has no
v7, `amd64/v3` takes v2 and v1, `amd64` takes `386`. `arm64/v8.x` takes the
older `arm64/v8.*`; `arm64/v9.x` takes the older `arm64/v9.*`, then `arm64/v8.(x+5)`
and below (a v9.x core implements v8.(x+5)); every arm64 variant comes before the
32-bit `arm/v8` and older, which an arm64 machine runs only when nothing 64-bit fits.
The closest one wins, so `linux/arm` (v7) never picks `arm/v6` over an `arm/v7`
entry, nor `linux/arm64/v9` an `arm/v7` over an `arm64` one.
"""

# containerd's normalizeArch, arm64's v8 kept spelled out (containerd spells it ""; both mean the same here).
_ARM64_V8 = ("", "8", "v8", "v8.0")
_ARM64_V9 = ("9", "9.0", "v9.0")


def normalize_os(os_name):
    os_name = (os_name or "").lower()
    return "darwin" if os_name == "macos" else os_name


def normalize_arch(arch, variant):
    """(arch, variant) as containerd's platforms.Normalize gives them; variant "" for none."""
    arch, variant = (arch or "").lower(), (variant or "").lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in _ARM64_V8:
            return "arm64", "v8"
        if variant in _ARM64_V9:
            return "arm64", "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        if variant in ("5", "6", "8"):
            return "arm", "v" + variant
    return arch, variant


def normalize(os_name, arch, variant):
    """(os, arch, variant) normalized; variant "" when the platform has none."""
    arch, variant = normalize_arch(arch, variant)
    return normalize_os(os_name), arch, variant


def _level(variant):
    """The number of a `vN` variant, or None (the variant then has no older levels). ASCII digits only, as Go's
    strconv.Atoi reads them: str.isdigit also takes `²`, which int() refuses. At most three digits, since a
    platform runs every lower level and `amd64/v99999999` would otherwise list a hundred million of them."""
    digits = variant[1:] if variant.startswith("v") else variant
    if not digits or len(digits) > 3 or not all("0" <= c <= "9" for c in digits):
        return None
    return int(digits)


# containerd's arm64variantToVersion: the arm64 variants it knows, each with what it runs, the closest first.
# A v9.x core implements v8.(x+5) (Armv9.0 is based on Armv8.5), capped at v8.9 as containerd caps it.
def _arm64_versions():
    known = {}
    for minor in range(0, 10):
        known["v8.%d" % minor] = [(8, m) for m in range(minor, -1, -1)]
    for minor in range(0, 8):
        known["v9.%d" % minor] = [(9, m) for m in range(minor, -1, -1)] + \
            [(8, m) for m in range(min(minor + 5, 9), -1, -1)]
    return known


_ARM64_VERSIONS = _arm64_versions()


def _arm64_vector(os_name, variant):
    """The arm64 variants an arm64 `variant` runs, itself first, then the 32-bit arm ones; None for a variant
    containerd does not know (`v8.x`, `v10`, `8.1`), which then matches only an entry spelled the same.
    containerd matches nothing for one; the exact entry is what such a platform asks for, and guessing what
    an unknown variant implements could pick an image its cores cannot run."""
    versions = _ARM64_VERSIONS.get({"v8": "v8.0", "v9": "v9.0"}.get(variant, variant))
    if versions is None:
        return None
    vector = [normalize(os_name, "arm64", "v%d.%d" % version) for version in versions]
    # every arm64/v8.x and v9.x runs 32-bit arm/v8 and below, as containerd has it; only after all of arm64
    return vector + compatible(os_name, "arm", "v8")


def compatible(os_name, arch, variant):
    """The normalized platforms a platform runs, the best first (containerd's platformVector)."""
    wanted = normalize(os_name, arch, variant)
    os_name, arch, variant = wanted
    vector = [wanted]
    if arch == "amd64":
        level = _level(variant) if variant else None
        if level is not None and level > 1:
            vector += [normalize(os_name, "amd64", "v%d" % n) for n in range(level - 1, 0, -1)]
        vector.append((os_name, "386", ""))
    elif arch == "arm":
        level = _level(variant)
        if level is not None and level > 5:
            vector += [(os_name, "arm", "v%d" % n) for n in range(level - 1, 4, -1)]
    elif arch == "arm64":
        vector = _arm64_vector(os_name, variant) or vector
    seen, ordered = set(), []
    for platform in vector:
        if platform not in seen:
            seen.add(platform)
            ordered.append(platform)
    return ordered


def of_entry(platform):
    """The normalized (os, arch, variant) of an index entry's platform object, or None without one."""
    if not isinstance(platform, dict):
        return None
    os_name, arch, variant = platform.get("os"), platform.get("architecture"), platform.get("variant")
    if not isinstance(os_name, str) or not isinstance(arch, str) or not os_name or not arch:
        return None
    if variant is not None and not isinstance(variant, str):
        return None
    return normalize(os_name, arch, variant)


def best_entry(entries, wanted):
    """The entry whose platform is the closest `wanted` runs (os, arch, variant or None), or None.
    Among equally close entries the index's first wins, as in containerd."""
    preference = {platform: rank for rank, platform in enumerate(compatible(*wanted))}
    best, best_rank = None, None
    for entry in entries:
        rank = preference.get(of_entry(entry.platform))
        if rank is not None and (best_rank is None or rank < best_rank):
            best, best_rank = entry, rank
    return best
