"""The fleet playbooks over real SSH, N hosts each with its own home, against `stat` playbooks.

Run as root, on demand (`make bench-fleet`, not part of `make test`):

    .venv/bin/python bench/fleet.py [--hosts 10,50,100] [--reps 3] [--forks 10]
                                    [--only ssh,local,pipelining,free] [--books stage,mount,unmount]

What it sets up, all inside one temp directory that is removed at the end, also when a
run fails or is interrupted:
- a key pair for the bench, host keys, and private sshd processes (Debian's
  openssh-server) on 127.0.0.1, one port per inventory host (sshd listens on at most 16
  ports, so one sshd per 16 hosts); the system's sshd and its configuration are not
  touched;
- an inventory of N hosts, `h000` to `hNNN`, each reached on its own port with
  ControlPersist on, each with its own layer home and role state directory;
- a small base tarball (sent from the controller by overlay_apply_diff) and a layer
  `app` on it: stage.yml declares both, mount.yml mounts `app` for the holder `web`,
  unmount.yml releases it.

What it times, each a whole `ansible-playbook` process under GNU time, the same forks
for both sides, alternated pair by pair, medians and pairwise ratios:
- stage.yml (the layers already present: the steady state of a fleet run again),
  mount.yml, unmount.yml;
- against `stat` playbooks of the same shape (bench/fleet/stat_*.yml): the same play
  header and loops, one `ansible.builtin.stat` task for each task that runs a module on
  the host in the real playbook, so the ratio is what the collection's modules, filters,
  includes and controller-side tasks add to the same number of host round trips;
- variants: `connection: local` (the same N hosts, no SSH), ANSIBLE_PIPELINING=1 and
  `strategy: free` (ANSIBLE_STRATEGY=free), each against the plain SSH run.

The load average (uptime) is recorded beside each figure: the machine may be shared.
"""

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PLAYBOOKS = os.path.join(REPO, "playbooks")
STAT_PLAYBOOKS = os.path.join(HERE, "fleet")
DRIVER_CLI = os.path.join(HERE, "driver_cli.py")
BINDIR = os.path.dirname(sys.executable)
PORTS_PER_SSHD = 16  # sshd's MAX_LISTEN_SOCKS
FIRST_PORT = 22200  # below the ephemeral range (32768 up), where a client socket can hold a port sshd needs


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def base_tarball(path):
    """A small base layer: a few directories and files, as a real image's first layer starts."""
    with tarfile.open(path, "w") as tar:
        for name in ("etc", "usr", "usr/bin", "var"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for i in range(20):
            data = ("file %d\n" % i).encode() * 50
            info = tarfile.TarInfo("usr/bin/tool-%d" % i)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))


