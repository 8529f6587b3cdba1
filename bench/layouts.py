"""The two layouts side by side with containers-storage: what a layer chain costs in time, inodes and bytes.

Run by `bench/run.py --only l` (part of `make bench`), as root, on the fresh ext4
loop filesystem run.py makes. Three sides write the same layer tarballs:

- `overlay`: strata's seed layout (a child built by apply_diff gets a hardlink copy
  of its parent's whole root/);
- `overlay2`: strata's overlay2 layout (a child's diff/ holds its own changes only);
- `containers-storage`: `containers-storage -s overlay`, overlay2-shaped.

Measurements (whole processes under GNU time, as everywhere in bench/):
(l1) a Debian minbase base plus 30 small child layers: the 30 child applies
     summed per run (strata: one `driver_cli.py apply` per child, which creates the
     layer too; containers-storage: `applydiff` per child, its `create-layer` not
     timed), medians of the runs; inodes and bytes the 30 children add and the whole
     chain takes, from statvfs deltas after sync;
(l1') the same 30 children applied by strata in one process (driver_cli.py
     apply-chain): the chain's cost without 30 interpreter starts and imports;
(l2) one child applied onto bases of 1k, 5k and 20k entries: whether a child's
     cost depends on the size of what is below it;
(l3) a 32-layer image (the Debian base, a package-install layer, the 30 small
     layers) pulled from a local registry: overlay_image (one module run) per
     layout against `skopeo copy` into containers-storage; time, inodes, bytes.

The small layers are generated with a fixed seed: each adds a config file in
/etc, rewrites /etc/app.conf, adds a directory of three small binaries under
/usr/local/lib, deletes one file of the layer before it (a whiteout), and every
tenth replaces /etc/app.d (an opaque directory).
"""

import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

from run import CACHE, DRIVER, cs_cleanup, measure, sh  # noqa: E402 pylint: disable=wrong-import-position

SIDES = ("overlay", "overlay2", "containers-storage")
CHILDREN = 30
BASE_SIZES = (1000, 5000, 20000)
T0 = 1700000000
SEED = 18


# -- data ------------------------------------------------------------------------

