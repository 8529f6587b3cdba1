"""Property-based fuzzing of the layer applier with generated and mutated tar streams.

Invariants, for every generated archive: nothing outside the target directory
is created or changed, and no exception other than the applier's own errors
escapes. STRATA_FUZZ_EXAMPLES sets the number of cases (default 300 in make
test; `make fuzz` runs 5000).
"""

import gzip
import io
import os
import shutil
import tarfile
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_apply import LayerApplier
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_stream import Limits

from layertools import snapshot

EXAMPLES = int(os.environ.get("STRATA_FUZZ_EXAMPLES", "300"))

COMPONENTS = ["a", "b", "c", "..", ".", "", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh..", ".wh.", "canary",
              "etc", "passwd", "x" * 300]
TARGETS = ["/", "..", "../..", "../canary", "/etc/passwd", "a", "a/b", "/../../canary/etc", "b/../..", "", "."]
TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE,
         tarfile.BLKTYPE, b"S", b"V"]

names = st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=5).map("/".join) | \
    st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
entry = st.tuples(names, st.sampled_from(TYPES), st.sampled_from(TARGETS), st.binary(max_size=64),
                  st.integers(0, 0o7777), st.integers(0, 70000))


def build(entries, fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, kind, target, data, mode, uid in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = mode
            info.uid = info.gid = uid
            info.linkname = target
            info.devmajor, info.devminor = 1, 3
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


mutation = st.one_of(
    st.none(),
    st.tuples(st.just("flip"), st.integers(0, 1 << 16), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 16), st.just(0)),
    st.tuples(st.just("append"), st.integers(1, 600), st.integers(0, 255)),
)


def mutate(data, how):
    if how is None or not data:
        return data
    kind, pos, value = how
    pos %= len(data)
    if kind == "flip":
        return data[:pos] + bytes([data[pos] ^ value]) + data[pos + 1:]
    if kind == "truncate":
        return data[:pos]
    return data + bytes([value]) * pos


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(entry, max_size=12), st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
       mutation, st.booleans())
def test_applier_never_escapes(entries, fmt, how, compress):
    try:
        data = build(entries, fmt)
    except (ValueError, tarfile.TarError, OverflowError):
        return  # not writable as a tar at all (e.g. a name too long for ustar)
    data = mutate(data, how)
    if compress:
        data = gzip.compress(data)
    world = tempfile.mkdtemp(prefix="strata-fuzz-", dir=FUZZ_ROOT)
    try:
        canary = os.path.join(world, "canary")
        os.makedirs(os.path.join(canary, "etc"))
        with open(os.path.join(canary, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0\n")
        target = os.path.join(world, "target")
        os.mkdir(target)
        before = snapshot(canary, times=True)
        COUNTS["cases"] += 1
        try:
            LayerApplier(target, limits=Limits(max_entries=64)).apply(io.BytesIO(data))
            COUNTS["applied"] += 1
        except OverlayError:
            COUNTS["refused"] += 1
        assert sorted(os.listdir(world)) == ["canary", "target"]
        assert snapshot(canary, times=True) == before
        assert sorted(os.listdir(FUZZ_ROOT)) == [os.path.basename(world)]
    finally:
        shutil.rmtree(world)


FUZZ_ROOT = None
COUNTS = {"cases": 0, "applied": 0, "refused": 0}


def test_fuzz(scratch):
    """Runs the property inside a tmpfs of its own, so 'outside' is fully observable."""
    global FUZZ_ROOT
    FUZZ_ROOT = os.path.join(scratch, "fuzz")
    os.mkdir(FUZZ_ROOT)
    try:
        test_applier_never_escapes()
    finally:
        FUZZ_ROOT = None
    print("fuzz: %(cases)d archives, %(applied)d applied, %(refused)d refused with the applier's error" % COUNTS)
    assert COUNTS["cases"] >= EXAMPLES // 2
    assert COUNTS["applied"] and COUNTS["refused"]  # both sides of the applier were exercised


test_applier_never_escapes.__test__ = False  # run through test_fuzz only
