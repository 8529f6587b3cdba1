"""Property-based fuzzing of the layer applier with generated and mutated tar streams.

Invariants, for every generated archive: nothing outside the target directory
is created or changed, no exception other than the applier's own errors
escapes, and the change list of what was applied is JSON that any consumer
takes. The archives mix entry types, hostile names and link targets, names
that are not UTF-8, PAX records (global and local; owners, times and device
numbers beyond what the system calls take; xattrs, also on symlinks; unknown
keys), GNU base-256 numbers, symlinked aliases that lead deep, and every
compression with padding, junk or a further stream after it.
STRATA_FUZZ_EXAMPLES sets the number of cases (default 300 in make test;
`make fuzz` runs 5000).

Every assertion holds for each example on its own; nothing compares a share of
random draws with a threshold. The examples are derandomized (tests/conftest.py),
and the cases that must always be exercised (an archive applied, one refused, one
that both the applier and GNU tar extract) are explicit examples.
"""

import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile

from hypothesis import HealthCheck, example, given, settings, strategies as st

from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.changes import changes_dirs
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.errors import OverlayError
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_apply import LayerApplier
from ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.tar_headers import Limits

from layertools import pax_block, snapshot

EXAMPLES = int(os.environ.get("STRATA_FUZZ_EXAMPLES", "300"))

COMPONENTS = ["a", "b", "c", "..", ".", "", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh..", ".wh.", "canary",
              "etc", "passwd", "x" * 300, "caf\udce9", "\udcff\\x", "d" * 200]
DEEP = "/".join(["d" * 200] * 19)  # 3,819 bytes: through an alias, past PATH_MAX
TARGETS = ["/", "..", "../..", "../canary", "/etc/passwd", "a", "a/b", "/../../canary/etc", "b/../..", "", ".",
           DEEP, "a/" + DEEP]
TYPES = [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE,
         tarfile.BLKTYPE, b"S", b"V"]
BIG = [0, 1000, 4095, 4096, (1 << 20) - 1, 1 << 20, (1 << 32) - 2, (1 << 32) - 1, 1 << 32, 1 << 63, 1 << 70]

names = st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=5).map("/".join) | \
    st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)) | \
    st.sampled_from(COMPONENTS).map(lambda c: "a/" + DEEP + "/" + c)
PAX_KEYS = ["uid", "gid", "mtime", "atime", "size", "path", "linkpath", "comment", "SCHILY.xattr.trusted.test",
            "SCHILY.xattr.user.test", "SCHILY.xattr.security.test", "SCHILY.xattr.trusted.overlay.opaque",
            "SCHILY.xattr.user.caf\udce9", "SCHILY.xattr.trusted.\udcff", "SCHILY.xattr.security.capability",
            "SCHILY.xattr.system.posix_acl_access", "SCHILY.xattr.system.posix_acl_default",
            "GNU.sparse.major", "k" * 600]
PAX_VALUES = [b"", b"0", b"-1", b"1.5", b"4294967295", b"4294967294", b"1" + b"0" * 25, b"-" + b"9" * 30, b"a",
              b"\xff\x00", b"../canary", b"a/b", b"y",
              # a v3 capability (rootid 0) and a POSIX ACL naming user 1000: ids the applier maps under maps
              b"\x01\x00\x00\x03" + b"\x00" * 20,
              b"\x02\x00\x00\x00\x01\x00\x06\x00\xff\xff\xff\xff\x02\x00\x04\x00\xe8\x03\x00\x00"
              b"\x04\x00\x04\x00\xff\xff\xff\xff\x10\x00\x04\x00\xff\xff\xff\xff\x20\x00\x04\x00\xff\xff\xff\xff"]
pax = st.dictionaries(st.sampled_from(PAX_KEYS), st.sampled_from(PAX_VALUES), max_size=4)
# (name, type, link target, data, mode, uid, attrs: base-256 numbers and PAX records)
entry = st.tuples(names, st.sampled_from(TYPES), st.sampled_from(TARGETS), st.binary(max_size=64),
                  st.integers(0, 0o7777), st.integers(0, 70000),
                  st.just({}) | st.just({}) | st.just({}) | st.fixed_dictionaries({}, optional={"big": st.tuples(
                      st.sampled_from(["uid", "gid", "mtime", "devmajor", "devminor"]), st.sampled_from(BIG)),
                      "pax": pax, "global": pax}))


