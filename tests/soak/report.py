#!/usr/bin/env python3
"""Judges and plots one soak run (tests/soak/run.sh): the sampler's CSV, the load generators' logs
and the fault log. Prints one "  ✓ …" or "  × …" line per check, writes the figures as Markdown
(--summary) and the plot (--png).

Checks:
  - per process (kind/name), RSS and open fds flat after warm-up: the median of the last window
    at most 10 % above the median of the first window (fds: 10 %, at least 2 fds, so that one
    socket more in a 15-fd process is not a leak). Only growth fails: a leak grows, while a drop
    comes from connections a fault had left open in the first window, or from a controller that
    was restarted and came back smaller; the line shows the change either way.
  - per protocol: requests were made and succeeded, and none failed outside the fault windows
    (a fault window runs from a fault's start to --window-after seconds after its end; a request
    is inside when the span from its start to its end meets a window, so a request in flight when
    a fault hit counts as inside); failures inside the windows are reported, not judged.
  - no request took longer than its timeout plus --grace seconds (a hang).

  report.py --csv F --loads DIR --faults F --start EPOCH --end EPOCH --warmup S --window S
            [--window-after 10] [--timeout 5] [--grace 1] --png F --summary F
"""
import argparse
import collections
import csv
import glob
import os
import statistics
import sys


def load_faults(path):
    faults = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split(None, 3)
                if len(parts) >= 3:
                    faults.append((float(parts[0]), float(parts[1]), parts[2], parts[3].strip() if len(parts) > 3 else ""))
    return faults