def _add(tf, name, kind=tarfile.DIRTYPE, data=b"", mode=0o755, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, T0, 0, 0
    if kind == tarfile.SYMTYPE:
        info.linkname = linkname
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    else:
        tf.addfile(info)


def small_child(i, rng):
    """The i-th small layer (uncompressed tar bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("etc", "usr", "usr/local", "usr/local/lib", "usr/local/lib/app-%d" % i):
            _add(tf, d)
        _add(tf, "etc/app-%d.conf" % i, tarfile.REGTYPE, ("layer=%d\n" % i).encode() * 20, 0o644)
        _add(tf, "etc/app.conf", tarfile.REGTYPE, ("current=%d\n" % i).encode(), 0o644)
        for name in ("a.bin", "b.bin", "c.bin"):
            _add(tf, "usr/local/lib/app-%d/%s" % (i, name), tarfile.REGTYPE, rng.randbytes(rng.randint(4096, 16384)))
        if i > 0:
            _add(tf, "usr/local/lib/app-%d/.wh.a.bin" % (i - 1), tarfile.REGTYPE, mode=0o600)
        if i % 10 == 0:
            _add(tf, "etc/app.d")
            _add(tf, "etc/app.d/.wh..wh..opq", tarfile.REGTYPE, mode=0o600)
            _add(tf, "etc/app.d/%d.conf" % i, tarfile.REGTYPE, b"x=1\n", 0o644)
    return buf.getvalue()


def small_children():
    """Paths of the CHILDREN small layers, made once into the cache."""
    out = os.path.join(CACHE, "layouts-children-seed%d" % SEED)
    paths = [os.path.join(out, "child-%02d.tar" % i) for i in range(CHILDREN)]
    if not os.path.exists(paths[-1]):
        os.makedirs(out, exist_ok=True)
        rng = random.Random(SEED)
        for i, path in enumerate(paths):
            with open(path + ".tmp", "wb") as f:
                f.write(small_child(i, rng))
            os.rename(path + ".tmp", path)
    return paths


def generated_base(entries):
    """A minbase-like base of about `entries` entries: directories of 20 entries, small files, some symlinks."""
    path = os.path.join(CACHE, "layouts-base-%d-seed%d.tar" % (entries, SEED))
    if os.path.exists(path):
        return path
    rng = random.Random(SEED * 1000 + entries)
    with tarfile.open(path + ".tmp", "w", format=tarfile.PAX_FORMAT) as tf:
        for d in ("etc", "usr", "usr/local", "usr/local/lib", "usr/lib"):
            _add(tf, d)
        count, directory = 5, None
        while count < entries:
            if count % 20 == 5:
                directory = "usr/lib/d%05d" % count
                _add(tf, directory)
            elif count % 17 == 0:
                _add(tf, "%s/l%05d" % (directory, count), tarfile.SYMTYPE, mode=0o777, linkname="../d00005")
            else:
                size = min(int(rng.lognormvariate(7.5, 1.5)), 1 << 20)
                _add(tf, "%s/f%05d" % (directory, count), tarfile.REGTYPE, rng.randbytes(size), 0o644)
            count += 1
    os.rename(path + ".tmp", path)
    return path


# -- the sides ----------------------------------------------------------------------

def layer_id(name):
    import hashlib  # pylint: disable=import-outside-toplevel
    return hashlib.sha256(name.encode()).hexdigest()


class Side:
    """One store on the bench's filesystem: commands to apply a layer, a reset, its disk use."""

    def __init__(self, name, root):
        self.name = name
        self.dir = os.path.join(root, "l-" + name)
        self.create_seconds = 0.0  # containers-storage's create-layer, timed apart from its applydiff

    def reset(self):
        if self.name == "containers-storage":
            cs_cleanup(self.dir)
        else:
            for line in reversed(open("/proc/self/mountinfo", encoding="utf-8").read().splitlines()):
                point = line.split()[4]
                if point.startswith(self.dir + "/"):
                    subprocess.run(["umount", "-l", point], check=False)
            shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)

    def _cs(self, *args):
        return ["containers-storage", "-g", self.dir + "/g", "-R", self.dir + "/r", "-s", "overlay"] + list(args)

    def apply_cmd(self, name, parent, tarball):
        """(command, setup): the timed apply of one layer and what must happen before it (for
        containers-storage its create-layer, timed into create_seconds; strata's apply creates the layer)."""
        if self.name == "containers-storage":
            def create():
                cmd = self._cs("create-layer", "--id", layer_id(name), *([layer_id(parent)] if parent else []))
                self.create_seconds += measure(cmd)[0]
            return self._cs("applydiff", "-f", tarball, layer_id(name)), create
        return DRIVER + ["--layout", self.name, "apply", self.dir + "/home", name, parent, tarball], None

    def remove(self, name):
        if self.name == "containers-storage":
            sh(*self._cs("delete-layer", layer_id(name)), stdout=subprocess.DEVNULL)
        else:
            sh(*DRIVER, "remove", self.dir + "/home", name)

    def apply(self, name, parent, tarball):
        cmd, setup = self.apply_cmd(name, parent, tarball)
        return measure(cmd, setup)[0]


def usage(path):
    """(inodes, bytes) in use on the filesystem holding path, after sync."""
    sh("sync")
    st = os.statvfs(path)
    return st.f_files - st.f_ffree, (st.f_blocks - st.f_bfree) * st.f_frsize


# -- the measurements -----------------------------------------------------------------

def chain(root, base, reps):
    """(l1): base + 30 children, per side: summed child apply time (median of reps), inodes, bytes."""
    children = small_children()
    sides = [Side(name, root) for name in SIDES]
    times = {s.name: [] for s in sides}
    creates = []
    cost = {}
    for _rep in range(reps):
        for side in sides:  # alternated: a drifting machine shows as spread, not bias
            side.reset()
            before = usage(root)
            side.apply("base", "", base)
            after_base = usage(root)
            total, parent = 0.0, "base"
            side.create_seconds = 0.0
            for i, child in enumerate(children):
                total += side.apply("c%02d" % i, parent, child)
                parent = "c%02d" % i
            times[side.name].append(total)
            if side.name == "containers-storage":
                creates.append(side.create_seconds)
            end = usage(root)
            cost[side.name] = {"children_inodes": end[0] - after_base[0], "children_bytes": end[1] - after_base[1],
                               "chain_inodes": end[0] - before[0], "chain_bytes": end[1] - before[1]}
    for side in sides:
        side.reset()
    out = {name: dict(cost[name], seconds=statistics.median(times[name]), runs=times[name]) for name in times}
    out["containers-storage"]["create_seconds"] = statistics.median(creates)
    return out


