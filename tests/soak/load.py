#!/usr/bin/env python3
"""Load generators for tests/soak/run.sh: one protocol per process, at a fixed rate, until a stop
file exists. Every request's outcome goes to --log, one line each:

    START_EPOCH LATENCY_SECONDS ok|fail DETAIL

so the soak can count failures by time (inside or outside a fault window) and find any request that
took longer than its timeout.

  load.py http1 --proxy H:P --url URL [--keepalive] ...   GETs through the outbound (forward) proxy
  load.py h2c   --proxy H:P --authority A ...             curl --http2-prior-knowledge, Host A
  load.py grpc  --proxy H:P --authority A ...             Greeter.SayHello (grpcio), :authority A
  load.py psql  --host H --port P ...                     psql, a new connection per query

Common: --rate R (requests per second) --timeout T (seconds) --stop-file F --log F
"""
import argparse
import http.client
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_loop(args, one):
    """Calls one() at args.rate per second until the stop file exists; logs each outcome."""
    period = 1.0 / args.rate
    next_at = time.time()
    with open(args.log, "a", buffering=1) as log:
        while not os.path.exists(args.stop_file):
            now = time.time()
            if now < next_at:
                time.sleep(next_at - now)
            next_at = max(next_at + period, time.time() - period)
            start = time.time()
            try:
                ok, detail = one()
            except Exception as e:  # noqa: BLE001 - every failure is a logged outcome
                ok, detail = False, repr(e)
            latency = time.time() - start
            detail = " ".join(str(detail).split())[:200] or "-"
            log.write(f"{start:.3f} {latency:.4f} {'ok' if ok else 'fail'} {detail}\n")


def http1(args):
    host, port = args.proxy.rsplit(":", 1)
    state = {"conn": None}

    def one():
        conn = state["conn"]
        if conn is None:
            conn = http.client.HTTPConnection(host, int(port), timeout=args.timeout)
            state["conn"] = conn
        try:
            conn.request("GET", args.url)
            resp = conn.getresponse()
            body = resp.read()
        except Exception:
            conn.close()
            state["conn"] = None
            raise
        if not args.keepalive or resp.getheader("connection", "").lower() == "close":
            conn.close()
            state["conn"] = None
        if resp.status != 200:
            return False, f"status={resp.status} {body[:80]!r}"
        text = body.decode("utf-8", "replace")
        cluster = "?"
        for c in args.clusters.split(","):
            if c and c in text:
                cluster = c
        return True, f"200 cluster={cluster}"

    run_loop(args, one)


def h2c(args):
    host, port = args.proxy.rsplit(":", 1)

    def one():
        p = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "-m", str(args.timeout),
             "--http2-prior-knowledge", "-H", f"Host: {args.authority}", f"http://{host}:{port}{args.path}"],
            capture_output=True, text=True, env={k: v for k, v in os.environ.items() if "proxy" not in k.lower()})
        out = p.stdout.strip()
        if p.returncode == 0 and out == "200 2":
            return True, "200 h2"
        return False, f"curl exit={p.returncode} {out} {p.stderr.strip()[:100]}"

    run_loop(args, one)


def grpc_load(args):
    import grpc
    sys.path.insert(0, os.path.join(HERE, "..", "e2e", "data-plane"))
    import greeter  # tests/e2e/data-plane/greeter.py: stubs generated from greeter.proto
    pb, pb_grpc = greeter.load_stubs()
    channel = grpc.insecure_channel(args.proxy, options=[
        ("grpc.default_authority", args.authority),
        ("grpc.enable_http_proxy", 0),
    ])
    stub = pb_grpc.GreeterStub(channel)
    n = [0]

    def one():
        n[0] += 1
        try:
            reply = stub.SayHello(pb.HelloRequest(name=f"soak-{n[0]}"), timeout=args.timeout)
        except grpc.RpcError as e:
            return False, f"{e.code().name} {e.details()}"
        if reply.message != f"hello soak-{n[0]}":
            return False, f"unexpected reply {reply.message!r}"
        return True, "OK"

    run_loop(args, one)


def psql(args):
    env = dict(os.environ, PGPASSWORD=args.password, PGCONNECT_TIMEOUT=str(int(args.timeout)))
    n = [0]

    def one():
        n[0] += 1
        try:
            p = subprocess.run(
                ["psql", "-h", args.host, "-p", str(args.port), "-U", args.user, "-d", args.database, "-Atc",
                 f"select 'soak-' || {n[0]}"],
                capture_output=True, text=True, env=env, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return False, f"timeout after {args.timeout}s"
        if p.returncode == 0 and p.stdout.strip() == f"soak-{n[0]}":
            return True, "row"
        return False, f"psql exit={p.returncode} {p.stdout.strip()[:60]} {p.stderr.strip()[:120]}"

    run_loop(args, one)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(s):
        s.add_argument("--rate", type=float, required=True)
        s.add_argument("--timeout", type=float, default=5.0)
        s.add_argument("--stop-file", required=True)
        s.add_argument("--log", required=True)

    s = sub.add_parser("http1"); common(s)
    s.add_argument("--proxy", required=True)
    s.add_argument("--url", required=True)
    s.add_argument("--keepalive", action="store_true")
    s.add_argument("--clusters", default="", help="names to look for in the body (which cluster answered)")
    s.set_defaults(fn=http1)
    s = sub.add_parser("h2c"); common(s)
    s.add_argument("--proxy", required=True)
    s.add_argument("--authority", required=True)
    s.add_argument("--path", default="/")
    s.set_defaults(fn=h2c)
    s = sub.add_parser("grpc"); common(s)
    s.add_argument("--proxy", required=True)
    s.add_argument("--authority", required=True)
    s.set_defaults(fn=grpc_load)
    s = sub.add_parser("psql"); common(s)
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--user", default="starling")
    s.add_argument("--password", default="starling-test")
    s.add_argument("--database", default="starling_test")
    s.set_defaults(fn=psql)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
