#!/usr/bin/env python3
"""Turn benchmark results (JSON written by bench/run.py) into a Markdown report and plots.

    python bench/report.py bench/results/latest.json \
        --out-md docs/benchmarks.md --plots docs/benchmarks/

Writes http.png, websocket.png, lateness.png and memory.png into the plots folder and a
Markdown report that embeds them with links relative to the report. Every number in the
report comes from the results file; a scenario missing from it is reported as "not run".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

TARGETS = ("direct", "nginx", "idlegate")
# HTTP also measures idlegate with its page script injection off.
HTTP_TARGETS = TARGETS + ("idlegate_noinject",)
TARGET_COLORS = {
    "direct": "#7f7f7f",
    "nginx": "#1f77b4",
    "idlegate": "#d95f02",
    "idlegate_noinject": "#fdae6b",
}
TARGET_LABELS = {
    "direct": "direct (no proxy)",
    "nginx": "nginx (reverse proxy)",
    "idlegate": "idlegate",
    "idlegate_noinject": "idlegate, injection off",
}
DPI = 110
NOT_RUN = "not run"
PASS = "**pass**"
FAIL = "**FAIL**"

# Target thresholds.
MAX_KIB_PER_TAB = 16.0
MAX_IDLE_CPU_PERCENT = 0.5
MIN_PCT_WITHIN_1S = 99.0
MIN_GIVEN_BACK_PCT = 90.0
GIVE_BACK_WINDOW_S = 30.0
# Soak: idlegate's RSS counts as flat when its least-squares slope over the second half of
# the run is at most this (about 2 MiB over 30 minutes), and its descriptors as back when at
# most this many above the count before the first tab.
MAX_SOAK_SLOPE_KIB_PER_MIN = 64.0
MAX_SOAK_FD_GROWTH = 2
# Store: an idle tab costs Redis no command at all.
MAX_REDIS_PER_IDLE_TAB_PER_MIN = 0.0
STORE_TARGETS = ("direct", "memory", "redis")
STORE_LABELS = {
    "direct": "direct (no proxy)",
    "memory": "idlegate, memory store",
    "redis": "idlegate, Redis store",
}


# --------------------------------------------------------------------------- helpers


def get(d: Any, *keys: str) -> Any:
    """Nested lookup that returns None when any level is missing."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    if isinstance(x, float) and math.isnan(x):
        return None
    return float(x)


def fmt(x: Any, unit: str = "") -> str:
    """Format a number for a table: thousands separators, about three significant digits."""
    v = num(x)
    if v is None:
        return "–" if x is None else str(x)
    a = abs(v)
    if v == int(v) and a < 1e15:
        s = f"{int(v):,}"
    elif a >= 100:
        s = f"{v:,.0f}"
    elif a >= 10:
        s = f"{v:.1f}"
    elif a >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.2g}"
    return f"{s} {unit}" if unit else s


def fmt_ratio(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


class Spread:
    """Median, min and max of the values of one metric over repetitions."""

    def __init__(self, values: Iterable[Any]):
        vals = [v for v in (num(x) for x in values) if v is not None]
        self.n = len(vals)
        self.total = sum(vals)
        self.median = statistics.median(vals) if vals else None
        self.min = min(vals) if vals else None
        self.max = max(vals) if vals else None

    def __bool__(self) -> bool:
        return self.n > 0

    def cell(self, unit: str = "") -> str:
        if not self:
            return NOT_RUN
        if self.n == 1 or self.min == self.max:
            return fmt(self.median, unit)
        return f"{fmt(self.median, unit)} ({fmt(self.min)}–{fmt(self.max)})"

    def err(self) -> tuple[float, float]:
        if not self:
            return (0.0, 0.0)
        return (self.median - self.min, self.max - self.median)


def errors_cell(errors: "Spread", main: "Spread") -> str:
    if errors:
        return fmt(errors.total)
    return "–" if main else NOT_RUN


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---:" if a == "c" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def rel_link(target: Path, md_path: Path) -> str:
    return Path(os.path.relpath(target.resolve(), md_path.resolve().parent)).as_posix()


def present(*xs: Any) -> bool:
    return all(x is not None for x in xs)


def save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def placeholder_plot(path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, "not run", ha="center", va="center", fontsize=16, color="#777")
    save(fig, path)


def bar_labels(ax: Any, bars: Any, spreads: list["Spread"]) -> None:
    """Write each bar's median just above its error bar."""
    for b, sp in zip(bars, spreads):
        if not sp:
            continue
        ax.annotate(
            fmt(sp.median),
            (b.get_x() + b.get_width() / 2, sp.max),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )


def thousands(ax: Any) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))


def style_bar_axes(ax: Any, headroom: float = 0.28) -> None:
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.margins(y=headroom)


# --------------------------------------------------------------------------- HTTP


def http_stats(data: dict) -> dict[str, dict[str, dict[str, Spread]]]:
    """{file: {target: {metric: Spread}}} from http.results."""
    http = data.get("http") or {}
    results = http.get("results") or []
    files = list((http.get("files") or {}).keys())
    for r in results:
        if r.get("file") not in files and r.get("file") is not None:
            files.append(r["file"])
    out: dict[str, dict[str, dict[str, Spread]]] = {}
    for f in files:
        out[f] = {}
        for t in http_targets(results):
            rows = [r for r in results if r.get("file") == f and r.get("target") == t]
            out[f][t] = {
                m: Spread(r.get(m) for r in rows) for m in ("rps", "p50_ms", "p99_ms", "errors")
            }
    return out


def http_targets(results: list) -> tuple[str, ...]:
    """The targets an HTTP run measured (older results have no injection-off target)."""
    seen = {r.get("target") for r in results}
    return tuple(t for t in HTTP_TARGETS if t in TARGETS or t in seen)