class Fleet:
    """The temp directory, the sshd processes and the inventory; `close` undoes all of it."""

    def __init__(self, count, keep_root=None):
        self.count = count
        self.root = tempfile.mkdtemp(prefix="strata-fleet-", dir=keep_root or "/var/tmp")
        self.sshds = []
        self.made_run_sshd = False

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    # -- ssh ---------------------------------------------------------------------
    def start_sshd(self):
        os.makedirs(self.path("ssh"))
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.path("ssh", "host_key"))
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.path("ssh", "client_key"))
        shutil.copy(self.path("ssh", "client_key.pub"), self.path("ssh", "authorized_keys"))
        if not os.path.isdir("/run/sshd"):  # sshd's privilege separation directory
            os.mkdir("/run/sshd", 0o755)
            self.made_run_sshd = True
        for first in range(0, self.count, PORTS_PER_SSHD):
            ports = range(FIRST_PORT + first, FIRST_PORT + min(first + PORTS_PER_SSHD, self.count))
            config = self.path("ssh", "sshd_config.%d" % first)
            with open(config, "w") as f:
                f.write("".join("Port %d\n" % p for p in ports))
                f.write("ListenAddress 127.0.0.1\n"
                        "HostKey %s\n"
                        "AuthorizedKeysFile %s\n"
                        "PidFile %s.pid\n"
                        "PermitRootLogin prohibit-password\n"
                        "PasswordAuthentication no\n"
                        "KbdInteractiveAuthentication no\n"
                        "UsePAM no\n"
                        "StrictModes no\n"
                        "MaxStartups 200\n"
                        "MaxSessions 200\n"
                        "Subsystem sftp internal-sftp\n"
                        % (self.path("ssh", "host_key"), self.path("ssh", "authorized_keys"), config))
            # -D: stays in the foreground, so this process is its parent and stops it by pid
            proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", config],
                                    stdout=subprocess.DEVNULL, stderr=open(config + ".log", "w"))
            self.sshds.append(proc)
        for port in range(FIRST_PORT, FIRST_PORT + self.count):
            self.wait_port(port)

    def wait_port(self, port):
        for _attempt in range(100):
            probe = subprocess.run(["ssh", "-F", "/dev/null", "-i", self.path("ssh", "client_key"),
                                    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                    "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-p", str(port),
                                    "root@127.0.0.1", "true"], stderr=subprocess.DEVNULL, check=False)
            if probe.returncode == 0:
                return
            if any(p.poll() is not None for p in self.sshds):
                raise RuntimeError("sshd exited: see %s" % self.path("ssh"))
            time.sleep(0.1)
        raise RuntimeError("sshd does not answer on port %d" % port)

    # -- inventory ---------------------------------------------------------------------
    def inventory(self, connection):
        """The N hosts: over ssh to their ports, or connection: local; each its own home."""
        hosts = {}
        for i in range(self.count):
            name = "h%03d" % i
            host_dir = self.path("hosts", name)
            os.makedirs(host_dir, exist_ok=True)
            entry = {"overlay_home": os.path.join(host_dir, "home"),
                     "overlay_layers_state_dir": os.path.join(host_dir, "state"),
                     "ansible_python_interpreter": "/usr/bin/python3"}
            if connection == "ssh":
                entry.update(ansible_host="127.0.0.1", ansible_port=FIRST_PORT + i, ansible_user="root",
                             ansible_ssh_private_key_file=self.path("ssh", "client_key"))
            else:
                entry.update(ansible_connection="local")
            hosts[name] = entry
        path = self.path("inventory-%s.json" % connection)
        with open(path, "w") as f:
            json.dump({"all": {"hosts": hosts}}, f)
        return path

    def layers_vars(self):
        tar = self.path("base.tar")
        if not os.path.exists(tar):
            base_tarball(tar)
        path = self.path("vars.json")
        with open(path, "w") as f:
            # with diff_id, a run again on a host that has the layer sends nothing
            diff_id = "sha256:" + hashlib.sha256(open(tar, "rb").read()).hexdigest()
            json.dump({"overlay_layers": [{"id": "base", "src": tar, "diff_id": diff_id},
                                          {"id": "app", "parent": "base"}],
                       "overlay_mounts": []}, f)
        return path

    def mounts_vars(self):
        """What mount.yml and unmount.yml act on; stage.yml declares no mount of its own."""
        path = self.path("mounts.json")
        with open(path, "w") as f:
            json.dump({"overlay_mounts": [{"id": "app", "holder": "web"}]}, f)
        return path

    def control_dir(self):
        """Where ssh keeps the ControlPersist sockets: short, a socket path must stay under 108 bytes."""
        return os.path.join("/tmp", "sf-%s" % os.path.basename(self.root)[-8:])

    def env(self, **extra):
        control = self.control_dir()
        os.makedirs(control, exist_ok=True)
        env = dict(os.environ)
        env.update({
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_ARGS": "-F /dev/null -o ControlMaster=auto -o ControlPersist=120s "
                                "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR",
            # the socket path must stay under 108 bytes
            "ANSIBLE_SSH_CONTROL_PATH": control + "/%%C",
            "ANSIBLE_PIPELINING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCAL_TEMP": self.path("ansible-local"),
            "ANSIBLE_REMOTE_TEMP": self.path("ansible-remote"),
        })
        env.update(extra)
        return env

    def close(self):
        """The ssh connections closed, the sshds stopped, every mount under the root unmounted, the root removed.

        A module still running on a "host" when a run is interrupted can write under the
        root after a first removal (its temp dir, a mount): the removal is repeated until
        the root stays gone.
        """
        # the ControlPersist masters outlive the playbooks: ask each to exit
        control = self.control_dir()
        if os.path.isdir(control):
            for sock in os.listdir(control):
                subprocess.run(["ssh", "-o", "ControlPath=" + os.path.join(control, sock), "-O", "exit", "x"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            shutil.rmtree(control, ignore_errors=True)
        for proc in self.sshds:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
        if self.made_run_sshd:
            shutil.rmtree("/run/sshd", ignore_errors=True)
        for _attempt in range(60):
            with open("/proc/self/mountinfo") as f:
                points = [line.split()[4] for line in f.read().splitlines()]
            for point in reversed(points):
                if point.startswith(self.root + "/"):
                    subprocess.run(["umount", "-l", point], check=False)
            shutil.rmtree(self.root, ignore_errors=True)
            time.sleep(0.5)
            if not os.path.lexists(self.root):
                return
        print("could not remove %s: remove it by hand" % self.root, file=sys.stderr)


def measure(cmd, env):
    """One whole ansible-playbook under GNU time: (wall s, cpu s of it and its children).

    It runs in a process group of its own: an interrupted bench stops it and its forks.
    """
    with tempfile.NamedTemporaryFile("r", prefix="strata-fleet-time-") as out:
        proc = subprocess.Popen(["/usr/bin/time", "-f", "%e %U %S", "-o", out.name] + cmd,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            output = proc.communicate()[0]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if proc.returncode != 0:
            raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), output.decode(errors="replace")[-4000:]))
        wall, user, system = out.read().split()[-3:]
    return float(wall), float(user) + float(system)


