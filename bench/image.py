"""overlay_image against skopeo + containers-storage: pull and stage an image from a local registry.

Run as root: `.venv/bin/python bench/image.py [--reps N] [--only fgh]` (not part of
`make test`). The registry is Debian's docker-registry over TLS with htpasswd
auth on 127.0.0.1 (tests/registry.py), the image a two-layer Debian-like image
pushed into it by skopeo with gzip and with zstd layers (tests/imagebuild.py).

(f) one overlay_image module run staging all layers into a fresh home vs
    `skopeo copy docker://... containers-storage:[overlay@GRAPH+RUN]...` into a
    fresh graph, gzip and zstd, for each layout of --layouts (the seed's overlay,
    whose second layer starts as a hard-link copy of the first, and overlay2,
    containers-storage's own shape): alternate pairs, medians, ratio of medians;
(g) staging the image again (present: no change) vs an ansible.builtin.stat task,
    both as whole ansible-playbook runs;
(h) peak RSS of the module staging a single-layer image of 200 MB and 1 GB;
(i) the gzip pull of (f) with its layers decompressed by the igzip program (when
    the host has it) vs by zlib in the module (STRATA_OVERLAY_DISABLE_IGZIP=1).

Every figure is a whole process under GNU time, as in bench/run.py (whose
measuring helpers this uses). The module runs as Ansible runs it on a host,
minus the transport: `main()` of plugins/modules/overlay_image.py in a fresh
interpreter, the arguments in a file, from compiled bytecode as an installed
package is. Homes and graphs live on a fresh ext4 loop filesystem.

The image is built from a real Debian two-layer pair when one is cached
(bench/run.py's base.tar and child.tar under $STRATA_BENCH_CACHE, or an
mmdebstrap minbase tarball under /var/tmp/strata-vm, split in two), else from
a generated Debian-like tree of about 10,000 files and 150 MB.
"""

import argparse
import datetime
import glob
import hashlib
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

import imagebuild  # noqa: E402 pylint: disable=wrong-import-position
from registry import registries  # noqa: E402 pylint: disable=wrong-import-position
from run import CACHE, big_layer, compare, cs_cleanup, sh, table  # noqa: E402 pylint: disable=wrong-import-position

VM_CACHE = "/var/tmp/strata-vm"
GENERATOR = "debian-like v2: 7000+3000 files, ~150 MB, seed 12"
MODULE_MAIN = "from ansible_collections.strata.overlay.plugins.modules.overlay_image import main; main()"


# -- the image -------------------------------------------------------------------------------

def find_debian_pair():
    """(layer0, layer1, what) from cached real Debian data, or None."""
    for child in sorted(glob.glob(os.path.join(CACHE, "*", "child.tar"))):
        base = os.path.join(os.path.dirname(child), "base.tar")
        if os.path.exists(base):
            return base, child, "Debian 12 minbase (mmdebstrap) and a package-install layer on it (bench/run.py's data)"
    for tarball in sorted(glob.glob(os.path.join(VM_CACHE, "**", "*minbase*.tar"), recursive=True)):
        out = os.path.join(CACHE, "image-split-" + hashlib.sha256(tarball.encode()).hexdigest()[:12])
        layers = split_tarball(tarball, out)
        return layers[0], layers[1], "mmdebstrap minbase %s, usr/share split into a second layer" % tarball
    return None


def split_tarball(tarball, out):
    """Two layers from one rootfs tar: everything but usr/share/, then usr/share/ (with its parents)."""
    first, second = os.path.join(out, "layer0.tar"), os.path.join(out, "layer1.tar")
    if os.path.exists(second):
        return first, second
    os.makedirs(out, exist_ok=True)

    def norm(name):
        return name[2:] if name.startswith("./") else name.lstrip("/")

    def in_second(name):
        return norm(name).startswith("usr/share/")

    with tarfile.open(tarball) as src, tarfile.open(first + ".tmp", "w", format=tarfile.PAX_FORMAT) as a, \
            tarfile.open(second + ".tmp", "w", format=tarfile.PAX_FORMAT) as b:
        for info in src:
            name = norm(info.name).rstrip("/")
            if name in ("usr", "usr/share"):
                b.addfile(info)  # the second layer's parents have headers of their own, as real layers do
            # a hard link goes with its target: a layer cannot link to another layer's file
            second_layer = in_second(info.linkname) if info.islnk() else in_second(name)
            (b if second_layer else a).addfile(info, src.extractfile(info) if info.isreg() else None)
    os.rename(first + ".tmp", first)
    os.rename(second + ".tmp", second)
    return first, second