def plot_http(stats: dict, path: Path) -> None:
    if not stats:
        placeholder_plot(path, "HTTP through each target")
        return
    files = list(stats)
    targets = tuple(next(iter(stats.values())))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    width = 0.8 / len(targets)
    for ax, metric, ylabel, title in (
        (axes[0], "rps", "requests/s", "Throughput (higher is better)"),
        (axes[1], "p99_ms", "p99 latency (ms)", "p99 latency (lower is better)"),
    ):
        for i, t in enumerate(targets):
            xs = [j + (i - (len(targets) - 1) / 2) * width for j in range(len(files))]
            sp = [stats[f][t][metric] for f in files]
            heights = [s.median if s else 0.0 for s in sp]
            errs = list(zip(*[s.err() for s in sp]))
            bars = ax.bar(
                xs,
                heights,
                width,
                yerr=errs,
                capsize=3,
                color=TARGET_COLORS[t],
                label=TARGET_LABELS[t],
                error_kw={"elinewidth": 1},
            )
            bar_labels(ax, bars, sp)
        ax.set_xticks(range(len(files)))
        ax.set_xticklabels(files)
        ax.set_xlabel("file requested")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        style_bar_axes(ax)
        ax.legend(loc="upper center", ncol=2, fontsize=8, framealpha=0.9)
    thousands(axes[0])
    fig.suptitle("HTTP: median over repetitions, error bars min–max")
    fig.tight_layout()
    save(fig, path)


# --------------------------------------------------------------------------- WebSocket


WS_METRICS = ("msgs_per_s", "rtt_p50_us", "rtt_p99_us", "errors")


def ws_stats(data: dict) -> dict[str, dict[str, Spread]]:
    results = get(data, "websocket", "results") or []
    out = {}
    for t in TARGETS:
        rows = [r for r in results if r.get("target") == t]
        out[t] = {m: Spread(r.get(m) for r in rows) for m in WS_METRICS}
    return out


def plot_ws(stats: dict, path: Path, ran: bool) -> None:
    if not ran:
        placeholder_plot(path, "WebSocket round trips through each target")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0]
    metrics = (("rtt_p50_us", "p50"), ("rtt_p99_us", "p99"))
    width = 0.8 / len(TARGETS)
    for i, t in enumerate(TARGETS):
        xs = [j + (i - (len(TARGETS) - 1) / 2) * width for j in range(len(metrics))]
        sp = [stats[t][m] for m, _ in metrics]
        bars = ax.bar(
            xs,
            [s.median if s else 0.0 for s in sp],
            width,
            yerr=list(zip(*[s.err() for s in sp])),
            capsize=3,
            color=TARGET_COLORS[t],
            label=TARGET_LABELS[t],
            error_kw={"elinewidth": 1},
        )
        bar_labels(ax, bars, sp)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([f"RTT {name}" for _, name in metrics])
    ax.set_ylabel("round-trip time (µs)")
    ax.set_title("Round-trip time (lower is better)")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    style_bar_axes(ax, 0.15)
    thousands(ax)

    ax = axes[1]
    sp = [stats[t]["msgs_per_s"] for t in TARGETS]
    bars = ax.bar(
        range(len(TARGETS)),
        [s.median if s else 0.0 for s in sp],
        0.6,
        yerr=list(zip(*[s.err() for s in sp])),
        capsize=3,
        color=[TARGET_COLORS[t] for t in TARGETS],
        error_kw={"elinewidth": 1},
    )
    bar_labels(ax, bars, sp)
    ax.set_xticks(range(len(TARGETS)))
    ax.set_xticklabels(TARGETS)
    ax.set_ylabel("messages/s")
    ax.set_title("Throughput (higher is better)")
    style_bar_axes(ax, 0.15)
    thousands(ax)
    fig.suptitle("WebSocket echo: median over repetitions, error bars min–max")
    fig.tight_layout()
    save(fig, path)


# --------------------------------------------------------------------------- scale


def plot_lateness(fake: dict | None, path: Path) -> None:
    samples = [v for v in (num(x) for x in (get(fake, "lateness_samples_ms") or [])) if v is not None]
    if not samples:
        placeholder_plot(path, "How late tab sessions ended after their deadline")
        return
    fig, ax = plt.subplots(figsize=(9, 4.2))
    bins = min(60, max(10, int(math.sqrt(len(samples)) * 2)))
    ax.hist(samples, bins=bins, color="#d95f02", alpha=0.8, edgecolor="white", linewidth=0.5)
    lat = get(fake, "lateness_ms") or {}
    srt = sorted(samples)

    def q(p: float) -> float:
        return srt[min(len(srt) - 1, max(0, math.ceil(p / 100 * len(srt)) - 1))]

    for key, style in (("p50", "--"), ("p99", ":")):
        v = num(lat.get(key))
        if v is None:
            v = q(50 if key == "p50" else 99)
        ax.axvline(v, color="black", linestyle=style, linewidth=1.4, label=f"{key} = {fmt(v, 'ms')}")
    ax.set_xlabel("time from deadline to session end (ms)")
    ax.set_ylabel("tab sessions")
    tabs = get(fake, "tabs")
    shown = f"{fmt(len(samples))} sampled sessions" + (f" of {fmt(tabs)} tabs" if tabs else "")
    ax.set_title(f"How late tab sessions ended after their deadline ({shown})")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_xlim(left=min(0.0, srt[0]))
    fig.tight_layout()
    save(fig, path)


# --------------------------------------------------------------------------- memory


def plot_memory(mem: dict | None, path: Path) -> None:
    series = get(mem, "series") or {}
    if not mem or not any(series.get(k) for k in ("without_idlegate", "with_idlegate")):
        placeholder_plot(path, "The app's memory after its sessions go idle")
        return
    fig, ax = plt.subplots(figsize=(10, 4.6))
    for key, label, color in (
        ("without_idlegate", "without idlegate", "#7f7f7f"),
        ("with_idlegate", "with idlegate", "#d95f02"),
    ):
        pts = [(num(p[0]), num(p[1])) for p in series.get(key) or [] if len(p) >= 2]
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, color=color, linewidth=1.8)
    base = num(mem.get("baseline_mib"))
    if base is not None:
        ax.axhline(base, color="black", linestyle=":", linewidth=1.2, label=f"baseline ({fmt(base, 'MiB')})")
    ymax = max([base or 0.0] + [y for line in ax.get_lines() for y in line.get_ydata()])
    ax.set_ylim(0, ymax * 1.18 if ymax > 0 else 1)
    ended = num(mem.get("ended_at_s"))
    if ended is not None:
        top = ax.get_ylim()[1]
        for x, text, style in (
            (ended, "sessions end", "--"),
            (ended + GIVE_BACK_WINDOW_S, f"+{GIVE_BACK_WINDOW_S:.0f} s", "-."),
        ):
            ax.axvline(x, color="#444", linestyle=style, linewidth=1)
            ax.annotate(
                text, (x, top), xytext=(4, -4), textcoords="offset points",
                va="top", ha="left", fontsize=9, color="#222",
            )
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("app RSS (MiB)")
    ax.set_title("The Streamlit app's memory (RSS) with and without idlegate")
    thousands(ax)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", framealpha=0.9)
    fig.tight_layout()
    save(fig, path)


