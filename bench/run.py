"""Side-by-side benchmarks of strata.overlay against containers-storage and GNU tar.

Run as root with `make bench`. Every figure is a whole process, measured with
GNU time (wall clock, CPU, peak RSS), repeated, and reported as the median;
ratios are taken pair by pair (ours, theirs, ours, theirs, ...) so a drifting
machine shows up as spread instead of bias. Results go to stdout and to
bench/results/<date>.md.

Data, cached under $STRATA_BENCH_CACHE (default /var/tmp/strata-bench):
- base.tar: a Debian 12 minbase rootfs built with mmdebstrap;
- child.tar: the diff containers-storage exports after a layer on that base got
  a package set installed (a second mmdebstrap tree synced over it) and its
  documentation deleted: adds, changes and whiteouts.
Everything runs on a fresh ext4 loop filesystem, the usual backing filesystem.

(l) compares the two layouts (the seed's overlay and overlay2) with
containers-storage: a base plus 30 child layers, one child onto bases of three
sizes, and a 32-layer image pulled from a local registry (bench/layouts.py).
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODULE_UTILS = os.path.join(REPO, "plugins", "module_utils")
CACHE = os.environ.get("STRATA_BENCH_CACHE", "/var/tmp/strata-bench")
EXTRA_PACKAGES = "python3,openssh-server,curl,ca-certificates,less,procps"
RECIPE = "bookworm minbase; child: +%s, -usr/share/doc" % EXTRA_PACKAGES

DRIVER = [sys.executable, os.path.join(HERE, "driver_cli.py")]
FLOOR = os.path.join(HERE, "syscall_floor.py")
MANY_LAYERS = 1000  # row (c''): the home of the export, base and child included


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def cs(graph, *args, **kw):
    return sh("containers-storage", "-g", graph + "/g", "-R", graph + "/r", "-s", "overlay", *args, **kw)


def cs_cleanup(graph):
    subprocess.run(["containers-storage", "-g", graph + "/g", "-R", graph + "/r", "-s", "overlay", "shutdown"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
        point = line.split()[4]
        if point.startswith(graph + "/"):
            subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(graph, ignore_errors=True)


# -- data ------------------------------------------------------------------------

def build_data():
    key = hashlib.sha256(RECIPE.encode()).hexdigest()[:12]
    out = os.path.join(CACHE, key)
    base, child = os.path.join(out, "base.tar"), os.path.join(out, "child.tar")
    if os.path.exists(child):
        return base, child
    os.makedirs(out, exist_ok=True)
    print("building the data (mmdebstrap, about 2 minutes) into %s" % out, flush=True)
    partial = os.path.join(out, "base.partial.tar")  # mmdebstrap picks the format by the extension
    sh("mmdebstrap", "--variant=minbase", "--quiet", "bookworm", partial)
    os.rename(partial, base)
    full = os.path.join(out, "full.tar")
    sh("mmdebstrap", "--variant=minbase", "--quiet", "--include=" + EXTRA_PACKAGES, "bookworm", full)
    work = tempfile.mkdtemp(prefix="strata-bench-data-", dir=CACHE)
    try:
        tree = os.path.join(work, "tree")
        os.mkdir(tree)
        sh("tar", "-xpf", full, "-C", tree)
        base_id = cs(work, "import-layer", "-f", base, stdout=subprocess.PIPE).stdout.decode().split()[-1]
        child_id = cs(work, "create-layer", base_id, stdout=subprocess.PIPE).stdout.decode().split()[-1]
        merged = cs(work, "mount", child_id, stdout=subprocess.PIPE).stdout.decode().strip()
        sh("rsync", "-aHAX", "--delete", tree + "/", merged + "/")
        shutil.rmtree(os.path.join(merged, "usr/share/doc"))
        cs(work, "unmount", child_id)
        with open(child + ".tmp", "wb") as f:
            cs(work, "diff", "-u", child_id, stdout=f)
        os.rename(child + ".tmp", child)
    finally:
        cs_cleanup(work)
    os.unlink(full)
    return base, child


def big_layer(size_mb):
    path = os.path.join(CACHE, "big-%d.tar" % size_mb)
    if not os.path.exists(path):
        src = tempfile.mkdtemp(prefix="strata-bench-big-", dir=CACHE)
        try:
            chunk = os.urandom(1 << 20)
            for i in range(size_mb // 100):
                with open(os.path.join(src, "blob-%d" % i), "wb") as f:
                    for _chunk_no in range(100):
                        f.write(chunk)
            sh("tar", "-cf", path + ".tmp", "-C", src, ".")
            os.rename(path + ".tmp", path)
        finally:
            shutil.rmtree(src)
    return path


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- measuring -----------------------------------------------------------------------

def measure(cmd, setup=None, env=None):
    """One whole-process run under GNU time: (wall s, cpu s, peak RSS MiB).

    GNU time is the parent so the peak is the command's own: a child forked
    from this (larger) Python process would inherit its high-water mark.
    """
    if setup:
        setup()
    sh("sync")
    with tempfile.NamedTemporaryFile("r", prefix="strata-bench-time-") as out:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", out.name] + list(cmd),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False)
        if proc.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(cmd), proc.stderr.decode(errors="replace")))
        wall, user, system, peak_kib = out.read().split()[-4:]
    return float(wall), float(user) + float(system), int(peak_kib) / 1024.0


def compare(name, ours, theirs, reps):
    """ours/theirs: (cmd, setup) pairs or None; alternate, then medians and pairwise ratios."""
    rows = {"ours": [], "theirs": []}
    for _rep in range(reps):
        rows["ours"].append(measure(*ours))
        if theirs:
            rows["theirs"].append(measure(*theirs))
    med = {k: [statistics.median(col) for col in zip(*v)] if v else None for k, v in rows.items()}
    ratios = [o[0] / t[0] for o, t in zip(rows["ours"], rows["theirs"])] if theirs else []
    return {"name": name, "ours": med["ours"], "theirs": med["theirs"],
            "ratio": statistics.median(ratios) if ratios else None,
            "ratio_min": min(ratios) if ratios else None, "ratio_max": max(ratios) if ratios else None,
            "runs": rows}


# -- the scenarios ---------------------------------------------------------------------

class Bench:
    def __init__(self, fs_root, reps):
        self.root = fs_root
        self.reps = reps

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def fresh(self, *paths):
        def setup():
            for p in paths:
                if os.path.isdir(p):
                    for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
                        point = line.split()[4]
                        if point.startswith(p + "/"):
                            subprocess.run(["umount", "-l", point], check=False)
                    shutil.rmtree(p)
        return setup

    def base_apply(self, base):
        home, graph, tdir = self.path("a-ours"), self.path("a-cs"), self.path("a-tar")
        ours = (DRIVER + ["apply", home, "base", "", base], self.fresh(home))
        peer = (["containers-storage", "-g", graph + "/g", "-R", graph + "/r", "-s", "overlay", "import-layer",
                 "-f", base], lambda: (cs_cleanup(graph), os.makedirs(graph)))
        floor = (["tar", "-xpf", base, "-C", tdir], lambda: (self.fresh(tdir)(), os.makedirs(tdir)))
        vs_cs = compare("(a) apply the base: ours vs containers-storage import-layer", ours, peer, self.reps)
        vs_tar = compare("(a) apply the base: ours vs tar -xpf", ours, floor, self.reps)
        cs_cleanup(graph)
        # what the interpreter alone adds to tar's system calls (see syscall_floor.py)
        manifest, fdir = self.path("a-manifest.json"), self.path("a-floor")
        sh(sys.executable, FLOOR, "manifest", base, manifest)
        python_floor = compare("(a') tar's system calls from a bare Python loop vs tar -xpf",
                               ([sys.executable, FLOOR, "apply", base, manifest, fdir], self.fresh(fdir)),
                               floor, self.reps)
        # what the applier spends before any file system work
        scan = compare("(a'') ours reading the base alone (decompress, SHA-256, decode and check every header) "
                       "vs tar -xpf", (DRIVER + ["scan", base], None), floor, self.reps)
        return [vs_cs, vs_tar, python_floor, scan]

    def child_apply(self, base, child):
        home, graph = self.path("b-ours"), self.path("b-cs")
        sh(*DRIVER, "apply", home, "base", "", base)
        cs_cleanup(graph)
        os.makedirs(graph)
        base_id = cs(graph, "import-layer", "-f", base, stdout=subprocess.PIPE).stdout.decode().split()[-1]
        layer = {}

        def ours_setup():
            sh(*DRIVER, "remove", home, "child")

        def peer_setup():
            if layer.get("id"):
                cs(graph, "delete-layer", layer["id"], stdout=subprocess.DEVNULL)
            layer["id"] = cs(graph, "create-layer", base_id, stdout=subprocess.PIPE).stdout.decode().split()[-1]
            peer[0][-1] = layer["id"]

        peer = (["containers-storage", "-g", graph + "/g", "-R", graph + "/r", "-s", "overlay", "applydiff",
                 "-f", child, "LAYER"], peer_setup)
        ours = (DRIVER + ["apply", home, "child", "base", child], ours_setup)
        result = compare("(b) apply the child onto the base: ours vs containers-storage applydiff", ours, peer,
                         self.reps)
        copy = compare("(b') the hardlink copy of the base's root/ alone (part of ours)",
                       (DRIVER + ["hardlink-copy", home, "base", self.path("b-copy")], self.fresh(self.path("b-copy"))),
                       None, self.reps)
        self.child_home, self.graph, self.child_id = home, graph, layer["id"]
        self.base, self.child = base, child
        return [result, copy]

    def export(self):
        out = self.path("export.tar")

        def no_output():
            # each run writes a new file: truncating the last run's 64 MB is not part of exporting
            if os.path.exists(out):
                os.unlink(out)

        ours = (DRIVER + ["diff", self.child_home, "child", out], no_output)
        peer = (["sh", "-c", "containers-storage -g %s/g -R %s/r -s overlay diff -u %s > %s"
                 % (self.graph, self.graph, self.child_id, out)], no_output)
        cold = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        cold.pop("PYTHONPYCACHEPREFIX", None)
        out_rows = [compare("(c) export the child's diff: ours vs containers-storage diff", ours, peer, self.reps),
                    compare("(c') the same, every module compiled at start (no bytecode cache, as under Ansible)",
                            (ours[0], no_output, cold), peer, self.reps)]
        # the same export from an overlay2 home, which reads the child's diff/ only (and the base where diff/
        # has entries) instead of two whole trees
        home2 = self.path("c-overlay2")
        sh(*DRIVER, "--layout", "overlay2", "apply", home2, "base", "", self.base)
        sh(*DRIVER, "apply", home2, "child", "base", self.child)
        out_rows.append(compare("(c''') the same export from an overlay2 home: ours vs containers-storage diff",
                                (DRIVER + ["diff", home2, "child", out], no_output), peer, self.reps))
        # the same export once the home holds 1,000 layers (children of the base beside the child): its cost
        # must follow the layer exported, not the home
        sh(*DRIVER, "create-many", self.child_home, str(MANY_LAYERS - 2), "base")
        out_rows.append(compare("(c'') the same export on a home with %s layers: ours vs containers-storage diff"
                                % format(MANY_LAYERS, ","), ours, peer, self.reps))
        return out_rows

    def ansible_tasks(self, base):
        home = self.path("d-home")
        sh(*DRIVER, "apply", home, "base", "", base)
        sh(*DRIVER, "create", home, "app", "base")
        digest = "sha256:" + file_sha256(base)
        collections = os.environ.get("STRATA_COLLECTIONS", os.path.join(os.path.dirname(HERE), ".collections"))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections)
        playbook = os.path.join(HERE, "tasks.yml")
        bindir = os.path.dirname(sys.executable)

        def play(task):
            return ([os.path.join(bindir, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                     "-e", "ansible_python_interpreter=" + sys.executable, "-e", "task=" + task,
                     "-e", "home=" + home, "-e", "src=" + base, "-e", "diff_id=" + digest, playbook], None)

        subprocess.run(play("mount")[0], check=True, env=env, stdout=subprocess.DEVNULL)
        floor = play("stat")
        out = []
        for task in ("apply_noop", "mount_noop"):
            cmd = play(task)
            out.append(compare("(d) %s task vs an ansible.builtin.stat task (whole ansible-playbook)" % task,
                               (cmd[0], None, env), (floor[0], None, env), self.reps))
        sh(*DRIVER, "unmount-all", home)
        return out

    def memory(self):
        out = []
        for size in (200, 1000):
            layer = big_layer(size)
            home = self.path("e-home")
            out.append(compare("(e) peak RSS applying a %d MB layer" % size,
                               (DRIVER + ["apply", home, "big", "", layer], self.fresh(home)), None,
                               max(1, self.reps // 2)))
        return out


def ext4(size_gb):
    # a name of its own: two benches at once must not truncate each other's mounted filesystem
    with tempfile.NamedTemporaryFile(dir=CACHE, prefix="bench-ext4-", suffix=".img", delete=False) as f:
        image = f.name
        f.truncate(size_gb << 30)
    sh("mkfs.ext4", "-q", "-F", image)
    mnt = tempfile.mkdtemp(prefix="strata-bench-fs-")
    sh("mount", "-o", "loop", image, mnt)
    return mnt, image


def table(results):
    lines = ["| measurement | ours (wall s / cpu s / peak MiB) | theirs | ratio (median, min-max) |",
             "|---|---|---|---|"]
    for r in results:
        o = "%.2f / %.2f / %.0f" % tuple(r["ours"])
        t = "%.2f / %.2f / %.0f" % tuple(r["theirs"]) if r["theirs"] else "-"
        q = "%.2f (%.2f-%.2f)" % (r["ratio"], r["ratio_min"], r["ratio_max"]) if r["ratio"] else "-"
        lines.append("| %s | %s | %s | %s |" % (r["name"], o, t, q))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--only", default="abcdel", help="which measurements, e.g. 'ab'")
    parser.add_argument("--layout-reps", type=int, default=3, help="repetitions of (l), whose runs are long")
    parser.add_argument("--layout-parts", default="1423",
                        help="which parts of (l): 1 chain, 4 the chain in one process, 2 base sizes, 3 image")
    args = parser.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    base, child = build_data()
    # Python runs from compiled bytecode, as an installed package does (pip compiles at install),
    # whatever the calling environment says; (c') shows the export compiling every module instead.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(CACHE, "pycache")
    sh(*DRIVER, "scan", child, stdout=subprocess.DEVNULL)  # fills the bytecode cache
    mnt, image = ext4(8)
    results, layout_results = [], {}
    try:
        bench = Bench(mnt, args.reps)
        if "a" in args.only:
            results += bench.base_apply(base)
        if "b" in args.only or "c" in args.only:
            results += bench.child_apply(base, child)
        if "c" in args.only:
            results += bench.export()
        if "d" in args.only:
            results += bench.ansible_tasks(base)
        if "e" in args.only:
            results += bench.memory()
        if "l" in args.only:
            import layouts  # pylint: disable=import-outside-toplevel
            layout_results = layouts.run(mnt, base, child, args.layout_reps, args.layout_parts)
    finally:
        for line in reversed(open("/proc/self/mountinfo").read().splitlines()):
            point = line.split()[4]
            if point.startswith(mnt + "/"):
                subprocess.run(["umount", "-l", point], check=False)
        sh("umount", mnt)
        os.rmdir(mnt)
        os.unlink(image)
    entries = int(subprocess.run(["sh", "-c", "tar -tf %s | wc -l" % base], stdout=subprocess.PIPE,
                                 check=True).stdout)
    header = ("%s, %s, %d cores, Python %s; base %d entries, %d MB; child %d MB; ext4 on a loop file; %d reps"
              % (datetime.date.today(), platform.release(), os.cpu_count(), platform.python_version(), entries,
                 os.path.getsize(base) >> 20, os.path.getsize(child) >> 20, args.reps))
    text = header + "\n\n" + (table(results) + "\n" if results else "")
    if layout_results:
        import layouts  # pylint: disable=import-outside-toplevel
        text += "\n(l) layouts, %d reps\n\n%s" % (args.layout_reps, layouts.report(layout_results))
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "%s.md" % datetime.date.today()), "w") as f:
        f.write(text)
    with open(os.path.join(HERE, "results", "%s.json" % datetime.date.today()), "w") as f:
        json.dump({"header": header, "results": results, "layouts": layout_results}, f, indent=1)


if __name__ == "__main__":
    main()