def load_requests(loads_dir):
    by_proto = {}
    for path in sorted(glob.glob(os.path.join(loads_dir, "load-*.log"))):
        proto = os.path.basename(path)[len("load-"):-len(".log")]
        rows = []
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 3)
                if len(parts) < 3:
                    continue
                rows.append((float(parts[0]), float(parts[1]), parts[2] == "ok", parts[3] if len(parts) > 3 else ""))
        by_proto[proto] = rows
    return by_proto


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--csv", required=True)
    p.add_argument("--loads", required=True)
    p.add_argument("--faults", required=True)
    p.add_argument("--start", type=float, required=True)
    p.add_argument("--end", type=float, required=True)
    p.add_argument("--warmup", type=float, required=True)
    p.add_argument("--window", type=float, required=True)
    p.add_argument("--window-after", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--grace", type=float, default=1.0)
    p.add_argument("--png", required=True)
    p.add_argument("--summary", required=True)
    a = p.parse_args()
    lines = []
    ok = lambda s: lines.append(f"  ✓ {s}")
    bad = lambda s: lines.append(f"  × {s}")
    md = []

    # --- processes -----------------------------------------------------------------------------
    series = collections.defaultdict(list)   # (kind, name) -> [(t, pid, rss, fds, conns, gw, close_wait)]
    with open(a.csv) as f:
        for r in csv.DictReader(f):
            series[(r["kind"], r["name"])].append((float(r["epoch"]) - a.start, int(r["pid"]), int(r["rss_kb"]),
                                                  int(r["fds"]), int(r["conns"]), int(r["gateway_conns"]),
                                                  int(r.get("close_wait") or 0)))
    duration = a.end - a.start
    first = (a.warmup, a.warmup + a.window)
    last = (duration - a.window, duration)
    if not series:
        bad("the sampler recorded no Starling process")
    for key in sorted(series):
        kind, name = key
        rows = series[key]
        w1 = [r for r in rows if first[0] <= r[0] < first[1]]
        w2 = [r for r in rows if last[0] <= r[0] <= last[1] + 1]
        if not w1 or not w2:
            bad(f"{kind} {name}: no samples in both windows (process ended? {len(w1)} and {len(w2)} samples)")
            continue
        restarted = len({r[1] for r in rows if r[0] >= first[0]}) > 1
        for label, idx, unit, floor in (("RSS", 2, "MB", 0.0), ("fds", 3, "", 2.0)):
            m1 = statistics.median(r[idx] for r in w1)
            m2 = statistics.median(r[idx] for r in w2)
            tol = max(0.10 * m1, floor)
            fmt = (lambda v: f"{v / 1024:.1f} MB") if unit == "MB" else (lambda v: f"{v:g}")
            change = (m2 - m1) / m1 * 100 if m1 else 0.0
            desc = f"{kind} {name}: {label} {fmt(m1)} → {fmt(m2)} ({change:+.1f} %)"
            if label == "fds":
                c1 = statistics.median(r[6] for r in w1)
                c2 = statistics.median(r[6] for r in w2)
                if c1 or c2:
                    desc += f" (sockets in CLOSE_WAIT: {c1:g} → {c2:g})"
            if restarted:
                desc += " (restarted in between)"
            good = m2 <= m1 + tol
            (ok if good else bad)(desc)

    # figures per kind, after warm-up
    md.append("| process kind | processes | RSS median | RSS peak | fds median | fds peak | conns median | conns peak "
              "| CLOSE_WAIT sockets peak |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    kinds = collections.defaultdict(list)
    for (kind, name), rows in series.items():
        kinds[kind] += [r for r in rows if r[0] >= a.warmup]
    for kind in ("controller", "proxy", "app"):
        rows = kinds.get(kind)
        if not rows:
            continue
        n = len({name for (k, name) in series if k == kind})
        md.append(f"| {kind} | {n} | {statistics.median(r[2] for r in rows) / 1024:.1f} MB | "
                  f"{max(r[2] for r in rows) / 1024:.1f} MB | {statistics.median(r[3] for r in rows):g} | "
                  f"{max(r[3] for r in rows)} | {statistics.median(r[4] for r in rows):g} | {max(r[4] for r in rows)} | "
                  f"{max(r[6] for r in rows)} |")
    gw = [r[5] for (kind, _), rows in series.items() if kind == "controller" for r in rows if r[0] >= a.warmup]
    if gw:
        md.append("")
        md.append(f"Gateway connections (established, on the gateway port, per controller): median "
                  f"{statistics.median(gw):g}, peak {max(gw)}.")
    md.append("")
    md.append("| process | RSS first window | RSS last window | fds first | fds last | conns first | conns last |")
    md.append("|---|---|---|---|---|---|---|")
    for key in sorted(series):
        rows = series[key]
        w1 = [r for r in rows if first[0] <= r[0] < first[1]]
        w2 = [r for r in rows if last[0] <= r[0] <= last[1] + 1]
        if w1 and w2:
            md.append(f"| {key[0]} {key[1]} | {statistics.median(r[2] for r in w1) / 1024:.1f} MB | "
                      f"{statistics.median(r[2] for r in w2) / 1024:.1f} MB | {statistics.median(r[3] for r in w1):g} | "
                      f"{statistics.median(r[3] for r in w2):g} | {statistics.median(r[4] for r in w1):g} | "
                      f"{statistics.median(r[4] for r in w2):g} |")

    # --- requests ------------------------------------------------------------------------------
    faults = load_faults(a.faults)
    windows = [(s - a.start, e - a.start + a.window_after) for s, e, _, _ in faults]
    in_window = lambda t, lat: any(s <= t + lat and t <= e for s, e in windows)
    reqs = load_requests(a.loads)
    if not reqs:
        bad("no load generator logged a request")
    md.append("")
    md.append("| protocol | requests | succeeded | failed outside fault windows | failed inside fault windows | "
              "p50 | p99 | max latency |")
    md.append("|---|---|---|---|---|---|---|---|")
    hangs = []
    for proto, rows in reqs.items():
        rows = [(t - a.start, lat, good, d) for t, lat, good, d in rows]
        fails = [r for r in rows if not r[2]]
        outside = [r for r in fails if not in_window(r[0], r[1])]
        inside = [r for r in fails if in_window(r[0], r[1])]
        succeeded = len(rows) - len(fails)
        lat = [r[1] for r in rows if r[2]]
        hangs += [(proto, r) for r in rows if r[1] > a.timeout + a.grace]
        md.append(f"| {proto} | {len(rows)} | {succeeded} | {len(outside)} | {len(inside)} | "
                  f"{pct(lat, 0.5) * 1000:.1f} ms | {pct(lat, 0.99) * 1000:.1f} ms | "
                  f"{max((r[1] for r in rows), default=0) * 1000:.0f} ms |")
        if succeeded == 0:
            bad(f"{proto}: none of {len(rows)} requests succeeded")
            continue
        if not outside:
            ok(f"{proto}: {len(rows)} requests, 0 failed outside the fault windows ({len(inside)} failed inside)")
        else:
            bad(f"{proto}: {len(outside)} of {len(rows)} requests failed outside the fault windows "
                f"({len(inside)} inside)")
            for t, l, _, d in outside[:5]:
                lines.append(f"      t={t:.1f}s {l * 1000:.0f} ms: {d}")
        if inside:
            reasons = collections.Counter(d.split(" ")[0] if d else "-" for _, _, _, d in inside)
            lines.append(f"      inside the windows: {dict(reasons.most_common(4))}")
    if hangs:
        bad(f"{len(hangs)} requests took longer than their timeout ({a.timeout:g} s + {a.grace:g} s)")
        for proto, (t, l, good, d) in hangs[:5]:
            lines.append(f"      {proto} t={t:.1f}s {l:.1f} s {'ok' if good else 'fail'}: {d}")
    elif reqs:
        ok(f"no request took longer than its timeout ({a.timeout:g} s + {a.grace:g} s grace)")

    md.append("")
    md.append("| fault | at | took | requests failed in its window |")
    md.append("|---|---|---|---|")
    for (s, e, kind, desc), (ws, we) in zip(faults, windows):
        n = sum(1 for rows in reqs.values() for t, lat, good, _ in rows
                if not good and ws <= t - a.start + lat and t - a.start <= we)
        md.append(f"| {kind}: {desc} | {s - a.start:.0f} s | {e - s:.1f} s | {n} |")

    with open(a.summary, "w") as f:
        f.write("\n".join(md) + "\n")

    # --- plot ----------------------------------------------------------------------------------
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        bad("matplotlib is missing (python3 -m pip install matplotlib): no plot")
    else:
        fig, axes = plt.subplots(4, 1, figsize=(11, 13), sharex=True)
        palette = plt.get_cmap("tab20").colors
        styles = {"controller": ("-", 2.0), "proxy": ("-", 1.1), "app": (":", 1.3)}
        for i, key in enumerate(sorted(series)):
            kind, name = key
            rows = series[key]
            style, width = styles.get(kind, ("--", 1.0))
            t = [r[0] / 60 for r in rows]
            for ax, idx, scale in ((axes[0], 2, 1 / 1024), (axes[1], 3, 1), (axes[2], 4, 1)):
                ax.plot(t, [r[idx] * scale for r in rows], style, color=palette[(2 * i + i // 10) % 20], lw=width,
                        label=f"{kind} {name}")
        per_proto_bins = {}
        for proto, rows in reqs.items():
            bins = collections.Counter(int((t - a.start) // 10) for t, _, _, _ in rows)
            xs = [x for x in sorted(bins) if x * 10 + 10 <= duration]
            axes[3].plot([(x * 10 + 5) / 60 for x in xs], [bins[x] / 10 for x in xs], lw=1, label=proto)
            fails = [(t - a.start) / 60 for t, _, good, _ in rows if not good]
            if fails:
                axes[3].plot(fails, [0] * len(fails), "x", color="red", ms=5)
            per_proto_bins[proto] = bins
        axes[0].set_ylabel("RSS (MB)")
        axes[1].set_ylabel("open fds")
        axes[2].set_ylabel("established TCP conns")
        axes[3].set_ylabel("requests/s (× = failed)")
        axes[3].set_xlabel("minutes since the load started")
        for ax in axes:
            for s, e in windows:
                ax.axvspan(s / 60, e / 60, color="orange", alpha=0.15, lw=0)
            for x0, x1 in (first, last):
                ax.axvspan(x0 / 60, x1 / 60, color="gray", alpha=0.08, lw=0)
            ax.axvline(a.warmup / 60, color="black", lw=0.6, ls="--")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=6, ncol=3, loc="upper left")
        axes[3].legend(fontsize=7, ncol=3, loc="upper left")
        axes[0].set_title(f"Starling soak, {duration / 60:.0f} min: shaded orange = fault windows, "
                          f"gray = compared windows, dashed = end of warm-up", fontsize=9)
        fig.tight_layout()
        fig.savefig(a.png, dpi=70)
        ok(f"plot written to {a.png}")

    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