def plot_soak(soak: dict | None, path: Path) -> None:
    pts = [p for p in (get(soak, "series") or []) if len(p) >= 3]
    if not pts:
        placeholder_plot(path, "idlegate's memory and descriptors under tab churn")
        return
    fig, ax = plt.subplots(figsize=(10, 4.6))
    minutes = [num(p[0]) / 60 for p in pts]
    ax.plot(minutes, [num(p[1]) / 1024 for p in pts], color="#d95f02", linewidth=1.5,
            label="RSS (MiB)")
    ax.set_xlabel("time since start (min)")
    ax.set_ylabel("idlegate RSS (MiB)")
    ax.set_ylim(0, max(num(p[1]) / 1024 for p in pts) * 1.2)
    fds = ax.twinx()
    fds.plot(minutes, [num(p[2]) for p in pts], color="#1b9e77", linewidth=1, alpha=0.8,
             label="open descriptors")
    fds.set_ylabel("open descriptors")
    fds.set_ylim(0, max(num(p[2]) for p in pts) * 1.2)
    lines = ax.get_lines() + fds.get_lines()
    ax.legend(lines, [l.get_label() for l in lines], loc="lower center", framealpha=0.9)
    ax.set_title("idlegate under tab churn: RSS and open descriptors")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


# --------------------------------------------------------------------------- targets


def status(ok: bool | None) -> str:
    if ok is None:
        return NOT_RUN
    return PASS if ok else FAIL


def target_rows(data: dict, hstats: dict, wstats: dict) -> list[list[str]]:
    rows: list[list[str]] = []

    # HTTP, per file.
    if not hstats:
        rows.append(["HTTP throughput: idlegate ≥ 1.0× nginx", NOT_RUN, NOT_RUN])
        rows.append(["HTTP p99 latency: idlegate ≤ nginx", NOT_RUN, NOT_RUN])
    for f, st in hstats.items():
        ig, ng = st["idlegate"]["rps"], st["nginx"]["rps"]
        r = ratio(ig.median, ng.median)
        if r is None:
            rows.append([f"HTTP throughput, `{f}`: idlegate ≥ 1.0× nginx", NOT_RUN, NOT_RUN])
        else:
            rows.append([
                f"HTTP throughput, `{f}`: idlegate ≥ 1.0× nginx",
                f"{fmt_ratio(r)} ({fmt(ig.median)} vs {fmt(ng.median)} req/s)",
                status(r >= 1.0),
            ])
        ig, ng = st["idlegate"]["p99_ms"], st["nginx"]["p99_ms"]
        if ig and ng:
            rows.append([
                f"HTTP p99 latency, `{f}`: idlegate ≤ nginx",
                f"{fmt(ig.median, 'ms')} vs {fmt(ng.median, 'ms')}",
                status(ig.median <= ng.median),
            ])
        else:
            rows.append([f"HTTP p99 latency, `{f}`: idlegate ≤ nginx", NOT_RUN, NOT_RUN])

    # WebSocket.
    for m, name in (("rtt_p50_us", "p50"), ("rtt_p99_us", "p99")):
        label = f"WebSocket RTT {name}: idlegate ≤ nginx"
        ig, ng = wstats["idlegate"][m], wstats["nginx"][m]
        if ig and ng:
            rows.append([
                label,
                f"{fmt(ig.median, 'µs')} vs {fmt(ng.median, 'µs')}",
                status(ig.median <= ng.median),
            ])
        else:
            rows.append([label, NOT_RUN, NOT_RUN])

    # Scale.
    fake = get(data, "scale", "fake")
    v = num(get(fake, "per_tab_kib"))
    rows.append([
        f"idlegate memory per idle tab session ≤ {fmt(MAX_KIB_PER_TAB)} KiB",
        NOT_RUN if v is None else f"{fmt(v, 'KiB')} ({fmt(get(fake, 'tabs'))} tabs)",
        status(None if v is None else v <= MAX_KIB_PER_TAB),
    ])
    v = num(get(fake, "cpu_idle_percent"))
    rows.append([
        f"idlegate CPU while tabs idle < {fmt(MAX_IDLE_CPU_PERCENT)} %",
        NOT_RUN if v is None else f"{v:.2f} % of one core over {fmt(get(fake, 'idle_window_s'), 's')}",
        status(None if v is None else v < MAX_IDLE_CPU_PERCENT),
    ])
    v = num(get(fake, "pct_within_1s"))
    rows.append([
        f"≥ {fmt(MIN_PCT_WITHIN_1S)} % of sessions end within 1 s of their deadline",
        NOT_RUN if v is None else f"{fmt(v)} %" + (
            "" if get(fake, "lateness_ms", "p99") is None
            else f" (p99 late by {fmt(get(fake, 'lateness_ms', 'p99'), 'ms')})"
        ),
        status(None if v is None else v >= MIN_PCT_WITHIN_1S),
    ])

    # Memory.
    mem = data.get("memory")
    v = num(get(mem, "with_idlegate_given_back_pct_30s"))
    rows.append([
        f"App gives back ≥ {fmt(MIN_GIVEN_BACK_PCT)} % of the sessions' memory "
        f"≤ {GIVE_BACK_WINDOW_S:.0f} s after they end (with idlegate)",
        NOT_RUN if v is None else f"{fmt(v)} %",
        status(None if v is None else v >= MIN_GIVEN_BACK_PCT),
    ])
    v = num(get(mem, "without_idlegate_given_back_pct"))
    rows.append([
        "Same app without idlegate (for comparison)",
        NOT_RUN if v is None else f"{fmt(v)} % given back",
        NOT_RUN if v is None else "reference",
    ])

    # Store.
    store_redis = get(data, "store", "redis")
    v = num(get(store_redis, "per_idle_tab_per_min"))
    idle = get(store_redis, "windows", "idle") or {}
    rows.append([
        "Redis: commands per idle tab per minute = 0",
        NOT_RUN if v is None else
        f"{fmt(v)} ({fmt(idle.get('tabs'))} tabs idle for {fmt(idle.get('seconds'), 's')}; "
        f"the replica's heartbeat: {fmt(get(store_redis, 'per_replica_per_min'))}/min)",
        status(None if v is None else v <= MAX_REDIS_PER_IDLE_TAB_PER_MIN),
    ])

    # Soak.
    soak = data.get("soak")
    v = num(get(soak, "rss_slope_kib_per_min"))
    rows.append([
        f"Soak: idlegate RSS slope over the second half ≤ {fmt(MAX_SOAK_SLOPE_KIB_PER_MIN)} KiB/min",
        NOT_RUN if v is None else f"{fmt(v)} KiB/min ({fmt(get(soak, 'opened'))} tabs)",
        status(None if v is None else v <= MAX_SOAK_SLOPE_KIB_PER_MIN),
    ])
    start, end = num(get(soak, "fd_start")), num(get(soak, "fd_end"))
    rows.append([
        f"Soak: idlegate's open descriptors back to start (± {MAX_SOAK_FD_GROWTH}) after the tabs end",
        NOT_RUN if not present(start, end) else f"{fmt(start)} → {fmt(end)}",
        status(None if not present(start, end) else end - start <= MAX_SOAK_FD_GROWTH),
    ])
    return rows


