"""Runs idlegate's benchmarks on loopback and writes one results JSON.

Scenarios (each compares against baselines measured in the same run):
- http: a small asset and Streamlit's index.html through a fast static upstream (nginx
  serving files), fetched directly, through nginx as a reverse proxy, and through idlegate
  with its page script injection on (the default) and off; index.html is requested as a
  browser navigation, so idlegate rewrites it. wrk, several repetitions in rotating order.
- websocket: round trips of Streamlit-sized binary messages through an echo upstream
  (benchkit's fakeapp --echo): direct, nginx, idlegate; benchkit's wsload.
- scale: thousands of idle tab sessions held through idlegate in front of fakeapp (idlegate's
  memory per tab, CPU while idle, how late each tab ends), and a smaller run in front of a
  real Streamlit.
- memory: a real Streamlit app keeping 50 MiB per session; tabs opened and left alone; the
  app's RSS over time without idlegate and with it.
- store (only with `--only store`, about 3.5 minutes): idlegate with its memory store and
  with Redis (`store.url`), the same release binary in front of the same echo upstream, and
  a direct connection: round trips of a person's reruns (activity) and the time to open a tab
  (the WebSocket handshake), with the CPU time idlegate and Redis spend on them, in
  alternating order over repetitions; then the Redis commands a replica alone, a burst of
  new tabs, the same tabs idle for a minute, their closing and tabs with a person's activity
  cost (Redis's INFO commandstats, read over a socket, the INFO calls themselves left out).
- soak (only with `--only soak`, it takes --minutes): tabs opened and ended in churn through
  a release idlegate in front of fakeapp (benchkit's wsload churn), several thousand at once
  and --total in all; idlegate's RSS and open descriptors sampled throughout, the RSS slope
  over the second half fitted by least squares.

With --only, the sections not run are kept from the --out file if it exists.

Every process runs in its own process group and is killed when the run ends. Only loopback
addresses are used. Run it through bench/run.sh, which builds and installs what it needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
VENV = Path(os.environ.get("IDLEGATE_BENCH_VENV", ROOT / ".venv"))
STREAMLIT = VENV / "bin" / "streamlit"
HOST = "127.0.0.1"

PROCS: list[subprocess.Popen] = []


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start(cmd: list[str], log_file: Path, env: dict | None = None) -> subprocess.Popen:
    out = open(log_file, "ab")
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        # IDLEGATE_BENCH_VENV is the bench's own; idlegate would read it as a config key.
        env={**{k: v for k, v in os.environ.items() if k != "IDLEGATE_BENCH_VENV"}, **(env or {})},
        start_new_session=True,
        preexec_fn=raise_fd_limit,
    )
    PROCS.append(proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    if proc in PROCS:
        PROCS.remove(proc)


def stop_all() -> None:
    for proc in list(PROCS):
        stop(proc)


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """Nanoseconds on a CPU of each of the process's threads (/proc/PID/task/*/schedstat)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def cpu_ns_since(before: dict[int, int], pid: int) -> int:
    """CPU time the process's threads used since `before` (a thread gone since is left out)."""
    return sum(ns - before.get(tid, 0) for tid, ns in thread_cpu_ns(pid).items())


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def idlegate(args: list[str], port: int, logs: Path, name: str,
             binary: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    proc = start(
        [binary or RELEASE / "idlegate", "--listen", f"{HOST}:{port}", "--log-level", "warn",
         *args],
        logs / f"{name}.log",
        env=env,
    )
    # healthz: in launcher mode idlegate only serves once the app is healthy.
    try:
        wait_http(f"http://{HOST}:{port}/_idlegate/healthz")
    except RuntimeError as err:
        raise RuntimeError(f"{err}; idlegate's output:\n{(logs / f'{name}.log').read_text()}")
    return proc


def fakeapp(args: list[str], logs: Path, name: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = start([RELEASE / "fakeapp", "--listen", f"{HOST}:{port}", *args], logs / f"{name}.log")
    wait_http(f"http://{HOST}:{port}/_stcore/health")
    return proc, port


def wsload(args: list[str]) -> dict:
    out = subprocess.run(
        [str(RELEASE / "wsload"), *args, "--json"],
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=raise_fd_limit,
    )
    return json.loads(out.stdout)


# --- nginx -----------------------------------------------------------------------------


NGINX_CONF = """
worker_processes auto;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 10000; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ text/html html; application/javascript js; }}

    # The fast static upstream every HTTP target ends at.
    server {{
        listen {host}:{static_port};
        root {root};
    }}

    upstream static_app {{ server {host}:{static_port}; keepalive 64; }}
    upstream ws_app {{ server {host}:{ws_port}; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}

    # nginx as a reverse proxy, configured the usual way for Streamlit.
    server {{
        listen {host}:{proxy_port};
        location / {{
            proxy_pass http://static_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
    server {{
        listen {host}:{ws_proxy_port};
        location / {{
            proxy_pass http://ws_app;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
"""


def start_nginx(tmp: Path, files: Path, ws_port: int, logs: Path) -> dict:
    ports = {
        "static_port": free_port(),
        "proxy_port": free_port(),
        "ws_proxy_port": free_port(),
    }
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(tmp=tmp, root=files, host=HOST, ws_port=ws_port, **ports)
    )
    start(["nginx", "-c", conf, "-p", tmp], logs / "nginx.log")
    wait_http(f"http://{HOST}:{ports['static_port']}/index.html")
    wait_http(f"http://{HOST}:{ports['proxy_port']}/index.html")
    return ports


# --- scenarios -------------------------------------------------------------------------


def parse_wrk(text: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
        return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", text, re.M))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": ms(latency["50"]),
        "p99_ms": ms(latency["99"]),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


# Request headers of a browser navigation: idlegate adds its page script to these answers.
NAVIGATION_HEADERS = ["-H", "Sec-Fetch-Dest: document", "-H", "Accept: text/html"]


def run_http(args, tmp: Path, logs: Path, nginx: dict, files: dict) -> dict:
    upstream = f"http://{HOST}:{nginx['static_port']}"
    gw_port, plain_port = free_port(), free_port()
    gw = idlegate(["--upstream", upstream], gw_port, logs, "idlegate-http")
    plain_conf = tmp / "idlegate-noinject.toml"
    plain_conf.write_text("[browser]\ninject = false\n")
    plain = idlegate(["--upstream", upstream, "--config", str(plain_conf)], plain_port, logs,
                     "idlegate-http-noinject")
    targets = {
        "direct": nginx["static_port"],
        "nginx": nginx["proxy_port"],
        "idlegate": gw_port,
        "idlegate_noinject": plain_port,
    }
    baseline = None
    if args.baseline_binary:
        base_port = free_port()
        baseline = idlegate(["--upstream", upstream], base_port, logs, "idlegate-http-baseline",
                            binary=args.baseline_binary)
        targets["idlegate_baseline"] = base_port
    results = []
    order = list(targets)
    for rep in range(args.reps):
        for name in files:
            # index.html is fetched as a page navigation, so idlegate rewrites it.
            extra = NAVIGATION_HEADERS if name.endswith(".html") else []
            for target in order:
                url = f"http://{HOST}:{targets[target]}/{name}"
                out = subprocess.run(
                    ["wrk", f"-t{args.wrk_threads}", f"-c{args.wrk_connections}",
                     f"-d{args.http_seconds}s", "--latency", *extra, url],
                    check=True, capture_output=True, text=True,
                ).stdout
                row = {"target": target, "file": name, "rep": rep, **parse_wrk(out)}
                log(f"http {name} {target} rep {rep}: {row['rps']:.0f} req/s, p99 {row['p99_ms']:.2f} ms")
                results.append(row)
        order = order[1:] + order[:1]  # rotate, so no target always runs first
    stop(gw)
    stop(plain)
    if baseline:
        stop(baseline)
    return {
        "tool": "wrk",
        "threads": args.wrk_threads,
        "connections": args.wrk_connections,
        "duration_s": args.http_seconds,
        "reps": args.reps,
        "files": {name: size for name, size in files.items()},
        "navigation_files": [name for name in files if name.endswith(".html")],
        "results": results,
    }


def run_websocket(args, logs: Path, nginx: dict, echo_port: int) -> dict:
    gw_port = free_port()
    gw = idlegate(["--upstream", f"http://{HOST}:{echo_port}"], gw_port, logs, "idlegate-ws")
    targets = {"direct": echo_port, "nginx": nginx["ws_proxy_port"], "idlegate": gw_port}
    baseline = None
    if args.baseline_binary:
        base_port = free_port()
        baseline = idlegate(["--upstream", f"http://{HOST}:{echo_port}"], base_port, logs,
                            "idlegate-ws-baseline", binary=args.baseline_binary)
        targets["idlegate_baseline"] = base_port
    results = []
    order = list(targets)
    for rep in range(args.reps):
        for target in order:
            report = wsload([
                "rtt", "--url", f"ws://{HOST}:{targets[target]}/_stcore/stream",
                "--connections", str(args.ws_connections), "--messages", str(args.ws_messages),
                "--size", str(args.ws_size),
            ])
            row = {
                "target": target,
                "rep": rep,
                "msgs_per_s": report["msgs_per_s"],
                "rtt_p50_us": report["rtt_us"]["p50"],
                "rtt_p99_us": report["rtt_us"]["p99"],
                "errors": report["errors"],
            }
            log(f"ws {target} rep {rep}: {row['msgs_per_s']:.0f} msg/s, p50 {row['rtt_p50_us']:.0f} us")
            results.append(row)
        order = order[1:] + order[:1]
    stop(gw)
    if baseline:
        stop(baseline)
    return {
        "tool": "wsload rtt",
        "connections": args.ws_connections,
        "messages": args.ws_messages,
        "size_bytes": args.ws_size,
        "reps": args.reps,
        "results": results,
    }


def hold_through(gw: subprocess.Popen, gw_port: int, tabs: int, idle_s: int, samples: bool,
                 ramp: float | None = None) -> dict:
    """Holds `tabs` idle tabs through idlegate; measures its memory and idle CPU.

    `ramp` opens tabs at that many per second: each page load runs the app's script, and a
    tab whose script still runs is busy, not idle, so a real app must not get them all at once.
    """
    before = rss_kib(gw.pid)
    result: dict = {}

    def load() -> None:
        args = [
            "hold", "--url", f"ws://{HOST}:{gw_port}/_stcore/stream",
            "--connections", str(tabs), "--duration", str(idle_s + 10),
            "--expect-end-after", str(idle_s),
        ]
        args += ["--ramp", str(ramp)] if ramp else []
        result["report"] = wsload(args + (["--samples"] if samples else []))

    thread = threading.Thread(target=load)
    thread.start()
    # Opening takes a few seconds; then measure while every tab is idle.
    time.sleep((tabs / ramp if ramp else 0.0) + min(8.0, idle_s / 3))
    held = rss_kib(gw.pid)
    window = min(10.0, idle_s / 3)
    cpu0, t0 = cpu_seconds(gw.pid), time.time()
    time.sleep(window)
    cpu1, t1 = cpu_seconds(gw.pid), time.time()
    thread.join()
    report = result["report"]
    late = report["lateness"]
    out = {
        "tabs": tabs,
        "ramp_per_s": ramp,
        "opened": report["opened"],
        "failed": report["failed"],
        "redirected": report["redirected"],
        "idle_timeout_s": idle_s,
        "rss_before_kib": before,
        "rss_held_kib": held,
        "per_tab_kib": round((held - before) / max(report["opened"], 1), 2),
        "idle_window_s": round(t1 - t0, 2),
        "cpu_idle_seconds": round(cpu1 - cpu0, 3),
        "cpu_idle_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "lateness_ms": {k: late["lateness_ms"][k] for k in ("p50", "p90", "p99", "max")},
        "pct_within_1s": late["pct_within_1s"],
        "early": late["early"],
    }
    if samples:
        out["lateness_samples_ms"] = late.get("samples_ms", [])
    return out


def run_scale(args, logs: Path) -> dict:
    app, app_port = fakeapp([], logs, "fakeapp-scale")
    gw_port = free_port()
    gw = idlegate(["--upstream", f"http://{HOST}:{app_port}", "--idle-timeout", f"{args.scale_idle}s"],
                  gw_port, logs, "idlegate-scale")
    fake = hold_through(gw, gw_port, args.scale_tabs, args.scale_idle, samples=True)
    log(f"scale: {fake['opened']} tabs, {fake['per_tab_kib']} KiB/tab, idle CPU {fake['cpu_idle_percent']}%, "
        f"p99 lateness {fake['lateness_ms']['p99']:.0f} ms")
    stop(gw)
    stop(app)

    gw_port = free_port()
    gw = idlegate(["--idle-timeout", f"{args.streamlit_idle}s", "--", STREAMLIT, "run",
                   ROOT / "tests/apps/counter.py"], gw_port, logs, "idlegate-scale-streamlit")
    real = hold_through(gw, gw_port, args.streamlit_tabs, args.streamlit_idle, samples=False,
                        ramp=args.streamlit_ramp)
    log(f"scale (Streamlit): {real['opened']} tabs, {real['per_tab_kib']} KiB/tab, "
        f"p99 lateness {real['lateness_ms']['p99']:.0f} ms")
    stop(gw)
    return {"fake": fake, "streamlit": real}


def sample_rss(pid_of, seconds: float, interval: float, t0: float, series: list) -> None:
    end = time.time() + seconds
    while time.time() < end:
        try:
            series.append([round(time.time() - t0, 2), round(rss_kib(pid_of()) / 1024, 1)])
        except (OSError, AttributeError):
            pass
        time.sleep(interval)


def memory_run(args, logs: Path, through_idlegate: bool) -> dict:
    hold_s = args.memory_seconds
    app_file = ROOT / "tests/apps/memory.py"
    if through_idlegate:
        port = free_port()
        gw = idlegate(["--idle-timeout", f"{args.memory_idle}s", "--", STREAMLIT, "run", app_file],
                      port, logs, "idlegate-memory")
        pid = children(gw.pid)[0]
        procs = [gw]
    else:
        port = free_port()
        app = start([STREAMLIT, "run", app_file, "--server.port", port, "--server.address", HOST,
                     "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                    logs / "streamlit-memory.log")
        wait_http(f"http://{HOST}:{port}/_stcore/health")
        pid = app.pid
        procs = [app]
    time.sleep(1)
    t0 = time.time()
    series: list = []
    sampler = threading.Thread(target=sample_rss, args=(lambda: pid, hold_s + 5, 0.5, t0, series))
    sampler.start()
    time.sleep(2)
    started = time.time() - t0
    report = wsload(["hold", "--url", f"ws://{HOST}:{port}/_stcore/stream",
                     "--connections", str(args.memory_sessions), "--duration", str(hold_s - 3)])
    sampler.join()
    for proc in procs:
        stop(proc)
    last = report.get("last_redirect_unix_s")
    return {"series": series, "started_at_s": started,
            "ended_at_s": (last - t0) if last else None,
            "redirected": report["redirected"]}


def run_memory(args, logs: Path) -> dict:
    without = memory_run(args, logs, through_idlegate=False)
    log(f"memory without idlegate: {len(without['series'])} samples")
    with_gw = memory_run(args, logs, through_idlegate=True)
    log(f"memory with idlegate: ended at {with_gw['ended_at_s']}")

    def baseline(series, before):
        return statistics.median([mib for t, mib in series if t < before] or [series[0][1]])

    base_w = baseline(with_gw["series"], with_gw["started_at_s"])
    peak_w = max(mib for _, mib in with_gw["series"])
    ended = with_gw["ended_at_s"]
    after = [mib for t, mib in with_gw["series"] if ended is not None and t <= ended + 30]
    given_back = 100 * (peak_w - after[-1]) / (peak_w - base_w) if after and peak_w > base_w else 0.0

    base_o = baseline(without["series"], without["started_at_s"])
    peak_o = max(mib for _, mib in without["series"])
    given_back_o = 100 * (peak_o - without["series"][-1][1]) / (peak_o - base_o) if peak_o > base_o else 0.0
    return {
        "sessions": args.memory_sessions,
        "blob_mib": 50,
        "idle_timeout_s": args.memory_idle,
        "disconnected_session_ttl_s": 20,
        "baseline_mib": base_w,
        "peak_mib": peak_w,
        "ended_at_s": ended,
        "with_idlegate_given_back_pct_30s": round(given_back, 1),
        "without_idlegate_given_back_pct": round(given_back_o, 1),
        "series": {"without_idlegate": without["series"], "with_idlegate": with_gw["series"]},
    }


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope_per_minute(points: list) -> float | None:
    """Least-squares slope of [[seconds, value], ...], in value units per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / var


def run_soak(args, logs: Path) -> dict:
    """Tabs in churn for --minutes through idlegate; its RSS and descriptors over time."""
    seconds = args.minutes * 60
    idle = args.soak_idle
    # Mean tab lifetime that keeps --tabs-at-once open at the pace of --total over the run:
    # active for active_mean on average, then closing itself (close_share of the tabs, on
    # average idle/2 later) or ended by idlegate after the idle timeout.
    lifetime = args.tabs_at_once * seconds / args.total
    active_mean = max(0.0, lifetime - idle * (1 - args.soak_close_share / 2))
    app, app_port = fakeapp([], logs, "fakeapp-soak")
    gw_port = free_port()
    conf = logs / "idlegate-soak.toml"
    # Every tab comes from 127.0.0.1: lift the per-address cap, size the total one. Ended
    # tabs are remembered for --soak-ended-ttl, so that the bounded memory they take fills
    # early in the run and what remains is the slope of everything else.
    conf.write_text(f"[limits]\nmax_connections_per_address = 0\n"
                    f"max_connections = {args.tabs_at_once + 1000}\n"
                    f"[tabs]\nended_notice_ttl = \"{args.soak_ended_ttl}\"\n")
    gw = idlegate(["--upstream", f"http://{HOST}:{app_port}", "--idle-timeout", f"{idle}s",
                   "--config", str(conf)], gw_port, logs, "idlegate-soak")
    time.sleep(1)
    t0 = time.time()
    rss_start, fd_start, cpu_start = rss_kib(gw.pid), fd_count(gw.pid), cpu_seconds(gw.pid)
    series: list = [[0.0, rss_start, fd_start]]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(args.soak_sample):
            try:
                series.append([round(time.time() - t0, 1), rss_kib(gw.pid), fd_count(gw.pid)])
            except OSError:
                pass

    sampler = threading.Thread(target=sample)
    sampler.start()
    log(f"soak: {args.tabs_at_once} tabs at once, {args.total} in all over {args.minutes} min, "
        f"idle timeout {idle} s, mean active {active_mean:.0f} s")
    with open(logs / "wsload-soak.log", "ab") as progress:
        out = subprocess.run(
            [str(RELEASE / "wsload"), "churn", "--url", f"ws://{HOST}:{gw_port}/_stcore/stream",
             "--connections", str(args.tabs_at_once), "--total", str(args.total),
             "--duration", str(seconds), "--idle-timeout", str(idle),
             "--active-mean", f"{active_mean:.1f}", "--activity-every", str(args.soak_activity),
             "--close-share", str(args.soak_close_share), "--json"],
            check=True, stdout=subprocess.PIPE, stderr=progress, text=True,
            preexec_fn=raise_fd_limit,
        )
    report = json.loads(out.stdout)
    churn_s = time.time() - t0
    # Every tab has ended on the load side; wait (up to 30 s) for idlegate's descriptors.
    deadline = time.time() + 30
    while fd_count(gw.pid) > fd_start and time.time() < deadline:
        time.sleep(0.5)
    done.set()
    sampler.join()
    rss_end, fd_end = rss_kib(gw.pid), fd_count(gw.pid)
    cpu = cpu_seconds(gw.pid) - cpu_start
    series.append([round(time.time() - t0, 1), rss_end, fd_end])
    stop(gw)
    stop(app)
    second_half = [[t, rss] for t, rss, _ in series if churn_s / 2 <= t <= churn_s]
    slope = slope_per_minute(second_half)
    result = {
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "minutes": args.minutes,
        "tabs_at_once": args.tabs_at_once,
        "total_requested": args.total,
        "idle_timeout_s": idle,
        "close_share": args.soak_close_share,
        "ended_notice_ttl": args.soak_ended_ttl,
        "active_mean_s": round(active_mean, 1),
        "activity_every_s": args.soak_activity,
        "sample_every_s": args.soak_sample,
        "churn_s": round(churn_s, 1),
        "opened": report["opened"],
        "failed": report["failed"],
        "ended": report["ended"],
        "peak_open": report["peak_open"],
        "activity_messages": report["activity_messages"],
        "top_errors": report["top_errors"],
        "rss_start_kib": rss_start,
        "rss_peak_kib": max(r for _, r, _ in series),
        "rss_end_kib": rss_end,
        "rss_slope_kib_per_min": None if slope is None else round(slope, 2),
        "fd_start": fd_start,
        "fd_peak": max(f for _, _, f in series),
        "fd_end": fd_end,
        "cpu_seconds": round(cpu, 1),
        "series": series,
    }
    log(f"soak: {report['opened']} tabs opened, ended {report['ended']}; RSS {rss_start} -> "
        f"{result['rss_peak_kib']} (peak) -> {rss_end} KiB, slope {result['rss_slope_kib_per_min']} "
        f"KiB/min; fds {fd_start} -> {fd_end}")
    return result


# --- store: idlegate with Redis ----------------------------------------------------------


class Resp:
    """The least Redis client: one connection, commands in RESP, replies parsed."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")
        # Bytes of the requests sent, so a window's input bytes can leave them out.
        self.sent_bytes = 0

    def call(self, *args: str):
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        msg = b"".join(parts)
        self.sent_bytes += len(msg)
        self.sock.sendall(msg)
        return self._read()

    def _read(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"Redis: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.reader.read(n + 2)[:-2].decode()
        if kind == b"*":
            return [self._read() for _ in range(int(rest))]
        raise RuntimeError(f"Redis: unexpected reply {line!r}")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


# Commands the bench sends itself (never idlegate): left out of every count.
OWN_COMMANDS = {"info", "ping"}


def redis_stats(r: Resp) -> dict:
    """Calls per command (INFO commandstats), total_commands_processed, input bytes."""
    t = time.time()
    text = r.call("INFO", "stats", "commandstats")
    stats, calls = {}, {}
    for line in text.splitlines():
        m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
        if m:
            calls[m.group(1)] = int(m.group(2))
        elif ":" in line:
            k, v = line.split(":", 1)
            stats[k] = v.strip()
    return {"t": t, "calls": calls, "processed": int(stats["total_commands_processed"]),
            "input_bytes": int(stats["total_net_input_bytes"]), "own_bytes": r.sent_bytes}


def redis_window(a: dict, b: dict, per_beat: float | None = None) -> dict:
    """What idlegate sent Redis between two redis_stats() readings.

    Heartbeats are counted by their ZADD to the replicas set: with sign-in off (no logins
    to index) the heartbeat is the only command that adds to a sorted set.
    """
    names = set(a["calls"]) | set(b["calls"])
    delta = {n: b["calls"].get(n, 0) - a["calls"].get(n, 0) for n in sorted(names)}
    own = sum(delta.get(n, 0) for n in OWN_COMMANDS)
    by_command = {n.upper(): d for n, d in delta.items() if d and n not in OWN_COMMANDS}
    commands = sum(by_command.values())
    beats = by_command.get("ZADD", 0)
    out = {
        "seconds": round(b["t"] - a["t"], 2),
        "commands": commands,
        # Cross-check: total_commands_processed moved by the same count plus the bench's own.
        "processed_delta": b["processed"] - a["processed"],
        "own_commands": own,
        "by_command": by_command,
        "input_bytes": (b["input_bytes"] - a["input_bytes"]) - (b["own_bytes"] - a["own_bytes"]),
        "heartbeats": beats,
    }
    if per_beat is not None:
        out["net_of_heartbeats"] = round(commands - beats * per_beat, 1)
    return out


def start_redis(logs: Path) -> tuple[subprocess.Popen, int, Resp]:
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("the store scenario needs redis-server (Debian: apt-get install redis-server)")
    port = free_port()
    proc = start([binary, "--save", "", "--appendonly", "no", "--bind", HOST, "--port", port],
                 logs / "redis.log")
    deadline = time.time() + 10
    while True:
        try:
            r = Resp(port)
            if r.call("PING") == "PONG":
                return proc, port, r
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {port}")
            time.sleep(0.1)


def hold_in_background(port: int, tabs: int, seconds: float, *extra: str) -> subprocess.Popen:
    """Starts `wsload hold`; returns once every tab has opened (or failed to)."""
    proc = subprocess.Popen(
        [str(RELEASE / "wsload"), "hold", "--url", f"ws://{HOST}:{port}/_stcore/stream",
         "--connections", str(tabs), "--duration", str(seconds), *extra, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=raise_fd_limit,
        start_new_session=True,
    )
    PROCS.append(proc)
    seen = []
    while True:
        line = proc.stderr.readline()
        if not line:
            out, err = proc.communicate()
            raise RuntimeError(f"wsload hold ended before its tabs opened: {''.join(seen)}{err}")
        seen.append(line)
        if "connections open after" in line:
            return proc


def hold_report(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    PROCS.remove(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"wsload hold failed: {err}")
    return json.loads(out)


def idlegate_build(binary: Path) -> str:
    """The commit the idlegate binary was built from, as far as git and file times tell.

    Uncommitted changes in crates/ count only when older than the binary (so part of it);
    a HEAD committed after the binary was built is named as what the binary predates.
    """
    def git(*a: str) -> str:
        # Not stripped: a status line starts with a space (" M path").
        return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True,
                              text=True).stdout.rstrip("\n")
    built = binary.stat().st_mtime
    head = git("rev-parse", "--short=12", "HEAD") or "?"
    head_time = int(git("log", "-1", "--format=%ct", "HEAD") or 0)
    label = head if head_time <= built else f"a commit before {head}"
    changed = [ROOT / line[3:] for line in git("status", "--porcelain", "crates").splitlines()]
    if any(p.is_file() and p.stat().st_mtime <= built for p in changed):
        label += " + changes not committed in crates/"
    when = dt.datetime.fromtimestamp(built, dt.timezone.utc).isoformat(timespec="seconds")
    return f"{label} (binary of {when})"


def run_store(args, logs: Path) -> dict:
    """idlegate with the memory store and with Redis, and a direct connection."""
    t_start = time.time()
    build = idlegate_build(RELEASE / "idlegate")
    # Other work on the machine shows here (the latency figures share its 2 cores).
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    redis, redis_port, r = start_redis(logs)
    version = re.search(r"redis_version:(\S+)", r.call("INFO", "server")).group(1)
    echo, echo_port = fakeapp(["--echo"], logs, "fakeapp-store")
    tabs = args.store_tabs
    conf = logs / "idlegate-store.toml"
    # Every tab comes from 127.0.0.1: lift the per-address cap.
    conf.write_text("[limits]\nmax_connections_per_address = 0\n")
    grace = 2
    # The idle timeout is long enough that no tab ends during the run; a closed tab is gone
    # after a short reconnect grace, so its end is written to Redis soon after.
    common = ["--upstream", f"http://{HOST}:{echo_port}", "--idle-timeout", "10m",
              "--reconnect-grace", f"{grace}s", "--config", str(conf)]
    mem_port, redis_gw_port = free_port(), free_port()
    mem = idlegate(common, mem_port, logs, "idlegate-store-memory")
    gw = idlegate(common, redis_gw_port, logs, "idlegate-store-redis",
                  env={"IDLEGATE_STORE__URL": f"redis://{HOST}:{redis_port}/0",
                       "IDLEGATE_STORE__KEY_PREFIX": "bench:"})
    settle = args.store_settle
    time.sleep(settle)  # the replica's start: reading the store, its first heartbeat

    # 1. Redis commands. The replica alone first: its heartbeat.
    windows: dict = {}
    log(f"store: the Redis replica alone for {args.store_idle} s")
    a = redis_stats(r)
    time.sleep(args.store_idle)
    b = redis_stats(r)
    windows["alone"] = redis_window(a, b)
    beats = windows["alone"]["heartbeats"]
    per_beat = windows["alone"]["commands"] / beats if beats else None
    windows["alone"] = redis_window(a, b, per_beat)
    # A burst of new tabs (each with its page load), then the same tabs idle.
    log(f"store: {tabs} new tabs, then idle for {args.store_idle} s")
    a = redis_stats(r)
    proc = hold_in_background(redis_gw_port, tabs, settle + args.store_idle + 2)
    time.sleep(settle)  # the page loads' activity flushed (every 2 s)
    b = redis_stats(r)
    time.sleep(args.store_idle)
    c = redis_stats(r)
    held = hold_report(proc)
    time.sleep(grace + settle)  # closed tabs end after the reconnect grace
    d = redis_stats(r)
    windows["burst"] = {**redis_window(a, b, per_beat), "tabs": held["opened"]}
    windows["idle"] = {**redis_window(b, c, per_beat), "tabs": held["opened"]}
    windows["close"] = {**redis_window(c, d, per_beat), "tabs": held["opened"]}
    if held["failed"] or held["ended"]:
        log(f"store: {held['failed']} tabs failed to open, {held['ended']} ended early")
    # Tabs with a person's activity.
    active, every = args.store_active_tabs, args.store_activity_every
    log(f"store: {active} tabs with a person's rerun every {every} s for {args.store_active_seconds} s")
    proc = hold_in_background(redis_gw_port, active, settle + args.store_active_seconds + 1,
                              "--activity-every", str(every))
    time.sleep(settle)
    a = redis_stats(r)
    time.sleep(args.store_active_seconds)
    b = redis_stats(r)
    act = hold_report(proc)
    windows["active"] = {**redis_window(a, b, per_beat), "tabs": act["opened"],
                         "activity_every_s": every}
    time.sleep(grace + settle)

    def per_min(w: dict, n: float | None = None) -> float | None:
        value = w.get("net_of_heartbeats", w["commands"]) if n else w["commands"]
        if value is None or not w["seconds"]:
            return None
        return round(value / (n or 1) / (w["seconds"] / 60), 3)

    costs = {
        "per_heartbeat": None if per_beat is None else round(per_beat, 2),
        "per_replica_per_min": per_min(windows["alone"]),
        "per_idle_tab_per_min": per_min(windows["idle"], windows["idle"]["tabs"] or None)
        if per_beat is not None else None,
        "per_new_tab": round(windows["burst"]["net_of_heartbeats"] / max(windows["burst"]["tabs"], 1), 2)
        if per_beat is not None else None,
        "per_closed_tab": round(windows["close"]["net_of_heartbeats"] / max(windows["close"]["tabs"], 1), 2)
        if per_beat is not None else None,
        "per_active_tab_per_min": per_min(windows["active"], windows["active"]["tabs"] or None)
        if per_beat is not None else None,
    }
    log(f"store: Redis commands: {costs}")

    # 2. Latency: a person's reruns, and opening tabs one at a time, in alternating order.
    # Also the CPU time idlegate (and Redis) spend on them.
    targets = {"direct": echo_port, "memory": mem_port, "redis": redis_gw_port}
    procs = {"direct": None, "memory": mem, "redis": gw}
    results = []
    order = list(targets)
    last_end = {t: 0.0 for t in targets}
    for rep in range(args.store_reps):
        for target in order:
            # The tabs this target's last runs closed end after the reconnect grace: not
            # inside this target's next measurement.
            time.sleep(max(0.0, last_end[target] + grace + 0.5 - time.time()))
            url = f"ws://{HOST}:{targets[target]}/_stcore/stream"
            proc = procs[target]
            cpu0 = thread_cpu_ns(proc.pid) if proc else None
            rtt = wsload(["rtt", "--url", url, "--person",
                          "--connections", str(args.ws_connections),
                          "--messages", str(args.ws_messages), "--size", str(args.ws_size)])
            rtt_cpu = cpu_ns_since(cpu0, proc.pid) if proc else None
            # One handshake at a time: the time to open a tab, without queueing.
            cpu0 = thread_cpu_ns(proc.pid) if proc else None
            rcpu0 = thread_cpu_ns(redis.pid)
            opened = wsload(["hold", "--url", url, "--connections", str(tabs),
                             "--connect-concurrency", "1", "--duration", "0.2"])
            open_cpu = cpu_ns_since(cpu0, proc.pid) if proc else None
            redis_cpu = cpu_ns_since(rcpu0, redis.pid)
            last_end[target] = time.time()
            n_open = max(opened["opened"], 1)
            row = {
                "target": target,
                "rep": rep,
                "msgs_per_s": rtt["msgs_per_s"],
                "rtt_p50_us": rtt["rtt_us"]["p50"],
                "rtt_p99_us": rtt["rtt_us"]["p99"],
                "errors": rtt["errors"] + opened["failed"],
                "connect_p50_us": opened["connect_us"]["p50"],
                "connect_p99_us": opened["connect_us"]["p99"],
                "connects": opened["connect_us"]["count"],
                # idlegate's CPU per rerun relayed (the rtt run's 10 opens included), and
                # per tab opened, loaded and held 0.2 s (its close comes after the grace).
                "cpu_us_per_rerun": None if rtt_cpu is None
                else round(rtt_cpu / 1e3 / max(rtt["count"], 1), 3),
                "cpu_us_per_new_tab": None if open_cpu is None else round(open_cpu / 1e3 / n_open, 1),
                "redis_cpu_us_per_new_tab": round(redis_cpu / 1e3 / n_open, 1),
            }
            log(f"store {target} rep {rep}: rtt p50 {row['rtt_p50_us']:.0f} us, p99 "
                f"{row['rtt_p99_us']:.0f} us; open p50 {row['connect_p50_us']:.0f} us, "
                f"p99 {row['connect_p99_us']:.0f} us")
            results.append(row)
        order = order[1:] + order[:1]
    for proc in (gw, mem, echo, redis):
        stop(proc)
    r.close()
    return {
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "redis_version": version,
        "idlegate_build": build,
        "reps": args.store_reps,
        "connections": args.ws_connections,
        "messages": args.ws_messages,
        "size_bytes": args.ws_size,
        "tabs": tabs,
        "idle_s": args.store_idle,
        "reconnect_grace_s": grace,
        "results": results,
        "redis": {"windows": windows, **costs},
        "elapsed_s": round(time.time() - t_start, 1),
        "loadavg_before": load_before,
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
    }


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))

    def version(cmd: list[str], pattern: str) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True)
            match = re.search(pattern, out.stdout + out.stderr)
            return match.group(1) if match else "?"
        except OSError:
            return "?"

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": "Debian " + Path("/etc/debian_version").read_text().strip()
        if Path("/etc/debian_version").exists() else platform.platform(),
        "idlegate": version([str(RELEASE / "idlegate"), "--version"], r"idlegate (\S+)"),
        "nginx": version(["nginx", "-v"], r"nginx/(\S+)"),
        "streamlit": version([str(STREAMLIT), "version"], r"version (\S+)"),
        "wrk": version(["wrk", "-v"], r"wrk (\S+)"),
        "fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/latest.json")
    parser.add_argument("--only", nargs="*",
                        choices=["http", "websocket", "scale", "memory", "store", "soak"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--http-seconds", type=int, default=5)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk-connections", type=int, default=50)
    parser.add_argument("--ws-connections", type=int, default=10)
    parser.add_argument("--ws-messages", type=int, default=2000)
    parser.add_argument("--ws-size", type=int, default=256)
    parser.add_argument("--scale-tabs", type=int, default=9000)
    parser.add_argument("--scale-idle", type=int, default=30)
    parser.add_argument("--streamlit-tabs", type=int, default=100)
    parser.add_argument("--streamlit-idle", type=int, default=20)
    parser.add_argument("--streamlit-ramp", type=float, default=5.0)
    parser.add_argument("--memory-sessions", type=int, default=20)
    parser.add_argument("--memory-idle", type=int, default=10)
    parser.add_argument("--memory-seconds", type=int, default=60)
    parser.add_argument("--minutes", type=float, default=30.0, help="soak: how long")
    parser.add_argument("--tabs-at-once", type=int, default=4000,
                        help="soak: most tabs open at once (idlegate holds two sockets per tab)")
    parser.add_argument("--total", type=int, default=100_000, help="soak: tabs opened in all")
    parser.add_argument("--soak-idle", type=int, default=20, help="soak: idle timeout, seconds")
    parser.add_argument("--soak-close-share", type=float, default=0.3,
                        help="soak: share of tabs that close themselves before the idle end")
    parser.add_argument("--soak-activity", type=float, default=15.0,
                        help="soak: seconds between a person's reruns while a tab is active")
    parser.add_argument("--soak-ended-ttl", default="5m",
                        help="soak: tabs.ended_notice_ttl, how long ended tabs are remembered "
                             "(idlegate's default 1h holds at most 100,000 ids, about 13 MiB)")
    parser.add_argument("--soak-sample", type=float, default=5.0,
                        help="soak: seconds between samples of idlegate's RSS and descriptors")
    parser.add_argument("--store-reps", type=int, default=10,
                        help="store: repetitions of the latency runs (order rotates each time)")
    parser.add_argument("--store-tabs", type=int, default=200,
                        help="store: tabs in the burst and the idle window, and opened one "
                             "at a time per target and repetition for the handshake time")
    parser.add_argument("--store-idle", type=int, default=60,
                        help="store: seconds of each Redis count window (the replica alone, "
                             "then its tabs idle)")
    parser.add_argument("--store-settle", type=float, default=3.0,
                        help="store: seconds after tabs open before counting (a flush is 2 s)")
    parser.add_argument("--store-active-tabs", type=int, default=50,
                        help="store: tabs sending a person's reruns in the activity window")
    parser.add_argument("--store-activity-every", type=float, default=1.0,
                        help="store: seconds between a person's reruns in the activity window")
    parser.add_argument("--store-active-seconds", type=int, default=20,
                        help="store: seconds of the activity window")
    parser.add_argument("--baseline-binary", type=Path, default=None,
                        help="another idlegate binary (an earlier build) measured in the same "
                             "http and websocket runs as the target 'idlegate_baseline', for "
                             "an A/B of two versions")
    args = parser.parse_args()
    only = set(args.only or ["http", "websocket", "scale", "memory"])
    raise_fd_limit()

    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    notes = []
    if "soak" in only and args.tabs_at_once * 2 + 200 > fd_limit:
        capped = (fd_limit - 200) // 2
        notes.append(f"The soak holds {capped} tabs at once instead of {args.tabs_at_once} "
                     f"(open-file limit {fd_limit}, two sockets per tab in idlegate).")
        args.tabs_at_once = capped
    if args.scale_tabs * 2 + 100 > fd_limit:
        capped = (fd_limit - 100) // 2
        notes.append(f"The open-file limit here is {fd_limit}; idlegate holds two sockets per tab "
                     f"(browser and app), so the scale run holds {capped} tabs instead of {args.scale_tabs}.")
        args.scale_tabs = capped
    notes.append("Load generators, upstreams, nginx and idlegate share the same 2 cores, so absolute "
                 "figures are lower than on dedicated machines; compare the ratios.")

    results: dict = {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "machine": machine(), "notes": notes}
    if args.only and args.out.is_file():
        # Keep the sections not run this time (and when and where they were measured).
        previous = json.loads(args.out.read_text())
        # The machine recorded is the one the kept sections ran on; the sections run now
        # record theirs inside them.
        kept = [n for n in previous.get("notes", []) if n not in notes]
        results = {**previous, "notes": kept + notes, "_fresh_machine": results["machine"]}
    with tempfile.TemporaryDirectory(prefix="idlegate-bench-") as tmp_name:
        tmp = Path(tmp_name)
        # nginx's workers drop root; they must be able to read the files served.
        tmp.chmod(0o755)
        logs = tmp / "logs"
        logs.mkdir()
        files_dir = tmp / "www"
        files_dir.mkdir()
        index = (VENV / "lib").glob("python3*/site-packages/streamlit/static/index.html")
        (files_dir / "index.html").write_bytes(next(index).read_bytes())
        (files_dir / "asset.js").write_bytes(b"/* asset */\n" + b"x" * (2048 - 12))
        files = {p.name: p.stat().st_size for p in sorted(files_dir.iterdir())}
        # The app's health check, which idlegate looks for under its base path at start.
        (files_dir / "_stcore").mkdir()
        (files_dir / "_stcore" / "health").write_text("ok")
        try:
            if only & {"http", "websocket"}:
                echo, echo_port = fakeapp(["--echo"], logs, "fakeapp-echo")
                nginx = start_nginx(tmp, files_dir, echo_port, logs)
            if "http" in only:
                results["http"] = run_http(args, tmp, logs, nginx, files)
            if "websocket" in only:
                results["websocket"] = run_websocket(args, logs, nginx, echo_port)
            stop_all()
            if "store" in only:
                results["store"] = run_store(args, logs)
            if "scale" in only:
                results["scale"] = run_scale(args, logs)
            if "memory" in only:
                results["memory"] = run_memory(args, logs)
            if "soak" in only:
                results["soak"] = run_soak(args, logs)
        finally:
            stop_all()
    fresh = results.pop("_fresh_machine", None)
    if fresh:
        for section in only:
            if isinstance(results.get(section), dict):
                results[section]["machine"] = fresh
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