def build(entries, fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, kind, target, data, mode, uid, attrs in entries:
            if "global" in attrs:
                tf.fileobj.write(pax_block(attrs["global"], b"g"))
                tf.offset += len(pax_block(attrs["global"], b"g"))
            if "pax" in attrs:
                tf.fileobj.write(pax_block(attrs["pax"]))
                tf.offset += len(pax_block(attrs["pax"]))
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = mode
            info.uid = info.gid = uid
            info.linkname = target
            info.devmajor, info.devminor = 1, 3
            if "big" in attrs:
                setattr(info, *attrs["big"])
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


COMPRESS = {"none": lambda d: d, "gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress}
# what follows the (compressed) stream
tail = st.sampled_from(["", "", "", "", "nul3", "nul8", "junk", "stream", "nul4-stream"])


def compress(data, how, after):
    packed = COMPRESS[how](data)
    extra = {"": b"", "nul3": b"\x00" * 3, "nul8": b"\x00" * 8, "junk": b"junk",
             "stream": COMPRESS[how](b"\x00" * 1024), "nul4-stream": b"\x00" * 4 + COMPRESS[how](b"\x00" * 1024)}
    return packed + extra[after]


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


ONE_FILE = [("a", tarfile.REGTYPE, "a", b"x", 0o644, 0, {})]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(entry, max_size=12), st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
       mutation, st.sampled_from(sorted(COMPRESS)), tail)
@example(ONE_FILE, tarfile.PAX_FORMAT, None, "none", "")  # applied
@example(ONE_FILE, tarfile.PAX_FORMAT, ("truncate", 700, 0), "none", "")  # refused: truncated
@example(ONE_FILE, tarfile.GNU_FORMAT, None, "gzip", "junk")  # refused: junk after the stream
def test_applier_never_escapes(entries, fmt, how, compression, after):
    try:
        data = build(entries, fmt)
    except (ValueError, tarfile.TarError, OverflowError, UnicodeError):
        return  # not writable as a tar at all (e.g. a name too long for ustar)
    data = compress(mutate(data, how), compression, after)
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
            # what overlay_info changes: true and overlay_diff return must encode
            json.dumps([c.as_dict() for c in changes_dirs(target)], ensure_ascii=False).encode("utf-8")
        except OverlayError:
            COUNTS["refused"] += 1
        assert sorted(os.listdir(world)) == ["canary", "target"]
        assert snapshot(canary, times=True) == before
        assert sorted(os.listdir(FUZZ_ROOT)) == [os.path.basename(world)]
    finally:
        shutil.rmtree(world)


FUZZ_ROOT = None
COUNTS = {"cases": 0, "applied": 0, "refused": 0}


def run_in_fuzz_root(scratch, prop):
    """Runs a property inside a tmpfs of its own, so 'outside' is fully observable."""
    global FUZZ_ROOT
    FUZZ_ROOT = os.path.join(scratch, "fuzz")
    os.mkdir(FUZZ_ROOT)
    try:
        prop()
    finally:
        FUZZ_ROOT = None


def test_fuzz(scratch):
    run_in_fuzz_root(scratch, test_applier_never_escapes)
    print("fuzz: %(cases)d archives, %(applied)d applied, %(refused)d refused with the applier's error" % COUNTS)
    assert COUNTS["applied"] and COUNTS["refused"]  # both sides of the applier ran (explicit examples)


test_applier_never_escapes.__test__ = False  # run through test_fuzz only


# -- differential: valid archives apply as GNU tar extracts them ----------------------------------

TAR_EXAMPLES = int(os.environ.get("STRATA_FUZZ_TAR_EXAMPLES", str(max(EXAMPLES // 3, 50))))
PLAIN_NAMES = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map("/".join)
# no absolute or ".." link targets: GNU tar creates such symlinks last, through placeholders (its defence against
# archives that write through them), so of two entries for one such link the first one wins there,
# where Docker and this applier keep the last one, as for every other entry
PLAIN_TARGETS = ["a", "b", "c", "a/b", "b/c", "zz"]
plain_entry = st.tuples(st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]),
                        PLAIN_NAMES, st.sampled_from(PLAIN_TARGETS), st.integers(0, 3), st.booleans())


def build_plain(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i, (kind, name, target, mode_choice, trailing) in enumerate(entries):
            info = tarfile.TarInfo(name + ("/" if trailing and kind == tarfile.DIRTYPE else ""))
            info.type = kind
            info.mode = (0o644, 0o600, 0o755, 0o711)[mode_choice] if kind != tarfile.DIRTYPE else \
                (0o755, 0o700, 0o750, 0o711)[mode_choice]
            info.uid, info.gid = i, 2 * i
            info.mtime = 1700000000
            if kind == tarfile.REGTYPE:
                data = ("%s#%d" % (name, i)).encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def _gnu_tar_extract(data, dest):
    import subprocess  # pylint: disable=import-outside-toplevel

    os.mkdir(dest)
    # plain tar -xpf: --recursive-unlink would also empty a directory before a later entry for it
    done = subprocess.run(["sh", "-c", 'umask 022 && exec tar -xpf - -C "$0"', dest], input=data,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    return done.returncode, done.stderr.decode("utf-8", "replace")


@settings(max_examples=TAR_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(plain_entry, min_size=1, max_size=8))
@example([(tarfile.DIRTYPE, "a", "a", 1, True), (tarfile.REGTYPE, "a/b", "a", 2, False),
          (tarfile.SYMTYPE, "c", "a/b", 0, False), (tarfile.LNKTYPE, "b", "a/b", 0, False)])  # extracted by both
def test_applies_as_gnu_tar(entries):
    data = build_plain(entries)
    world = tempfile.mkdtemp(prefix="strata-tar-", dir=FUZZ_ROOT)
    try:
        target = os.path.join(world, "target")
        os.mkdir(target)
        try:
            LayerApplier(target).apply(io.BytesIO(data))
            applied = True
        except OverlayError:
            applied = False
        rc, errors = _gnu_tar_extract(data, os.path.join(world, "tar"))
        tar_ok = rc == 0
        TAR_COUNTS["both" if applied and tar_ok else "applier" if applied else "tar" if tar_ok else "neither"] += 1
        if applied and tar_ok:
            assert snapshot(target) == snapshot(os.path.join(world, "tar"))
        # an archive tar extracts without an error is never refused
        assert applied or not tar_ok
        if applied and not tar_ok:
            assert_only_kept_directories(errors)
    finally:
        shutil.rmtree(world)


def assert_only_kept_directories(errors):
    """tar's errors where it alone keeps a directory.

    Only where a non-directory replaces a filled directory: plain tar leaves the
    directory and reports "File exists"; Docker removes it, as the applier does.
    A later hardlink to that name then fails in tar only (a directory cannot be
    linked), which is the same difference seen again, never a first one.
    """
    lines = [line for line in errors.splitlines() if not line.startswith("tar: Exiting with failure")]
    assert lines and lines[0].endswith("File exists"), errors
    for line in lines:
        assert line.endswith("File exists") or (
            "Cannot hard link to" in line and line.endswith("Operation not permitted")), errors


TAR_COUNTS = {"both": 0, "applier": 0, "tar": 0, "neither": 0}


def test_fuzz_against_gnu_tar(scratch):
    run_in_fuzz_root(scratch, test_applies_as_gnu_tar)
    print("against GNU tar: %(both)d extracted by both with the same tree, %(applier)d only applied "
          "(tar reported an error), %(neither)d refused by both" % TAR_COUNTS)
    assert TAR_COUNTS["both"]  # the trees were compared (an explicit example at least)


test_applies_as_gnu_tar.__test__ = False  # run through test_fuzz_against_gnu_tar only


def test_hardlink_to_a_replaced_directory(scratch):
    """The one difference seen twice: a file replaces a filled directory, then a hardlink names it."""
    data = build_plain([(tarfile.DIRTYPE, "a", "a", 0, False), (tarfile.REGTYPE, "a/b", "a", 0, False),
                        (tarfile.REGTYPE, "a", "a", 0, False), (tarfile.LNKTYPE, "c", "a", 0, False)])
    target = os.path.join(scratch, "target")
    os.mkdir(target)
    LayerApplier(target).apply(io.BytesIO(data))
    assert os.path.samefile(os.path.join(target, "a"), os.path.join(target, "c"))
    rc, errors = _gnu_tar_extract(data, os.path.join(scratch, "tar"))
    assert rc != 0 and "Cannot hard link to" in errors
    assert_only_kept_directories(errors)