# --------------------------------------------------------------------------- sections


def section_method(data: dict) -> str:
    out = ["## Method", ""]
    out.append(
        "Each HTTP and WebSocket scenario runs against three targets: **direct** (the upstream "
        "server itself, no proxy), **nginx** (a plain reverse proxy in front of the same "
        "upstream, the baseline) and **idlegate** (in front of the same upstream). Tables show "
        "the median over repetitions with the min–max spread in brackets; ratios are ratios of "
        "medians."
    )
    out.append("")
    http = data.get("http")
    if http:
        files = http.get("files") or {}
        flist = ", ".join(f"`{f}` ({fmt(b)} bytes)" for f, b in files.items()) or "–"
        out.append(
            f"- **HTTP** — `{http.get('tool', '?')}` with {fmt(http.get('threads'))} threads and "
            f"{fmt(http.get('connections'))} connections, {fmt(http.get('duration_s'), 's')} per run, "
            f"{fmt(http.get('reps'))} repetitions per target and file. Files: {flist}. "
            "Measures requests/s and latency percentiles."
        )
    else:
        out.append(f"- **HTTP** — {NOT_RUN}.")
    ws = data.get("websocket")
    if ws:
        out.append(
            f"- **WebSocket** — `{ws.get('tool', '?')}`: {fmt(ws.get('connections'))} connections "
            f"each send {fmt(ws.get('messages'))} messages of {fmt(ws.get('size_bytes'))} bytes "
            "(Streamlit `BackMsg` reruns marked as automatic, so they do not count as activity) "
            "to an echoing server and wait for each echo; "
            f"{fmt(ws.get('reps'))} repetitions per target. Measures round-trip time "
            "percentiles and messages/s."
        )
    else:
        out.append(f"- **WebSocket** — {NOT_RUN}.")
    scale = data.get("scale") or {}
    fake, st = scale.get("fake"), scale.get("streamlit")
    if fake:
        out.append(
            f"- **Scale** — {fmt(fake.get('tabs'))} browser-like tabs connect through idlegate to a "
            "lightweight Streamlit stand-in, load the page once and stay idle (answering pings) "
            f"with an idle timeout of {fmt(fake.get('idle_timeout_s'), 's')}. idlegate's RSS is "
            f"read before ({fmt(fake.get('rss_before_kib'), 'KiB')}) and while holding the tabs "
            f"({fmt(fake.get('rss_held_kib'), 'KiB')}); its CPU time is measured over a "
            f"{fmt(fake.get('idle_window_s'), 's')} window while all tabs are idle; each tab "
            "records when its session ended relative to its deadline."
            + (
                f" The same check runs with {fmt(st.get('tabs'))} tabs against a real Streamlit app "
                f"(idle timeout {fmt(st.get('idle_timeout_s'), 's')})."
                if st else " The check against a real Streamlit app was not run."
            )
        )
    elif st:
        out.append(
            f"- **Scale** — {fmt(st.get('tabs'))} idle tabs against a real Streamlit app "
            f"(idle timeout {fmt(st.get('idle_timeout_s'), 's')}); the run with the Streamlit stand-in was not run."
        )
    else:
        out.append(f"- **Scale** — {NOT_RUN}.")
    mem = data.get("memory")
    if mem:
        out.append(
            f"- **Memory** — {fmt(mem.get('sessions'))} sessions of a Streamlit app each hold "
            f"{fmt(mem.get('blob_mib'), 'MiB')}, then go idle. The app's RSS is sampled over time, "
            f"once with idlegate in front (idle timeout {fmt(mem.get('idle_timeout_s'), 's')}) and "
            "once without it; Streamlit's `disconnectedSessionTTL` is "
            f"{fmt(mem.get('disconnected_session_ttl_s'), 's')}. \"Given back\" is the share of the "
            "memory the sessions added above the baseline that the app released: with idlegate "
            f"within {GIVE_BACK_WINDOW_S:.0f} s of the sessions ending, without idlegate over the "
            "whole run."
        )
    else:
        out.append(f"- **Memory** — {NOT_RUN}.")
    store = data.get("store")
    if store:
        w = get(store, "redis", "windows") or {}
        out.append(
            f"- **Store** — the same idlegate binary twice, with its memory store and with Redis "
            f"(`store.url`, Redis {store.get('redis_version', '?')} on loopback), in front of the "
            "same echoing upstream, and a direct connection to it. Per target and repetition, "
            f"`wsload rtt --person`: {fmt(store.get('connections'))} connections each send "
            f"{fmt(store.get('messages'))} reruns of {fmt(store.get('size_bytes'))} bytes that a "
            "person would send (not marked automatic, so idlegate counts each as activity); then "
            f"{fmt(store.get('tabs'))} tabs opened one at a time, each timed from the TCP connect "
            "until the upgrade's `101` is read (*open a tab*); "
            f"{fmt(store.get('reps'))} repetitions, the order rotating. Redis commands are read "
            "from `INFO commandstats` before and after each window, over one socket, the "
            "bench's own `INFO` calls left out: the replica alone "
            f"({fmt(get(w, 'alone', 'seconds'), 's')}), a burst of "
            f"{fmt(get(w, 'burst', 'tabs'))} new tabs with their page loads, the same tabs idle "
            f"({fmt(get(w, 'idle', 'seconds'), 's')}, idle timeout 10 minutes), their closing "
            f"(after a {fmt(store.get('reconnect_grace_s'), 's')} reconnect grace), and "
            f"{fmt(get(w, 'active', 'tabs'))} tabs each sending a person's rerun every "
            f"{fmt(get(w, 'active', 'activity_every_s'), 's')}. Heartbeats are recognised by "
            "their `ZADD` to the replicas set (with sign-in off, the only `ZADD`) and taken out of "
            "the per-tab figures at the rate the replica alone showed."
        )
    else:
        out.append(f"- **Store** — {NOT_RUN}.")
    soak = data.get("soak")
    if soak:
        out.append(
            f"- **Soak** — `wsload churn` opens tabs through idlegate to the Streamlit stand-in at "
            f"an even pace ({fmt(soak.get('total_requested'))} over {fmt(soak.get('minutes'))} min), "
            f"at most {fmt(soak.get('tabs_at_once'))} open at once. Each tab loads the page, stays "
            f"active for a random time (mean {fmt(soak.get('active_mean_s'), 's')}, a person's rerun "
            f"every {fmt(soak.get('activity_every_s'), 's')}), then goes quiet; "
            f"{fmt(100 * (num(soak.get('close_share')) or 0))} % close themselves within the idle "
            f"timeout ({fmt(soak.get('idle_timeout_s'), 's')}), the rest are ended by idlegate. "
            f"idlegate's RSS (`VmRSS`) and open descriptors (`/proc/PID/fd`) are sampled every "
            f"{fmt(soak.get('sample_every_s'), 's')}; the RSS slope is the least-squares fit over "
            "the second half of the run; the end figures are read once every tab has ended. "
            f"Ended tabs are remembered for {soak.get('ended_notice_ttl') or '1h'} "
            "(`tabs.ended_notice_ttl`), so that the bounded memory they take (13 MiB at most, "
            "100,000 ids) is full before the second half."
        )
    else:
        out.append(f"- **Soak** — {NOT_RUN}.")
    return "\n".join(out)


