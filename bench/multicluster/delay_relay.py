#!/usr/bin/env python3
"""A userspace TCP relay that adds a fixed delay, for bench/multicluster.sh (no netem needed).

  delay_relay.py --rtt-ms 20 [--stats FILE] LISTEN_HOST:PORT=TARGET_HOST:PORT ...

Each accepted connection is connected to its target at once and bytes are forwarded both ways.
Every chunk read on one side is written to the other side RTT/2 after it arrived, so a request
and its answer together gain RTT (20 ms RTT = 10 ms each way). Chunks keep their order and are
delayed independently (each is due at its own arrival + RTT/2; a burst is not delayed once per
chunk). With --rtt-ms 0 chunks are written as soon as they are read.

The relay delays bytes, not the TCP handshake: the caller's connect completes in the kernel
against the relay's own listening socket. A caller that opens a connection and sends one request
therefore gains one RTT, where a real network would add one more for the handshake.

Timers: asyncio's default epoll selector rounds its timeout up to whole milliseconds; the loop
here uses select(2), whose timeout has microsecond resolution. Even so a sleeping task wakes a
little late (about 0.15-0.3 ms on a busy 2-core VM, timer slack plus the loop's own work), which
would add that much to every delayed chunk, twice per round trip. So the relay wakes early by a
margin it learns as it goes (a clipped running average of how late it has been, aiming at a
median lateness of zero). The lateness actually achieved (time written - time due, signed) is
written as JSON to --stats every second, and once more on SIGTERM/SIGINT.

Standard library only. Loopback benchmarking tool: no limits beyond a bounded queue per direction.
"""
import argparse
import asyncio
import json
import os
import selectors
import signal
import socket
import sys
import time

CHUNK = 65536
QUEUE_CHUNKS = 256  # per direction: when the far side is slow, reading pauses (bounded memory)


class Stats:
    def __init__(self):
        self.connections = 0
        self.routes = {}  # listening address -> connections accepted there
        self.open = 0
        self.chunks = 0
        self.bytes = 0
        self.lateness_us = []  # a bounded reservoir of the most recent samples
        self.early = 0.00025  # seconds to wake before a chunk is due, learnt from lateness

    def learn(self, late_s):
        # Clipped steps: an occasional scheduling stall (ms) must not move the margin much.
        self.early += 0.05 * max(-0.0003, min(0.0003, late_s))
        self.early = max(0.0, min(0.002, self.early))

    def record(self, late_s, n):
        self.chunks += 1
        self.bytes += n
        self.lateness_us.append(late_s * 1e6)
        if len(self.lateness_us) > 20000:
            del self.lateness_us[:10000]

    def summary(self, one_way_s):
        v = sorted(self.lateness_us)

        def pct(p):
            if not v:
                return None
            return round(v[min(len(v) - 1, max(0, int(p / 100 * len(v) + 0.999999) - 1))], 1)

        return {"one_way_ms": one_way_s * 1000, "connections": self.connections, "routes": self.routes, "open": self.open,
                "chunks": self.chunks, "bytes": self.bytes, "late_p50_us": pct(50), "late_p99_us": pct(99),
                "late_max_us": round(v[-1], 1) if v else None, "wake_early_us": round(self.early * 1e6, 1)}


async def pump(reader, writer, one_way, stats, loop):
    """Reads chunks from reader; a second task writes each one at arrival + one_way."""
    queue = asyncio.Queue(QUEUE_CHUNKS)

    async def deliver():
        try:
            while True:
                due, data = await queue.get()
                if one_way > 0:
                    wait = due - loop.time() - stats.early
                    if wait > 0:
                        await asyncio.sleep(wait)
                        late = loop.time() - due
                        stats.learn(late)
                    else:
                        late = loop.time() - due
                    stats.record(late, len(data) if data else 0)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            return

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = b""
            due = loop.time() + one_way
            await queue.put((due, data if data else None))
            if not data:
                break
        await sender
    finally:
        sender.cancel()


async def handle(client_reader, client_writer, listen, target, one_way, stats, loop):
    stats.connections += 1
    stats.routes[listen] = stats.routes.get(listen, 0) + 1
    stats.open += 1
    try:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pump(client_reader, up_writer, one_way, stats, loop),
            pump(up_reader, client_writer, one_way, stats, loop),
            return_exceptions=True)
        for w in (up_writer, client_writer):
            try:
                w.close()
            except OSError:
                pass
    finally:
        stats.open -= 1


def split(hostport):
    host, _, port = hostport.rpartition(":")
    return host, int(port)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rtt-ms", type=float, required=True, help="delay added to a round trip (half each way)")
    ap.add_argument("--stats", help="write JSON statistics here every second")
    ap.add_argument("routes", nargs="+", metavar="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    one_way = args.rtt_ms / 2000.0
    stats = Stats()
    servers = []
    for route in args.routes:
        listen, _, target = route.partition("=")
        lh, lp = split(listen)
        t = split(target)
        stats.routes[listen] = 0
        servers.append(await asyncio.start_server(
            lambda r, w, t=t, listen=listen: handle(r, w, listen, t, one_way, stats, loop), lh, lp, reuse_address=True, backlog=256))
    print(f"delay relay: rtt +{args.rtt_ms:g} ms ({args.rtt_ms / 2:g} ms each way): "
          + ", ".join(args.routes), flush=True)

    def write_stats():
        if args.stats:
            tmp = args.stats + ".tmp"
            with open(tmp, "w") as f:
                json.dump(stats.summary(one_way), f)
            os.replace(tmp, args.stats)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        write_stats()
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
    write_stats()
    for s in servers:
        s.close()


if __name__ == "__main__":
    # select(2): microsecond timeouts (epoll's are whole milliseconds); a handful of sockets here.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    sys.exit(0)
