#!/usr/bin/env python3
"""Traffic and raw bytes for tests/e2e/data-plane.sh (standard library only).

  traffic.py split --proxy H:P --url URL -n N [--reuse]
                                                    N GETs through the forward proxy, each on a new
                                                    connection (--reuse: all on one keep-alive
                                                    connection); prints "<message> <count>" lines
                                                    and "errors <count>"
  traffic.py load --proxy H:P --url URL --rate R --stop-file F
                                                    GETs at R/s, each on a new connection, until F
                                                    exists; prints "requests N failed M" (+ reasons)
  traffic.py raw --host H --port P --case conflict|bigheader|unknown|plaintext
                                                    sends hand-made bytes and prints what came back:
                                                    the status line and a starling-error header, or
                                                    "closed" when the peer closed without answering
"""
import argparse
import collections
import http.client
import json
import os
import socket
import sys
import time


def split_args(proxy):
    host, port = proxy.rsplit(":", 1)
    return host, int(port)


def split(args):
    host, port = split_args(args.proxy)
    counts = collections.Counter()
    errors = 0
    conn = None
    for _ in range(args.n):
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", args.url)
            resp = conn.getresponse()
            body = resp.read()
            if not args.reuse:
                conn.close()
                conn = None
            if resp.status != 200:
                errors += 1
                continue
            counts[json.loads(body).get("message", "?")] += 1
        except Exception as e:  # noqa: BLE001 - count and reconnect
            errors += 1
            print(f"error: {e!r}", file=sys.stderr)
            if conn is not None:
                conn.close()
            conn = None
    for message, count in sorted(counts.items()):
        print(f"{message} {count}")
    print(f"errors {errors}")


def load(args):
    host, port = split_args(args.proxy)
    interval = 1.0 / args.rate
    total = failed = 0
    reasons = collections.Counter()
    next_at = time.monotonic()
    while not os.path.exists(args.stop_file):
        total += 1
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=5)
            conn.request("GET", args.url)
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status != 200:
                failed += 1
                reasons[f"{resp.status} {resp.getheader('starling-error', '')}"] += 1
        except Exception as e:  # noqa: BLE001 - every failure counts
            failed += 1
            reasons[type(e).__name__] += 1
        elapsed = time.monotonic() - started
        if elapsed > args.slow:
            reasons[f"slower than {args.slow}s"] += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    print(f"requests {total} failed {failed}")
    for reason, count in reasons.most_common():
        print(f"  {count} x {reason}")


def raw(args):
    authority = args.authority
    if args.case == "conflict":
        data = (f"POST http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 5\r\n"
                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").encode()
    elif args.case == "bigheader":
        data = (f"GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n"
                f"X-Big: {'a' * (70 * 1024)}\r\n\r\n").encode()
    elif args.case == "unknown":
        data = b"GET http://no-such-service.test:9898/ HTTP/1.1\r\nHost: no-such-service.test:9898\r\n\r\n"
    else:  # plaintext HTTP/1 to a TLS port
        data = f"GET / HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    s = socket.create_connection((args.host, args.port), timeout=args.timeout)
    try:
        s.sendall(data)
    except OSError as e:
        print(f"closed (while sending: {e.__class__.__name__})")
        return
    got = b""
    deadline = time.monotonic() + args.timeout
    try:
        while b"\r\n\r\n" not in got and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        print("timeout (the connection stayed open without an answer)")
        return
    except OSError as e:
        print(f"closed ({e.__class__.__name__})" if not got else f"reset after {got[:40]!r}")
        return
    if not got:
        print("closed")
        return
    head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    print(head[0])
    for line in head[1:]:
        if line.lower().startswith("starling-error:"):
            print(line)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split")
    s.add_argument("--proxy", required=True)
    s.add_argument("--url", required=True)
    s.add_argument("-n", type=int, default=1000)
    s.add_argument("--reuse", action="store_true")
    l = sub.add_parser("load")
    l.add_argument("--proxy", required=True)
    l.add_argument("--url", required=True)
    l.add_argument("--rate", type=float, default=10)
    l.add_argument("--slow", type=float, default=2.0)
    l.add_argument("--stop-file", required=True)
    r = sub.add_parser("raw")
    r.add_argument("--host", required=True)
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--case", required=True, choices=["conflict", "bigheader", "unknown", "plaintext"])
    r.add_argument("--authority", default="podinfo.test:9898")
    r.add_argument("--timeout", type=float, default=5)
    args = p.parse_args()
    {"split": split, "load": load, "raw": raw}[args.cmd](args)


if __name__ == "__main__":
    main()
