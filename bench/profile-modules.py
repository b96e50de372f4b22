#!/usr/bin/env python3
"""Where a proxy's CPU goes, by module, from a `perf record -g` file.

Usage: bench/profile-modules.py PERF_DATA [SYMBOL_REGEX]

Each sample is charged to the innermost frame that is not the Swift runtime, the standard
library or libc (retain/release, malloc, memcpy, hashing...), so allocation and reference
counting count against the code that caused them. Kernel samples stay "kernel". With
SYMBOL_REGEX, the symbols so charged that match it are listed instead (e.g. 'StarlingProxy').
bench/proxy-pair.sh runs it with PROFILE=1.
"""
import collections
import re
import subprocess
import sys

RUNTIME = re.compile(
    r"^(swift_|_swift|__swift|\$ss|\$sS[a-zA-Z]|malloc|_int_|cfree|free|__memmove|__memcpy|__memset|"
    r"__memcmp|__tls_get|swift::|getCache|tryCast|unlink_chunk|\[unknown\]|pthread_|__lll|memcpy|"
    r"memmove|__vdso|clock_gettime)")
MODULES = [
    ("NIOHTTP2 stream channels", r"HTTP2StreamChannel|MultiplexerAbstractChannel|StreamChannelList|"
                                 r"InlineStreamMultiplexer|CommonInboundStreamMultiplexer|StreamMultiplexer"),
    ("NIOHTTP2", r"NIOHTTP2"), ("NIOHPACK", r"NIOHPACK"), ("NIOHTTP1", r"NIOHTTP1|llhttp"),
    ("NIOCore", r"NIOCore"), ("NIOPosix", r"NIOPosix"), ("NIOSSL/BoringSSL", r"NIOSSL|BoringSSL|ssl_|aes|gcm"),
    ("Starling", r"Starling"), ("Synchronization", r"Synchronization|Atomics"),
    ("Logging/Metrics", r"Logging|CoreMetrics|Prometheus"),
]
FRAME = re.compile(r"[0-9a-f]+\s+(.*)\s+\((.*)\)$")


def charged_frames(data):
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    for block in out.split("\n\n"):
        lines = [line.strip() for line in block.strip().split("\n") if line.strip()]
        if not lines:
            continue
        if "kernel" in lines[0]:
            yield "kernel"
            continue
        for line in lines:
            match = FRAME.match(line)
            if match and not RUNTIME.match(match.group(1)):
                yield match.group(1)
                break
        else:
            yield "runtime (no caller frame)"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    frames = list(charged_frames(sys.argv[1]))
    if not frames:
        sys.exit("no samples in " + sys.argv[1])
    counts = collections.Counter()
    if len(sys.argv) > 2:
        wanted = re.compile(sys.argv[2])
        counts.update(f[:140] for f in frames if wanted.search(f))
        rows = counts.most_common(30)
    else:
        for frame in frames:
            if frame in ("kernel", "runtime (no caller frame)"):
                counts[frame] += 1
                continue
            counts[next((name for name, pattern in MODULES if re.search(pattern, frame)), "other")] += 1
        rows = counts.most_common()
    for name, count in rows:
        print(f"{100 * count / len(frames):5.1f}%  {name}")


if __name__ == "__main__":
    main()