def section_machine(data: dict) -> str:
    m = data.get("machine") or {}
    if not m:
        return "## Machine\n\nNot recorded."
    names = {
        "cpu": "CPU", "cores": "Cores", "memory_gib": "Memory", "kernel": "Kernel", "os": "OS",
        "idlegate": "idlegate", "nginx": "nginx", "streamlit": "Streamlit", "wrk": "wrk",
    }
    rows = []
    for k, v in m.items():
        val = f"{fmt(v)} GiB" if k == "memory_gib" and num(v) is not None else (fmt(v) if num(v) is not None else str(v))
        rows.append([names.get(k, k), val])
    return "## Machine\n\n" + md_table(["", ""], rows, "ll")


def ratio_cells(med: dict[str, float | None]) -> list[str]:
    return [
        fmt_ratio(ratio(med.get("idlegate"), med.get("nginx"))),
        fmt_ratio(ratio(med.get("idlegate"), med.get("direct"))),
        fmt_ratio(ratio(med.get("nginx"), med.get("direct"))),
    ]


def section_http(data: dict, stats: dict, img: str) -> str:
    out = ["## HTTP", ""]
    if not stats:
        out.append("Not run.")
        return "\n".join(out)
    http = data["http"]
    out.append(
        f"`{http.get('tool', '?')}`, {fmt(http.get('connections'))} connections, "
        f"{fmt(http.get('duration_s'), 's')} × {fmt(http.get('reps'))} repetitions. "
        "Median (min–max)."
    )
    out.append("")
    rows = []
    for f, st in stats.items():
        for t in st:
            s = st[t]
            rows.append([
                f"`{f}`", t, s["rps"].cell(), s["p50_ms"].cell(), s["p99_ms"].cell(),
                errors_cell(s["errors"], s["rps"]),
            ])
    out.append(md_table(["File", "Target", "Requests/s", "p50 (ms)", "p99 (ms)", "Errors (all reps)"], rows, "llrrrr"))
    out.append("")
    out.append("Ratios of medians:")
    out.append("")
    rows = []
    for f, st in stats.items():
        for m, name in (("rps", "requests/s"), ("p50_ms", "p50 latency"), ("p99_ms", "p99 latency")):
            rows.append([f"`{f}`", name] + ratio_cells({t: st[t][m].median for t in TARGETS}))
    out.append(md_table(["File", "Metric", "idlegate / nginx", "idlegate / direct", "nginx / direct"], rows, "llrrr"))
    out.append("")
    navigation = http.get("navigation_files") or []
    if any("idlegate_noinject" in st for st in stats.values()):
        out.append(
            "idlegate runs with its page script injection on (the default), and once more with "
            "`browser.inject = false` (*idlegate_noinject*). "
            + (
                f"{', '.join(f'`{n}`' for n in navigation)} is requested as a browser navigation "
                "(`Sec-Fetch-Dest: document`), so with injection on idlegate reads the whole page, "
                "adds its `<script>` tag and recomputes `Content-Length` and `ETag` on every request. "
                if navigation else ""
            )
            + "Cost of injection (requests/s with it on ÷ off): "
            + ", ".join(
                f"`{f}` {fmt_ratio(ratio(st['idlegate']['rps'].median, st['idlegate_noinject']['rps'].median))}"
                for f, st in stats.items()
                if "idlegate_noinject" in st
            )
            + "."
        )
        out.append("")
    out.append(f"![HTTP requests/s and p99 latency per target]({img})")
    return "\n".join(out)