def playbook(fleet, inventory, book, forks):
    """stage.yml (and its floor) with the layers' declaration, mount.yml and unmount.yml with the mounts."""
    declared = fleet.mounts_vars() if os.path.basename(book).replace("stat_", "") in ("mount.yml", "unmount.yml") \
        else fleet.layers_vars()
    return [os.path.join(BINDIR, "ansible-playbook"), "-i", inventory, "-f", str(forks), "-e", "@" + declared, book]


def compare(name, ours, theirs, reps):
    """ours/theirs: (cmd, env); alternated, medians and the median of pairwise ratios."""
    rows = {"ours": [], "theirs": []}
    loads = [load()]
    for _rep in range(reps):
        rows["ours"].append(measure(*ours))
        rows["theirs"].append(measure(*theirs))
        loads.append(load())
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in rows.items()}
    ratios = [o[0] / t[0] for o, t in zip(rows["ours"], rows["theirs"])]
    row = {"name": name, "ours": med["ours"], "theirs": med["theirs"], "ratio": statistics.median(ratios),
           "ratio_min": min(ratios), "ratio_max": max(ratios), "load": "%s .. %s" % (loads[0], loads[-1]),
           "runs": rows}
    print(table_line(row), flush=True)
    return row


def table_line(r):
    return "| %s | %.1f / %.1f | %.1f / %.1f | %.2f (%.2f-%.2f) | %s |" % (
        r["name"], r["ours"][0], r["ours"][1], r["theirs"][0], r["theirs"][1], r["ratio"], r["ratio_min"],
        r["ratio_max"], r["load"])


BOOKS = ("stage", "mount", "unmount")


def run_count(count, args):
    fleet = Fleet(count)
    rows = []
    try:
        variants = [v for v in args.only.split(",") if v]
        if any(v in ("ssh", "pipelining", "free") for v in variants):
            fleet.start_sshd()
        ssh_inv = fleet.inventory("ssh")
        local_inv = fleet.inventory("local")
        inv0 = ssh_inv if fleet.sshds else local_inv
        env = fleet.env()
        books = [b for b in args.books.split(",") if b]
        if "stage" in books:
            # the layers staged once: every timed stage.yml is the steady state of a fleet run again
            measure(playbook(fleet, inv0, os.path.join(PLAYBOOKS, "stage.yml"), args.forks), env)
        else:
            # mount.yml and unmount.yml need only the layers: made by the driver, much faster
            fleet.layers_vars()
            for i in range(count):
                home = fleet.path("hosts", "h%03d" % i, "home")
                sh(sys.executable, DRIVER_CLI, "apply", home, "base", "", fleet.path("base.tar"),
                   stdout=subprocess.DEVNULL)
                sh(sys.executable, DRIVER_CLI, "create", home, "app", "base", stdout=subprocess.DEVNULL)

        def pair(inv, book, env_ours, env_theirs=None):
            ours = playbook(fleet, inv, os.path.join(PLAYBOOKS, book + ".yml"), args.forks)
            theirs = playbook(fleet, inv, os.path.join(STAT_PLAYBOOKS, "stat_" + book + ".yml"), args.forks)
            return (ours, env_ours), (theirs, env_theirs or env_ours)

        for variant in variants:
            for book in books:
                if variant == "ssh":
                    ours, theirs = pair(ssh_inv, book, env)
                    name = "%d hosts, ssh: %s.yml vs stat" % (count, book)
                elif variant == "local":
                    ours, theirs = pair(local_inv, book, env)
                    name = "%d hosts, connection local: %s.yml vs stat" % (count, book)
                elif variant == "pipelining":
                    ours, _theirs = pair(ssh_inv, book, fleet.env(ANSIBLE_PIPELINING="True"))
                    theirs = (ours[0], env)
                    name = "%d hosts, ssh: %s.yml with ANSIBLE_PIPELINING=1 vs without" % (count, book)
                elif variant == "free":
                    ours, _theirs = pair(ssh_inv, book, fleet.env(ANSIBLE_STRATEGY="free"))
                    theirs = (ours[0], env)
                    name = "%d hosts, ssh: %s.yml with strategy free vs linear" % (count, book)
                else:
                    raise SystemExit("unknown variant %r" % variant)
                if book == "unmount":
                    # unmount.yml releases what mount.yml held: mount again before each timed unmount
                    rows.append(compare_unmount(name, ours, theirs, args.reps, fleet, inv0, args.forks, env))
                elif book == "mount":
                    rows.append(compare_mount(name, ours, theirs, args.reps, fleet, inv0, args.forks, env))
                else:
                    rows.append(compare(name, ours, theirs, args.reps))
    finally:
        fleet.close()
    return rows