class _TreeWriter:
    """Writes a generated layer: deterministic sizes and contents that compress about as binaries do."""

    def __init__(self, path, rng, pools):
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # pylint: disable=consider-using-with
        self.rng = rng
        self.random_pool, self.text_pool = pools
        self.files = 0
        self.bytes = 0

    def _info(self, name, kind, mode, **kw):
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, 1700000000 + self.rng.randrange(86400 * 365)
        for key, value in kw.items():
            setattr(info, key, value)
        return info

    def dir(self, name, mode=0o755):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name, size, mode=0o644):
        # a sixth incompressible, the rest text of a small vocabulary: gzip -6 makes about 35-40% of it,
        # about what it makes of a Debian minbase tree
        cut = size // 6
        start = self.rng.randrange(len(self.random_pool) - cut) if cut < len(self.random_pool) else 0
        data = self.random_pool[start:start + cut]
        text_len = size - len(data)
        start = self.rng.randrange(max(1, len(self.text_pool) - text_len))
        data += self.text_pool[start:start + text_len]
        data = data[:size] + b"\0" * (size - len(data))
        self.tar.addfile(self._info(name, tarfile.REGTYPE, mode, size=size), io.BytesIO(data))
        self.files += 1
        self.bytes += size

    def symlink(self, name, target):
        self.tar.addfile(self._info(name, tarfile.SYMTYPE, 0o777, linkname=target))

    def hardlink(self, name, target, mode=0o644):
        self.tar.addfile(self._info(name, tarfile.LNKTYPE, mode, linkname=target))

    def close(self):
        self.tar.close()


def _sizes(rng, count, total):
    raw = [min(rng.lognormvariate(8.6, 1.7), 8 << 20) for _index in range(count)]
    scale = total / sum(raw)
    return [max(0, int(s * scale)) for s in raw]


def generate_tree(out):
    """Two layers of a Debian-like tree: about 7,000 files / 100 MB, then 3,000 entries / 50 MB on top."""
    first, second = os.path.join(out, "layer0.tar"), os.path.join(out, "layer1.tar")
    if os.path.exists(second):
        return first, second
    os.makedirs(out, exist_ok=True)
    rng = random.Random(12)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz_") for _char in range(rng.randrange(2, 12)))
             for _word in range(400)]
    text = b" ".join(rng.choice(words) for _count in range(1 << 20))[:16 << 20]
    pools = (rng.randbytes(16 << 20), text)
    tops = ["bin", "etc", "lib", "sbin", "usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/share/doc",
            "usr/share/locale", "usr/share/man/man1", "usr/share/zoneinfo", "var/lib/dpkg/info", "var/cache/debconf"]

    w = _TreeWriter(first + ".tmp", rng, pools)
    made = set()

    def ensure(path):
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                made.add(d)
                w.dir(d)

    base_files = []
    for i, size in enumerate(_sizes(rng, 7000, 100 << 20)):
        top = tops[i % len(tops)]
        sub = "%s/pkg%03d" % (top, rng.randrange(300)) if "share" in top or "dpkg" in top else top
        ensure(sub)
        name = "%s/f%05d%s" % (sub, i, rng.choice([".so", ".conf", ".gz", "", ".py", ".txt"]))
        w.file(name, size, 0o755 if "bin" in top else 0o644)
        base_files.append(name)
    for i in range(300):
        w.symlink("usr/lib/x86_64-linux-gnu/link%03d" % i, os.path.basename(base_files[i * 7]))
    for i in range(50):
        w.hardlink("usr/bin/hard%02d" % i, base_files[i * 13], 0o755)
    w.close()
    os.rename(first + ".tmp", first)

    w = _TreeWriter(second + ".tmp", rng, pools)
    made.clear()
    changed = rng.sample(base_files[400:], 600)
    for name in changed[:400]:  # rewritten files
        ensure(os.path.dirname(name))
        w.file(name, rng.randrange(1, 60000))
    for name in changed[400:]:  # deleted files
        ensure(os.path.dirname(name))
        w.file(os.path.join(os.path.dirname(name), ".wh." + os.path.basename(name)), 0, 0o600)
    ensure("usr/share/doc/pkg001")
    w.file("usr/share/doc/pkg001/.wh..wh..opq", 0, 0o600)
    for i, size in enumerate(_sizes(rng, 2400, 47 << 20)):
        sub = "opt/app/lib%02d" % (i % 40)
        ensure(sub)
        w.file("%s/m%05d.py" % (sub, i), size)
    w.close()
    os.rename(second + ".tmp", second)
    return first, second