def chain_in_process(root, base, reps):
    """(l1'): the 30 children applied in one strata process per layout: median seconds."""
    children = small_children()
    out = {}
    for name in ("overlay", "overlay2"):
        side = Side(name, root)
        runs = []
        for _rep in range(reps):
            side.reset()
            side.apply("base", "", base)
            runs.append(measure(DRIVER + ["apply-chain", side.dir + "/home", "base", "c"] + children)[0])
        side.reset()
        out[name] = {"seconds": statistics.median(runs), "runs": runs}
    return out


def base_sizes(root, reps):
    """(l2): one small child applied onto generated bases of BASE_SIZES entries: median seconds per side."""
    child = small_children()[1]
    out = {}
    for entries in BASE_SIZES:
        base = generated_base(entries)
        sides = [Side(name, root) for name in SIDES]
        for side in sides:
            side.reset()
            side.apply("base", "", base)
        runs = {s.name: [] for s in sides}
        for _rep in range(reps):
            for side in sides:
                runs[side.name].append(side.apply("child", "base", child))
                side.remove("child")
        out[entries] = {name: statistics.median(values) for name, values in runs.items()}
        for side in sides:
            side.reset()
    return out


def image(root, base, package_layer, reps):
    """(l3): a 32-layer image from a local registry: overlay_image per layout vs skopeo into
    containers-storage; median seconds, inodes and bytes of one staging."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    import imagebuild  # pylint: disable=import-outside-toplevel
    from registry import registries  # pylint: disable=import-outside-toplevel
    from image import MODULE_MAIN, collection_farm  # pylint: disable=import-outside-toplevel

    layers = [base, package_layer] + small_children()
    farm = collection_farm()
    work = os.path.join(root, "l-image-work")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=farm, PYTHONPYCACHEPREFIX=os.path.join(CACHE, "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = {}
    try:
        with registries(token=False, directory=os.path.join(work, "registry")) as regs:
            layout_dir = os.path.join(work, "oci")
            imagebuild.write_oci_layout(layout_dir, {"deep": imagebuild.Image(layers)})
            imagebuild.push(regs, "oci:%s:deep" % layout_dir, "deep", "gzip", compression="gzip")
            ref = regs.basic.ref("deep", "gzip")
            runs = {name: [] for name in SIDES}
            cost = {}
            for _rep in range(reps):
                for name in SIDES:
                    target = os.path.join(root, "l-image-" + name)
                    side = Side(name, root)
                    side.dir = target
                    side.reset()
                    if name == "containers-storage":
                        cmd = ["skopeo", "--insecure-policy", "copy", "--quiet", "--src-cert-dir",
                               regs.pki.cert_dir, "--src-creds", regs.creds, ref,
                               "containers-storage:[overlay@%s/g+%s/r]deep:gzip" % (target, target)]
                    else:
                        args = os.path.join(work, "args-%s.json" % name)
                        with open(args, "w", encoding="utf-8") as f:
                            json.dump({"ANSIBLE_MODULE_ARGS": {"src": ref, "home": target + "/home", "layout": name,
                                                               "registry_auth": regs.auth,
                                                               "ca_path": regs.pki.ca_crt}}, f)
                        # the module's JSON kept, so that a failure says why
                        cmd = ["sh", "-c", 'exec "$@" > "$0"', args + ".out", sys.executable, "-c", MODULE_MAIN,
                               args]
                    before = usage(root)
                    try:
                        runs[name].append(measure(cmd, None, env)[0])
                    except RuntimeError:
                        if name != "containers-storage":
                            with open(args + ".out", encoding="utf-8") as f:
                                raise RuntimeError("overlay_image (%s) failed: %s" % (name, f.read()[-2000:]))
                        raise
                    after = usage(root)
                    cost[name] = {"inodes": after[0] - before[0], "bytes": after[1] - before[1]}
                    side.reset()
                    shutil.rmtree(target, ignore_errors=True)
            out = {name: dict(cost[name], seconds=statistics.median(runs[name]), runs=runs[name]) for name in SIDES}
    finally:
        shutil.rmtree(farm, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return out


def _mb(value):
    return "%.1f MB" % (value / 1e6)


def report(results):
    """Markdown tables of the three measurements, the ratios the targets are about beside them."""
    lines = ["load average %.1f at the start, %.1f at the end" % (results["load_start"], results["load_end"]), ""]
    for key, error in sorted(results.get("errors", {}).items()):
        lines += ["%s failed: %s" % (key, error), ""]
    if "chain" in results:
        c = results["chain"]
        peer = c["containers-storage"]
        lines += ["(l1) Debian minbase base + %d small child layers" % CHILDREN, "",
                  "| side | 30 child applies (s, median) | x peer | inodes, 30 children | x peer | bytes, 30 "
                  "children | inodes, whole chain | bytes, whole chain |", "|---|---|---|---|---|---|---|---|"]
        for name in SIDES:
            r = c[name]
            lines.append("| %s | %.2f | %.2f | %d | %.2f | %s | %d | %s |" % (
                name, r["seconds"], r["seconds"] / peer["seconds"], r["children_inodes"],
                r["children_inodes"] / max(1, peer["children_inodes"]), _mb(r["children_bytes"]),
                r["chain_inodes"], _mb(r["chain_bytes"])))
        lines += ["", "containers-storage's 30 create-layer runs, not in its time above: %.2f s (median); with them "
                  "overlay2 is %.2fx" % (peer["create_seconds"], c["overlay2"]["seconds"]
                                         / (peer["seconds"] + peer["create_seconds"])), ""]
    if "in_process" in results:
        lines += ["(l1') the 30 children applied by strata in one process (s, median): %s" % ", ".join(
            "%s %.2f" % (name, r["seconds"]) for name, r in sorted(results["in_process"].items())), ""]
    if "sizes" in results:
        lines += ["(l2) one small child applied onto bases of different sizes (s, median)", "",
                  "| base entries | " + " | ".join(SIDES) + " | overlay2 x peer |",
                  "|---|---|---|---|---|"]
        for entries, row in sorted(results["sizes"].items(), key=lambda kv: int(kv[0])):
            lines.append("| %s | %s | %.2f |" % (entries, " | ".join("%.3f" % row[name] for name in SIDES),
                                                 row["overlay2"] / row["containers-storage"]))
        lines.append("")
    if "image" in results:
        i = results["image"]
        peer = i["containers-storage"]
        lines += ["(l3) a 32-layer image pulled from a local registry and staged", "",
                  "| side | seconds (median) | x peer | inodes | bytes |", "|---|---|---|---|---|"]
        for name in SIDES:
            r = i[name]
            row = (name, r["seconds"], r["seconds"] / peer["seconds"], r["inodes"], _mb(r["bytes"]))
            lines.append("| %s | %.2f | %.2f | %d | %s |" % row)
        lines.append("")
    return "\n".join(lines)


def run(root, base, package_layer, reps, parts="1423"):
    """The parts asked for; one that fails is reported with its error and the others still run."""
    results = {"load_start": os.getloadavg()[0]}
    for part, key, measurement in (("1", "chain", lambda: chain(root, base, reps)),
                                   ("2", "sizes", lambda: base_sizes(root, reps)),
                                   ("4", "in_process", lambda: chain_in_process(root, base, reps)),
                                   ("3", "image", lambda: image(root, base, package_layer, reps))):
        if part in parts:
            try:
                results[key] = measurement()
            except Exception as e:  # pylint: disable=broad-except
                results.setdefault("errors", {})[key] = str(e)
            print("(l) %s done" % key, json.dumps(results.get(key, results.get("errors"))), flush=True)
    results["load_end"] = os.getloadavg()[0]
    return results