def section_ws(data: dict, stats: dict, img: str) -> str:
    out = ["## WebSocket", ""]
    ws = data.get("websocket")
    if not ws or not any(stats[t]["msgs_per_s"] or stats[t]["rtt_p50_us"] for t in TARGETS):
        out.append("Not run.")
        return "\n".join(out)
    out.append(
        f"`{ws.get('tool', '?')}`, {fmt(ws.get('connections'))} connections × "
        f"{fmt(ws.get('messages'))} messages of {fmt(ws.get('size_bytes'))} bytes, "
        f"{fmt(ws.get('reps'))} repetitions. Median (min–max)."
    )
    out.append("")
    rows = []
    for t in TARGETS:
        s = stats[t]
        rows.append([
            t, s["msgs_per_s"].cell(), s["rtt_p50_us"].cell(), s["rtt_p99_us"].cell(),
            errors_cell(s["errors"], s["msgs_per_s"]),
        ])
    out.append(md_table(["Target", "Messages/s", "RTT p50 (µs)", "RTT p99 (µs)", "Errors (all reps)"], rows))
    out.append("")
    out.append("Ratios of medians:")
    out.append("")
    rows = []
    for m, name in (("msgs_per_s", "messages/s"), ("rtt_p50_us", "RTT p50"), ("rtt_p99_us", "RTT p99")):
        rows.append([name] + ratio_cells({t: stats[t][m].median for t in TARGETS}))
    out.append(md_table(["Metric", "idlegate / nginx", "idlegate / direct", "nginx / direct"], rows))
    out.append("")
    out.append(f"![WebSocket round-trip time and messages/s per target]({img})")
    return "\n".join(out)


def section_scale(data: dict, img: str) -> str:
    out = ["## Scale: many idle tabs", ""]
    scale = data.get("scale") or {}
    runs = [(k, scale.get(k)) for k in ("fake", "streamlit")]
    if not any(r for _, r in runs):
        out.append("Not run.")
        return "\n".join(out)
    names = {"fake": "Streamlit stand-in", "streamlit": "real Streamlit app"}
    header = ["", *[names[k] for k, _ in runs]]

    def row(label: str, fn: Any) -> list[str]:
        return [label] + [NOT_RUN if not r else fn(r) for _, r in runs]

    def kib(k: str) -> Any:
        return lambda r: fmt(r.get(k), "KiB") if r.get(k) is not None else "–"

    rows = [
        row("Tabs", lambda r: fmt(r.get("tabs"))),
        row("Idle timeout", lambda r: fmt(r.get("idle_timeout_s"), "s")),
        row("idlegate RSS before tabs", kib("rss_before_kib")),
        row("idlegate RSS holding the tabs", kib("rss_held_kib")),
        row("idlegate memory per tab", kib("per_tab_kib")),
        row("idlegate CPU while idle",
            lambda r: "–" if r.get("cpu_idle_percent") is None else
            f"{num(r['cpu_idle_percent']):.2f} % ({fmt(r.get('cpu_idle_seconds'), 's')} CPU over "
            f"{fmt(r.get('idle_window_s'), 's')})"),
    ]
    for p in ("p50", "p90", "p99", "max"):
        rows.append(row(f"Ended late by, {p}", lambda r, p=p: fmt(get(r, "lateness_ms", p), "ms")
                        if get(r, "lateness_ms", p) is not None else "–"))
    rows.append(row("Ended within 1 s of deadline",
                    lambda r: "–" if r.get("pct_within_1s") is None else f"{fmt(r['pct_within_1s'])} %"))
    rows.append(row("Ended before deadline", lambda r: fmt(r.get("early")) if r.get("early") is not None else "–"))
    out.append(md_table(header, rows))
    if get(scale, "fake", "lateness_samples_ms"):
        out.append("")
        out.append(f"![How late tab sessions ended after their deadline (Streamlit stand-in)]({img})")
    return "\n".join(out)


def section_memory(data: dict, img: str) -> str:
    out = ["## Memory given back by the app", ""]
    mem = data.get("memory")
    if not mem:
        out.append("Not run.")
        return "\n".join(out)
    base, peak = num(mem.get("baseline_mib")), num(mem.get("peak_mib"))
    added = None if not present(base, peak) else peak - base
    rows = [
        ["Sessions × memory each", f"{fmt(mem.get('sessions'))} × {fmt(mem.get('blob_mib'), 'MiB')}"],
        ["Baseline RSS", fmt(base, "MiB")],
        ["Peak RSS", fmt(peak, "MiB")],
        ["Added by the sessions", fmt(added, "MiB")],
        ["Sessions ended at", fmt(mem.get("ended_at_s"), "s")],
        [f"Given back ≤ {GIVE_BACK_WINDOW_S:.0f} s later, with idlegate",
         "–" if mem.get("with_idlegate_given_back_pct_30s") is None
         else f"{fmt(mem['with_idlegate_given_back_pct_30s'])} %"],
        ["Given back, without idlegate",
         "–" if mem.get("without_idlegate_given_back_pct") is None
         else f"{fmt(mem['without_idlegate_given_back_pct'])} %"],
    ]
    out.append(md_table(["", ""], rows, "lr"))
    out.append("")
    out.append(f"![The app's RSS over time with and without idlegate]({img})")
    return "\n".join(out)