def image_layers():
    found = find_debian_pair()
    if found:
        return found[0], found[1], found[2]
    out = os.path.join(CACHE, "image-generated-" + hashlib.sha256(GENERATOR.encode()).hexdigest()[:12])
    first, second = generate_tree(out)
    return first, second, "generated Debian-like tree (%s)" % GENERATOR


def tar_entries(path):
    with tarfile.open(path) as tar:
        return sum(1 for _member in tar)


# -- running the two sides -----------------------------------------------------------------------

class Side:
    def __init__(self, root, regs, farm):
        self.root = root
        self.regs = regs
        self.farm = farm
        self.env = dict(os.environ, PYTHONPATH=farm, PYTHONPYCACHEPREFIX=os.path.join(CACHE, "pycache"))
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def module_args(self, name, ref, home, layout="overlay"):
        path = self.path("args-%s.json" % name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": {"src": ref, "home": home, "registry_auth": self.regs.auth,
                                               "ca_path": self.regs.pki.ca_crt, "layout": layout}}, f)
        return [sys.executable, "-c", MODULE_MAIN, path]

    def run_module(self, cmd):
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=self.env, check=False)
        result = json.loads(proc.stdout)
        if proc.returncode or result.get("failed"):
            raise RuntimeError("overlay_image failed: %s" % result.get("msg", result))
        return result

    def fresh_home(self, home):
        def setup():
            if os.path.isdir(home):
                for line in reversed(open("/proc/self/mountinfo", encoding="utf-8").read().splitlines()):
                    point = line.split()[4]
                    if point.startswith(home + "/"):
                        subprocess.run(["umount", "-l", point], check=False)
                shutil.rmtree(home)
        return setup

    def skopeo_cmd(self, ref, graph, name):
        return ["skopeo", "--insecure-policy", "copy", "--quiet", "--src-cert-dir", self.regs.pki.cert_dir,
                "--src-creds", self.regs.creds, ref,
                "containers-storage:[overlay@%s/g+%s/r]%s" % (graph, graph, name)]

    def fresh_graph(self, graph):
        def setup():
            cs_cleanup(graph)
            os.makedirs(graph)
        return setup


def pull_and_stage(side, reps, expected_layers, layouts):
    out = []
    for layout, compression in [(layout, c) for layout in layouts for c in ("gzip", "zstd")]:
        ref = side.regs.basic.ref("bench", compression)
        home, graph = side.path("f-home-" + compression), side.path("f-cs-" + compression)
        ours = (side.module_args("f-" + compression, ref, home, layout), side.fresh_home(home), side.env)
        side.fresh_home(home)()
        result = side.run_module(ours[0])  # checks it works, and compiles the bytecode
        assert result["changed"] and len(result["layers"]) == expected_layers, result
        theirs = (side.skopeo_cmd(ref, graph, "bench:" + compression), side.fresh_graph(graph))
        row = compare("(f) pull and stage the image, %s layers, %s layout: overlay_image (one module run) vs skopeo "
                      "copy into containers-storage" % (compression, layout), ours, theirs, reps)
        row["ratio_of_medians"] = row["ours"][0] / row["theirs"][0]
        out.append(row)
        side.fresh_home(home)()
        cs_cleanup(graph)
    return out


def one_file_layer(layer0):
    """A layer holding one file, the first layer's tarball: the same bytes, with nothing to unpack but them
    (what decompression, not the applier, bounds)."""
    path = os.path.join(CACHE, "one-file-%s.tar" % hashlib.sha256(layer0.encode()).hexdigest()[:12])
    if not os.path.exists(path):
        with tarfile.open(path + ".tmp", "w", format=tarfile.PAX_FORMAT) as tf:
            tf.add(layer0, arcname="one-file")
        os.rename(path + ".tmp", path)
    return path