def compare_mount(name, ours, theirs, reps, fleet, inv, forks, env):
    """Each timed mount.yml mounts for real: the layers are released again between runs (not timed)."""
    reset = playbook(fleet, inv, os.path.join(PLAYBOOKS, "unmount.yml"), forks)
    return _compare_around(name, ours, theirs, reps, reset, env)


def compare_unmount(name, ours, theirs, reps, fleet, inv, forks, env):
    """Each timed unmount.yml releases for real: the layers are mounted again between runs (not timed)."""
    reset = playbook(fleet, inv, os.path.join(PLAYBOOKS, "mount.yml"), forks)
    return _compare_around(name, ours, theirs, reps, reset, env)


def _compare_around(name, ours, theirs, reps, reset, env):
    rows = {"ours": [], "theirs": []}
    loads = [load()]
    for _rep in range(reps):
        rows["ours"].append(measure(*ours))
        measure(reset, env)
        rows["theirs"].append(measure(*theirs))
        loads.append(load())
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in rows.items()}
    ratios = [o[0] / t[0] for o, t in zip(rows["ours"], rows["theirs"])]
    row = {"name": name, "ours": med["ours"], "theirs": med["theirs"], "ratio": statistics.median(ratios),
           "ratio_min": min(ratios), "ratio_max": max(ratios), "load": "%s .. %s" % (loads[0], loads[-1]),
           "runs": rows}
    print(table_line(row), flush=True)
    return row


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="10,50,100")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--only", default="ssh,local,pipelining,free")
    parser.add_argument("--books", default=",".join(BOOKS), help="which playbooks, e.g. 'mount,unmount'")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the modules mount overlays")
    if not os.path.exists("/usr/sbin/sshd") and set(args.only.split(",")) - {"local"}:
        raise SystemExit("no /usr/sbin/sshd: apt-get install --no-install-recommends openssh-server "
                         "(the bench starts its own sshd processes; it does not use the system's)")
    # a SIGTERM unwinds through the finally blocks like ^C does
    signal.signal(signal.SIGTERM, _interrupt)
    collections = os.environ.get("STRATA_COLLECTIONS", os.path.join(REPO, ".collections"))
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = collections
    header = ["| measurement | ours (wall s / cpu s) | theirs (wall s / cpu s) | ratio (median, min-max) "
              "| load before .. after |", "|---|---|---|---|---|"]
    print("\n".join(header), flush=True)
    results = []
    for count in (int(c) for c in args.hosts.split(",")):
        results += run_count(count, args)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M")
    out = os.path.join(HERE, "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "fleet-%s.md" % stamp), "w") as f:
        f.write("forks %d, %d reps, %s\n\n" % (args.forks, args.reps, stamp))
        f.write("\n".join(header + [table_line(r) for r in results]) + "\n")
    with open(os.path.join(out, "fleet-%s.json" % stamp), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