def section_soak(data: dict, img: str) -> str:
    out = [
        "## Soak: tabs in churn",
        "",
        "Run on its own, as it takes its whole duration: `bench/run.sh --only soak` (options "
        "`--minutes`, `--tabs-at-once`, `--total`, `--soak-idle`; the other sections of the "
        "results are kept). Keep the tabs at once under half of the open-file limit: idlegate "
        "holds a browser and an app socket per tab.",
        "",
    ]
    soak = data.get("soak")
    if not soak:
        out.append("Not run.")
        return "\n".join(out)
    ended = soak.get("ended") or {}
    mib = lambda k: fmt(num(soak.get(k)) / 1024 if present(soak.get(k)) else None, "MiB")
    rows = [
        ["Measured", str(soak.get("measured_at", "–"))],
        ["Machine", "the one above" if not soak.get("machine") else
         f"{get(soak, 'machine', 'cpu')}, {fmt(get(soak, 'machine', 'cores'))} cores, "
         f"idlegate {get(soak, 'machine', 'idlegate')}"],
        ["Run", f"{fmt(soak.get('churn_s'), 's')} (planned {fmt(soak.get('minutes'))} min)"],
        ["Tabs opened / planned", f"{fmt(soak.get('opened'))} / {fmt(soak.get('total_requested'))}"],
        ["Tabs failed to open", fmt(soak.get("failed"))],
        ["Most open at once", f"{fmt(soak.get('peak_open'))} (cap {fmt(soak.get('tabs_at_once'))})"],
        ["Idle timeout", fmt(soak.get("idle_timeout_s"), "s")],
        ["Ended by idle timeout", fmt(ended.get("idle_redirect", 0))],
        ["Closed by the tab", fmt(ended.get("closed_by_tab", 0))],
        ["Closed by idlegate without redirect", fmt(ended.get("server_closed", 0))],
        ["Broken", fmt(ended.get("broken", 0))],
        ["Still open at the end (closed by the tab)", fmt(ended.get("open_at_end", 0))],
        ["A person's reruns sent", fmt(soak.get("activity_messages"))],
        ["idlegate RSS start / peak / end", f"{mib('rss_start_kib')} / {mib('rss_peak_kib')} / {mib('rss_end_kib')}"],
        ["RSS slope, second half (least squares)", fmt(soak.get("rss_slope_kib_per_min"), "KiB/min")],
        ["Open descriptors start / peak / end", f"{fmt(soak.get('fd_start'))} / {fmt(soak.get('fd_peak'))} / {fmt(soak.get('fd_end'))}"],
        ["idlegate CPU time", fmt(soak.get("cpu_seconds"), "s")],
    ]
    out.append(md_table(["", ""], rows, "lr"))
    out.append("")
    out.append(f"![idlegate's RSS and open descriptors under tab churn]({img})")
    return "\n".join(out)


STORE_METRICS = ("msgs_per_s", "rtt_p50_us", "rtt_p99_us", "connect_p50_us", "connect_p99_us",
                 "errors", "cpu_us_per_rerun", "cpu_us_per_new_tab", "redis_cpu_us_per_new_tab")


def store_stats(data: dict) -> dict[str, dict[str, Spread]]:
    results = get(data, "store", "results") or []
    return {
        t: {m: Spread(r.get(m) for r in results if r.get("target") == t) for m in STORE_METRICS}
        for t in STORE_TARGETS
    }


def commands_cell(w: dict) -> str:
    by = w.get("by_command") or {}
    names = ", ".join(f"{n} {fmt(c)}" for n, c in sorted(by.items(), key=lambda kv: (-kv[1], kv[0])))
    return fmt(w.get("commands")) + (f" ({names})" if names else "")


