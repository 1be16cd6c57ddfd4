#!/usr/bin/env python3
"""TLS load benchmark: the release server with the shipped config (a) against the same server
with every rule off (b), measured in one run and side by side.

    python3 benches/load.py [--duration 10] [--connections 16] [--rate 1000]

It builds the release binary, installs the load generator oha (crates.io) when missing, and
drives each server over HTTPS with keep-alive using a mix of AdmissionReview bodies recorded
from a real kube-apiserver (tests/fixtures/apiserver). It reports throughput at saturation,
latency percentiles at a fixed rate (oha's latency correction, so queueing is not hidden),
peak resident memory (VmHWM) and the time from process start to ready, then the ratios a/b.
Ratios are what to judge: this machine is shared and noisy.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "failover-guard")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "apiserver")
# The mix: what the API server sends for a typical apply (mutate + validate of
# DestinationRules and ServiceEntries, some patched, some denied).
MIX = [
    ("0000-mutate.json", "/mutate"),
    ("0001-validate.json", "/validate"),
    ("0010-mutate.json", "/mutate"),
    ("0011-validate.json", "/validate"),
    ("0013-validate.json", "/validate"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def oha():
    path = shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha")
    if not os.path.exists(path):
        print("installing oha from crates.io (one time)...", file=sys.stderr)
        subprocess.run(["cargo", "install", "oha", "--locked"], check=True)
        path = os.path.expanduser("~/.cargo/bin/oha")
    return path


def start(workdir, name, rules_off):
    config = open(os.path.join(ROOT, "deploy", "base", "config.yaml")).read()
    if rules_off:
        ids = subprocess.run([BIN, "explain"], capture_output=True, text=True, check=True).stdout.split()
        ids = [i for i in ids if i.startswith("FG") and len(i) == 5]
        config = config.replace("rules: {}", "rules: {" + ", ".join(f"{i}: off" for i in ids) + "}")
    cfg = os.path.join(workdir, f"{name}.yaml")
    open(cfg, "w").write(config)
    port, probe = free_port(), free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [BIN, "serve", "--config", cfg, "--world", "none",
         "--tls-cert", os.path.join(workdir, "tls.crt"), "--tls-key", os.path.join(workdir, "tls.key"),
         "--listen", f"127.0.0.1:{port}", "--probe-listen", f"127.0.0.1:{probe}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "FAILOVER_GUARD_LOG": "error"},
    )
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{probe}/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() - started > 20:
            raise SystemExit(f"{name} did not become ready")
        time.sleep(0.001)
    ready_ms = (time.monotonic() - started) * 1000
    return proc, port, ready_ms


def run_oha(port, ca, body, path, extra):
    cmd = [oha(), "--no-tui", "--output-format", "json", "--cacert", ca, "-m", "POST",
           "-H", "content-type: application/json", "-D", body,
           f"https://localhost:{port}{path}"] + extra
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mix_run(port, ca, extra_for_each):
    procs = [run_oha(port, ca, os.path.join(FIXTURES, f), p, extra_for_each) for f, p in MIX]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"oha failed: {err}")
        results.append(json.loads(out))
    return results


def status_ok(result):
    codes = result.get("statusCodeDistribution", {})
    return all(code == "200" for code in codes)


def saturation(port, ca, duration, connections):
    per = max(1, connections // len(MIX))
    results = mix_run(port, ca, ["-z", f"{duration}s", "-c", str(per)])
    assert all(status_ok(r) for r in results), [r.get("statusCodeDistribution") for r in results]
    return sum(r["summary"]["requestsPerSec"] for r in results)


def fixed_rate(port, ca, duration, rate, corrected):
    per = rate / len(MIX)
    extra = ["-z", f"{duration}s", "-c", "2", "-q", f"{per:.1f}"] + (["--latency-correction"] if corrected else [])
    results = mix_run(port, ca, extra)
    assert all(status_ok(r) for r in results)
    # The worst component of the mix at each percentile (a conservative merge).
    pick = lambda key: max(r["latencyPercentiles"][key] for r in results) * 1000
    return {"p50": pick("p50"), "p99": pick("p99"), "p999": pick("p99.9")}


def peak_rss_mib(proc):
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=15, help="connections at saturation (split over the mix)")
    parser.add_argument("--rate", type=int, default=1000, help="requests/s for the latency measurement")
    args = parser.parse_args()

    print("building the release binary...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    oha()
    work = tempfile.mkdtemp(prefix="fg-load-")
    subprocess.run([BIN, "certs", "--out", work, "--extra-name", "localhost", "--extra-name", "127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ca = os.path.join(work, "ca.crt")

    rows = {}
    for name, rules_off in [("a: shipped config", False), ("b: every rule off", True)]:
        proc, port, ready = start(work, name[0], rules_off)
        try:
            mix_run(port, ca, ["-n", "200", "-c", "2"])  # warm-up
            rps = saturation(port, ca, args.duration, args.connections)
            latency = fixed_rate(port, ca, args.duration, args.rate, corrected=False)
            # With oha's latency correction, delays of the generator itself (it shares the
            # two cores with the server) count too: an upper bound, reported beside.
            corrected = fixed_rate(port, ca, args.duration, args.rate, corrected=True)
            rows[name] = {"rps": rps, **latency, "p99c": corrected["p99"], "rss": peak_rss_mib(proc), "ready": ready}
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    a, b = rows["a: shipped config"], rows["b: every rule off"]
    print(f"\nmachine: {os.cpu_count()} cores; {args.connections} connections at saturation; "
          f"{args.rate} req/s for latency; {args.duration}s each; mix of {len(MIX)} recorded API-server requests\n")
    print(f"| {'':22} | {'throughput req/s':>16} | {'p50 ms':>8} | {'p99 ms':>8} | {'p99.9 ms':>8} | {'p99 corr. ms':>12} | {'peak RSS MiB':>12} | {'ready ms':>8} |")
    print(f"|{'-'*24}|{'-'*18}|{'-'*10}|{'-'*10}|{'-'*10}|{'-'*14}|{'-'*14}|{'-'*10}|")
    for name, r in rows.items():
        print(f"| {name:22} | {r['rps']:16.0f} | {r['p50']:8.3f} | {r['p99']:8.3f} | {r['p999']:8.3f} | {r['p99c']:12.3f} | {r['rss']:12.1f} | {r['ready']:8.1f} |")
    ratio = lambda k: a[k] / b[k] if b[k] else float("nan")
    print(f"| {'ratio a/b':22} | {ratio('rps'):16.2f} | {ratio('p50'):8.2f} | {ratio('p99'):8.2f} | {ratio('p999'):8.2f} | {ratio('p99c'):12.2f} | {ratio('rss'):12.2f} | {ratio('ready'):8.2f} |")
    print("\ntargets: throughput a/b >= 0.70; p99 a/b <= 1.5 and a's p99 < 2 ms at 1,000 req/s; peak RSS < 32 MiB; ready < 200 ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