def igzip_vs_zlib(side, reps, layouts):
    """(i) gzip pulls with their layers decompressed by the igzip program vs by zlib in the module: the
    image of (f), and an image of one layer holding one file (decompression bound)."""
    out = []
    zlib_env = dict(side.env, STRATA_OVERLAY_DISABLE_IGZIP="1")
    for name, what, layout in [("bench", "the image of (f)", layout) for layout in layouts] + [
            ("onefile", "one layer of one file", "overlay2")]:
        ref = side.regs.basic.ref(name, "gzip")
        home = side.path("i-home")
        cmd = side.module_args("i-%s-%s" % (name, layout), ref, home, layout)
        side.fresh_home(home)()
        side.run_module(cmd)
        row = compare("(i) pull and stage %s, gzip, %s layout: igzip vs zlib" % (what, layout),
                      (cmd, side.fresh_home(home), side.env), (cmd, side.fresh_home(home), zlib_env), reps)
        row["ratio_of_medians"] = row["ours"][0] / row["theirs"][0]
        out.append(row)
        side.fresh_home(home)()
    return out


def restage_vs_stat(side, reps):
    ref = side.regs.basic.ref("bench", "gzip")
    home = side.path("g-home")
    side.run_module(side.module_args("g", ref, home))
    again = side.run_module(side.module_args("g", ref, home))
    assert again["changed"] is False, again
    variables = side.path("g-vars.json")
    with open(variables, "w", encoding="utf-8") as f:
        json.dump({"src": ref, "home": home, "registry_auth": side.regs.auth, "ca_path": side.regs.pki.ca_crt},
                  f)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=side.farm)
    bindir = os.path.dirname(sys.executable)

    def play(task):
        return [os.path.join(bindir, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                "-e", "ansible_python_interpreter=" + sys.executable, "-e", "@" + variables, "-e", "task=" + task,
                os.path.join(HERE, "image_tasks.yml")]

    check = subprocess.run(play("image"), env=env, stdout=subprocess.PIPE, check=False)
    if check.returncode or b"changed=0" not in check.stdout:
        raise RuntimeError("the re-staging task did not run unchanged:\n%s" % check.stdout.decode())
    rows = [compare("(g) stage the image again (present) vs an ansible.builtin.stat task (whole ansible-playbook)",
                    (play("image"), None, env), (play("stat"), None, env), reps),
            compare("(g') the same re-staging as one module run (no ansible-playbook)",
                    (side.module_args("g", ref, home), None, side.env), None, reps)]
    side.fresh_home(home)()
    return rows


def peak_rss(side, reps, sizes=(200, 1000)):
    out = []
    for size in sizes:
        ref = side.regs.basic.ref("big%d" % size, "gzip")
        home = side.path("h-home")
        cmd = side.module_args("h%d" % size, ref, home)
        out.append(compare("(h) peak RSS staging a single-layer image of %d MB (gzip)" % size,
                           (cmd, side.fresh_home(home), side.env), None, max(1, reps // 2)))
        side.fresh_home(home)()
    return out


def profile_stage(side, top=15):
    """Where a staging's time goes: stage_image in this process under cProfile, on the bench's filesystem.

    cProfile sees the main thread, which applies entries; the reader thread
    (socket reads, decompression, both digests) shows there only as time
    spent waiting for its next chunk (the queue's lock).
    """
    import cProfile  # pylint: disable=import-outside-toplevel
    import pstats  # pylint: disable=import-outside-toplevel

    sys.path.insert(0, side.farm)
    stage = __import__("ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.images.stage",
                       fromlist=["stage_image"])
    store_mod = __import__("ansible_collections.strata.overlay.plugins.module_utils.overlay_driver.store",
                           fromlist=["LayerStore"])
    for compression in ("gzip", "zstd"):
        home = side.path("p-home-" + compression)
        side.fresh_home(home)()
        profiler = cProfile.Profile()
        before, wall = os.times(), datetime.datetime.now()
        profiler.enable()
        stage.stage_image(store_mod.LayerStore(home), side.regs.basic.ref("bench", compression),
                          registry_auth=side.regs.auth, ca_path=side.regs.pki.ca_crt)
        profiler.disable()
        after = os.times()
        print("== profile, %s: wall %.2f s, cpu %.2f s (this process, all threads), %.2f s (children)"
              % (compression, (datetime.datetime.now() - wall).total_seconds(),
                 after.user + after.system - before.user - before.system,
                 after.children_user + after.children_system - before.children_user - before.children_system))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(top)
        side.fresh_home(home)()


def collection_farm():
    """A collections root whose strata/overlay is this working tree (what the bench measures)."""
    root = tempfile.mkdtemp(prefix="strata-image-bench-collections-")
    os.makedirs(os.path.join(root, "ansible_collections", "strata"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "strata", "overlay"))
    return root


def ext4(size_gb):
    # a name of its own: two benches at once must not truncate each other's mounted filesystem
    with tempfile.NamedTemporaryFile(dir=CACHE, prefix="image-bench-ext4-", suffix=".img", delete=False) as f:
        image = f.name
        f.truncate(size_gb << 30)
    sh("mkfs.ext4", "-q", "-F", image)
    mnt = tempfile.mkdtemp(prefix="strata-image-bench-fs-")
    sh("mount", "-o", "loop", image, mnt)
    return mnt, image


def unmount_below(path):
    for line in reversed(open("/proc/self/mountinfo", encoding="utf-8").read().splitlines()):
        point = line.split()[4]
        if point.startswith(path + "/"):
            subprocess.run(["umount", "-l", point], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default="fgh", help="which measurements, e.g. 'fg'; 'p' profiles a staging")
    parser.add_argument("--layouts", default="overlay,overlay2", help="the home layouts (f) stages into")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench makes loop filesystems and overlay mounts")
    os.makedirs(CACHE, exist_ok=True)
    load_at_start = os.getloadavg()[0]
    layer0, layer1, what = image_layers()
    work = tempfile.mkdtemp(prefix="strata-image-bench-", dir=CACHE)
    farm = collection_farm()
    mnt, fs_image = ext4(8)
    results, sizes = [], {}
    try:
        with registries(token=False, directory=os.path.join(work, "registry")) as regs:
            layout = os.path.join(work, "layout")
            refs = {"bench": imagebuild.Image([layer0, layer1])}
            if "h" in args.only:
                refs.update({"big%d" % size: imagebuild.Image([big_layer(size)]) for size in (200, 1000)})
            if "i" in args.only:
                refs["onefile"] = imagebuild.Image([one_file_layer(layer0)])
            imagebuild.write_oci_layout(layout, refs)
            print("pushing the images (gzip and zstd)", flush=True)
            for compression in ("gzip", "zstd"):
                imagebuild.push(regs, "oci:%s:bench" % layout, "bench", compression, compression=compression)
            if "i" in args.only:
                imagebuild.push(regs, "oci:%s:onefile" % layout, "onefile", "gzip")
            if "h" in args.only:
                for size in (200, 1000):
                    imagebuild.push(regs, "oci:%s:big%d" % (layout, size), "big%d" % size, "gzip")
            side = Side(mnt, regs, farm)
            if "f" in args.only:
                results += pull_and_stage(side, args.reps, 2, args.layouts.split(","))
            if "i" in args.only:
                results += igzip_vs_zlib(side, args.reps, args.layouts.split(","))
            if "g" in args.only:
                results += restage_vs_stat(side, args.reps)
            if "h" in args.only:
                results += peak_rss(side, args.reps)
            if "p" in args.only:
                profile_stage(side)
            sizes = {c: sum(d["size"] for d in json.load(regs.basic.v2(
                "bench/manifests/" + c, basic=(regs.USER, regs.PASSWORD),
                accept=imagebuild.OCI_MANIFEST + ",application/vnd.docker.distribution.manifest.v2+json"))["layers"])
                for c in ("gzip", "zstd")}
    finally:
        unmount_below(mnt)
        sh("umount", mnt)
        os.rmdir(mnt)
        os.unlink(fs_image)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(farm, ignore_errors=True)
    header = ("%s, %s, %d cores, Python %s; image: %s; layers %d + %d entries, %d + %d MB uncompressed; "
              "%d MB gzip, %d MB zstd; ext4 on a loop file; %d reps; load average %.1f at start, %.1f at end"
              % (datetime.date.today(), platform.release(), os.cpu_count(), platform.python_version(), what,
                 tar_entries(layer0), tar_entries(layer1), os.path.getsize(layer0) >> 20,
                 os.path.getsize(layer1) >> 20, sizes.get("gzip", 0) >> 20, sizes.get("zstd", 0) >> 20, args.reps,
                 load_at_start, os.getloadavg()[0]))
    lines = [header, "", table(results)]
    for r in results:
        if "ratio_of_medians" in r:
            lines.append("- %s: ratio of medians %.2f" % (r["name"].split(":")[0], r["ratio_of_medians"]))
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M")
    with open(os.path.join(HERE, "results", "image-%s.md" % stamp), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(HERE, "results", "image-%s.json" % stamp), "w", encoding="utf-8") as f:
        json.dump({"header": header, "results": results,
                   "medians": {r["name"]: statistics.median([x[0] for x in r["runs"]["ours"]]) for r in results}},
                  f, indent=1)


if __name__ == "__main__":
    main()
