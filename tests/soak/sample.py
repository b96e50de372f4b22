#!/usr/bin/env python3
"""Samples every Starling process of one soak run every --interval seconds, until --stop-file
exists, and appends one CSV row per process:

    epoch,elapsed_s,pid,kind,name,rss_kb,fds,conns,gateway_conns,close_wait

A process belongs to the run when its environment holds STARLING_HOME=--home (every process the
soak starts inherits it; processes of other test runs on the machine do not). kind is `controller`
(`starling controller`, which also hosts the cluster's gateway: gateway_conns counts its
established connections on the gateway port), `proxy` (`starling run`: the sidecar proxy and the
workload's registration) or `app` (`starling demo-app`, named after its `starling run`). conns counts the process's established
TCP connections (IPv4 and IPv6, either direction); close_wait counts its TCP sockets in CLOSE_WAIT
(the peer closed the connection, the process has not closed its socket yet).
"""
import argparse
import os
import time


def tcp_inodes():
    """inode -> (state, local port), for every TCP socket of this network namespace."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    out[parts[9]] = (parts[3], int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return out


def describe(pid, home):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
        if f"STARLING_HOME={home}".encode() not in env:
            return None
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None
    if len(argv) < 2 or os.path.basename(argv[0]) != "starling":
        return None
    config = ""
    for e in env:
        if e.startswith(b"STARLING_CONFIG="):
            config = os.path.basename(e.split(b"=", 1)[1].decode())

    def flag(name, default=""):
        return argv[argv.index(name) + 1] if name in argv[:-1] else default

    cmd = argv[1]
    if cmd == "controller":
        return "controller", flag("--cluster-name", "?")
    if cmd == "run":
        who = flag("--service") or flag("--service-account", "default")
        return "proxy", f"{config or '?'}/{who}"
    if cmd == "demo-app":
        # named after the workload that runs it: the --service of its parent `starling run`
        parent = describe_parent(pid, home)
        return "app", parent or f"{config or '?'}/{argv[2] if len(argv) > 2 else '?'}"
    return None


def describe_parent(pid, home):
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = f.read().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return None
    d = describe(ppid, home)
    return d[1] if d and d[0] == "proxy" else None


def sample(home, gateway_port):
    sockets = tcp_inodes()
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        d = describe(entry, home)
        if d is None:
            continue
        kind, name = d
        try:
            rss = 0
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
            fds = 0
            n_conns = 0
            n_gw = 0
            n_close_wait = 0
            for fd in os.listdir(f"/proc/{entry}/fd"):
                fds += 1
                try:
                    link = os.readlink(f"/proc/{entry}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    state, port = sockets.get(link[8:-1], (None, 0))
                    if state == "01":
                        n_conns += 1
                        if kind == "controller" and port == gateway_port:
                            n_gw += 1
                    elif state == "08":
                        n_close_wait += 1
        except OSError:
            continue  # the process ended while we looked
        rows.append((int(entry), kind, name, rss, fds, n_conns, n_gw, n_close_wait))
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--home", required=True, help="the run's STARLING_HOME")
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--start", type=float, default=None, help="epoch of the run's start (default: now)")
    p.add_argument("--gateway-port", type=int, default=4143)
    p.add_argument("--stop-file", required=True)
    args = p.parse_args()
    start = args.start or time.time()
    with open(args.out, "a", buffering=1) as out:
        if out.tell() == 0:
            out.write("epoch,elapsed_s,pid,kind,name,rss_kb,fds,conns,gateway_conns,close_wait\n")
        next_at = time.time()
        while not os.path.exists(args.stop_file):
            now = time.time()
            for pid, kind, name, rss, fds, n_conns, n_gw, n_close_wait in sorted(sample(args.home, args.gateway_port),
                                                                   key=lambda r: (r[1], r[2])):
                out.write(f"{now:.1f},{now - start:.1f},{pid},{kind},{name},{rss},{fds},{n_conns},{n_gw},{n_close_wait}\n")
            next_at += args.interval
            while time.time() < next_at and not os.path.exists(args.stop_file):
                time.sleep(min(0.5, max(0.0, next_at - time.time())))


if __name__ == "__main__":
    main()
