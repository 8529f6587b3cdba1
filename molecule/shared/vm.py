"""Start, wait for and stop the QEMU test VMs of the molecule scenarios.

    vm.py start NAME --image DIR --state DIR --port PORT [--disk NAME:SIZE_MB ...]
    vm.py stop NAME --state DIR

Each VM boots the cached image's kernel with a copy-on-write overlay of its root
image (so every instance starts fresh), user-mode networking restricted to the
host with SSH forwarded to 127.0.0.1:PORT, and optional extra raw disks
(/dev/vdb, /dev/vdc, ...). KVM is used only when a quick probe boots a kernel
with it; otherwise TCG.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

QEMU = "qemu-system-x86_64"


def probe_kvm(image):
    """Boot the kernel with no root under KVM; a panic within 20 s proves KVM works here."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cmd = [QEMU, "-accel", "kvm", "-m", "512", "-nographic", "-no-reboot", "-kernel",
           os.path.join(image, "vmlinuz"), "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent"]
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20,
                             stdin=subprocess.DEVNULL, check=False).stdout
    except subprocess.TimeoutExpired:
        return False
    return b"Kernel panic" in out or b"VFS" in out


def wait_ssh(port, timeout, console):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.settimeout(10)
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(2)
    tail = open(console, errors="replace").read()[-2000:] if os.path.exists(console) else ""
    raise SystemExit("VM on port %d did not offer SSH within %ds; console tail:\n%s" % (port, timeout, tail))


def start(args):
    os.makedirs(args.state, exist_ok=True)
    base = os.path.join(args.state, args.name)
    overlay = base + ".qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                    os.path.join(args.image, "root.img"), overlay], check=True)
    accel_file = os.path.join(args.image, "accel")  # probed once per image
    if not os.path.exists(accel_file):
        with open(accel_file, "w") as f:
            f.write("kvm" if probe_kvm(args.image) else "tcg,thread=multi")
    accel = open(accel_file).read().strip()
    cmd = [QEMU, "-accel", accel, "-m", "1024", "-smp", "2", "-display", "none", "-daemonize",
           "-pidfile", base + ".pid", "-serial", "file:" + base + ".console",
           "-kernel", os.path.join(args.image, "vmlinuz"), "-initrd", os.path.join(args.image, "initrd.img"),
           "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet",
           "-drive", "file=%s,if=virtio,format=qcow2" % overlay,
           "-netdev", "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22" % args.port,
           "-device", "virtio-net-pci,netdev=n0"]
    for spec in args.disk or []:
        name, size = spec.split(":")
        disk = "%s-%s.img" % (base, name)
        with open(disk, "wb") as f:
            f.truncate(int(size) << 20)
        cmd += ["-drive", "file=%s,if=virtio,format=raw" % disk]
    subprocess.run(cmd, check=True)
    wait_ssh(args.port, args.timeout, base + ".console")
    json.dump({"instance": args.name, "address": "127.0.0.1", "port": args.port, "user": "root",
               "identity_file": os.path.join(args.image, "id_ed25519"), "accel": accel}, sys.stdout)


def stop(args):
    base = os.path.join(args.state, args.name)
    try:
        with open(base + ".pid") as f:
            pid = int(f.read().strip())
        os.kill(pid, signal.SIGTERM)
        for _attempt in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    for suffix in (".pid", ".qcow2", ".console"):
        try:
            os.unlink(base + suffix)
        except FileNotFoundError:
            pass
    for name in os.listdir(args.state) if os.path.isdir(args.state) else []:
        if name.startswith(args.name + "-") and name.endswith(".img"):
            os.unlink(os.path.join(args.state, name))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="op", required=True)
    p = sub.add_parser("start")
    p.add_argument("name")
    p.add_argument("--image", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--disk", action="append")
    p.add_argument("--timeout", type=int, default=420)
    p = sub.add_parser("stop")
    p.add_argument("name")
    p.add_argument("--state", required=True)
    args = parser.parse_args()
    if args.op == "start":
        start(args)
    else:
        stop(args)


if __name__ == "__main__":
    main()