def section_store(data: dict) -> str:
    out = [
        "## Shared store: Redis",
        "",
        "Run on its own, as it takes about 3.5 minutes (two count windows of a minute): "
        "`bench/run.sh --only store` (options `--store-reps`, `--store-tabs`, `--store-idle`; "
        "the other sections of the results are kept). It needs `redis-server`.",
        "",
    ]
    store = data.get("store")
    if not store:
        out.append("Not run.")
        return "\n".join(out)
    m = store.get("machine") or {}
    out.append(
        f"Measured {store.get('measured_at', '–')}"
        + (f" on {m.get('cpu')}, {fmt(m.get('cores'))} cores" if m else "")
        + f"; idlegate built from `{store.get('idlegate_build', '?')}`; Redis "
        f"{store.get('redis_version', '?')}; {fmt(store.get('elapsed_s'), 's')} in all."
    )
    out.append("")
    st = store_stats(data)
    out.append(
        f"**Cost of activity and of a new tab.** `wsload rtt --person`, "
        f"{fmt(store.get('connections'))} connections × {fmt(store.get('messages'))} reruns of "
        f"{fmt(store.get('size_bytes'))} bytes; then {fmt(store.get('tabs'))} tabs opened one "
        f"at a time; {fmt(store.get('reps'))} repetitions. Median (min–max) of the repetitions' "
        "figures."
    )
    out.append("")
    rows = []
    for t in STORE_TARGETS:
        s = st[t]
        rows.append([
            STORE_LABELS[t], s["msgs_per_s"].cell(), s["rtt_p50_us"].cell(), s["rtt_p99_us"].cell(),
            s["connect_p50_us"].cell(), s["connect_p99_us"].cell(),
            errors_cell(s["errors"], s["msgs_per_s"]),
        ])
    out.append(md_table(
        ["Target", "Reruns/s", "RTT p50 (µs)", "RTT p99 (µs)", "Open a tab p50 (µs)",
         "Open a tab p99 (µs)", "Errors (all reps)"], rows))
    out.append("")
    out.append("Ratios of medians:")
    out.append("")
    rows = []
    for metric, name in (("rtt_p50_us", "RTT p50"), ("rtt_p99_us", "RTT p99"),
                         ("msgs_per_s", "reruns/s"), ("connect_p50_us", "open a tab, p50"),
                         ("connect_p99_us", "open a tab, p99")):
        med = {t: st[t][metric].median for t in STORE_TARGETS}
        rows.append([name, fmt_ratio(ratio(med["redis"], med["memory"])),
                     fmt_ratio(ratio(med["memory"], med["direct"])),
                     fmt_ratio(ratio(med["redis"], med["direct"]))])
    out.append(md_table(["Metric", "Redis / memory", "memory / direct", "Redis / direct"], rows))
    out.append("")
    if any(st[t]["cpu_us_per_rerun"] for t in ("memory", "redis")):
        out.append(
            "CPU time (time on a CPU of all threads, from `/proc/PID/task/*/schedstat`) per rerun "
            "relayed, and per tab opened, loaded, held for 0.2 s and closed by the page (the "
            "tab's end, after the reconnect grace, not included). Redis's is measured for every "
            "target: what it shows beside Redis is its own background work. Median (min–max)."
        )
        out.append("")
        rows = []
        for t in STORE_TARGETS:
            s_ = st[t]
            rows.append([
                STORE_LABELS[t],
                s_["cpu_us_per_rerun"].cell() if s_["cpu_us_per_rerun"] else "–",
                s_["cpu_us_per_new_tab"].cell() if s_["cpu_us_per_new_tab"] else "–",
                s_["redis_cpu_us_per_new_tab"].cell() if s_["redis_cpu_us_per_new_tab"] else "–",
            ])
        out.append(md_table(["Target", "idlegate CPU per rerun (µs)", "idlegate CPU per new tab (µs)",
                             "Redis CPU per new tab (µs)"], rows))
        out.append("")
    red = store.get("redis") or {}
    w = red.get("windows") or {}
    if w:
        out.append(
            "**Redis commands.** Every command idlegate sent Redis in each window, by name; "
            "the bytes are what Redis read from idlegate."
        )
        out.append("")

        def cost(value: Any, unit: str) -> str:
            return "–" if num(value) is None else f"**{fmt(value)}** {unit}"

        windows = [
            ("alone", "The replica alone, no tab",
             cost(red.get("per_replica_per_min"), "per replica per minute")
             + ("" if red.get("per_heartbeat") is None
                else f" ({fmt(red['per_heartbeat'])} per heartbeat)")),
            ("burst", f"{fmt(get(w, 'burst', 'tabs'))} new tabs, each with its page load",
             cost(red.get("per_new_tab"), "per new tab")),
            ("idle", f"The same {fmt(get(w, 'idle', 'tabs'))} tabs idle",
             cost(red.get("per_idle_tab_per_min"), "per idle tab per minute")),
            ("close", f"The {fmt(get(w, 'close', 'tabs'))} tabs closed",
             cost(red.get("per_closed_tab"), "per closed tab")),
            ("active", f"{fmt(get(w, 'active', 'tabs'))} tabs, a person's rerun every "
                       f"{fmt(get(w, 'active', 'activity_every_s'), 's')}",
             cost(red.get("per_active_tab_per_min"), "per active tab per minute")),
        ]
        rows = []
        for key, label, result in windows:
            win = w.get(key)
            if not win:
                continue
            rows.append([label, fmt(win.get("seconds"), "s"), commands_cell(win),
                         fmt(win.get("heartbeats")), fmt(win.get("input_bytes")), result])
        out.append(md_table(["Window", "Length", "Commands", "Heartbeats", "Bytes to Redis",
                             "Cost (heartbeats taken out)"], rows, "lrlrrl"))
    return "\n".join(out)


def section_limits(data: dict) -> str:
    notes = [str(n) for n in (data.get("notes") or []) if str(n).strip()]
    body = "\n".join(f"- {n}" for n in notes) if notes else "None recorded."
    return "## Limits of this run\n\n" + body


# What profiling found about the targets idlegate misses; written by hand, kept next to the
# scripts, and copied into the report.
FINDINGS = Path(__file__).resolve().parent / "findings.md"


def section_findings() -> str:
    return FINDINGS.read_text(encoding="utf-8").strip() if FINDINGS.is_file() else ""


# --------------------------------------------------------------------------- main


def build(data: dict, out_md: Path, plots: Path, source: str) -> str:
    plots.mkdir(parents=True, exist_ok=True)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    hstats = http_stats(data)
    wstats = ws_stats(data)
    ws_ran = any(wstats[t][m] for t in TARGETS for m in WS_METRICS)

    paths = {n: plots / f"{n}.png" for n in ("http", "websocket", "lateness", "memory", "soak")}
    plot_http(hstats, paths["http"])
    plot_ws(wstats, paths["websocket"], ws_ran)
    plot_lateness(get(data, "scale", "fake"), paths["lateness"])
    plot_memory(data.get("memory"), paths["memory"])
    plot_soak(data.get("soak"), paths["soak"])
    links = {n: rel_link(p, out_md) for n, p in paths.items()}

    gen = data.get("generated_at")
    parts = [
        "# Benchmarks",
        "",
        f"Results from `{source}`" + (f", measured {gen}" if gen else "")
        + ". Generated by `bench/report.py`; do not edit by hand.",
        "",
        "## Targets",
        "",
        md_table(["Target", "Measured", "Result"], target_rows(data, hstats, wstats), "lrc"),
        "",
        section_method(data),
        "",
        section_machine(data),
        "",
        section_http(data, hstats, links["http"]),
        "",
        section_ws(data, wstats, links["websocket"]),
        "",
        section_scale(data, links["lateness"]),
        "",
        section_memory(data, links["memory"]),
        "",
        section_store(data),
        "",
        section_soak(data, links["soak"]),
        "",
        section_limits(data),
        "",
        section_findings(),
        "",
    ]
    md = "\n".join(parts)
    out_md.write_text(md, encoding="utf-8")
    return md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results JSON written by bench/run.py")
    ap.add_argument("--out-md", type=Path, default=Path("docs/benchmarks.md"))
    ap.add_argument("--plots", type=Path, default=Path("docs/benchmarks"))
    args = ap.parse_args(argv)
    data = json.loads(args.results.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        print(f"{args.results}: expected a JSON object", file=sys.stderr)
        return 2
    build(data, args.out_md, args.plots, args.results.name)
    print(f"wrote {args.out_md} and 5 plots in {args.plots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
