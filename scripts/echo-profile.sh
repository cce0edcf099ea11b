#!/usr/bin/env bash
# Where an echo server's CPU goes, per request: runs the lab's echo peers (`lab internal-peer
# echo-server` / `echo-client`) once per LAB:IMPL, samples the server with `perf record -e
# cpu-clock` (a software event: it works without hardware counters) for 2 s in the middle of
# a 3 s measured window, and prints the server's CPU per request split into user and kernel
# time and the symbols that took most of it, in nanoseconds per request (each symbol's share
# of the samples times the server's CPU per request over the window).
# For finding what separates two servers, or two builds of one, at a given load.
#
# Usage: scripts/echo-profile.sh CONNS LAB:IMPL [LAB:IMPL ...]
#   e.g. scripts/echo-profile.sh 10000 target/release/lab:lwp-mn target/release/lab:tokio
# Environment: TOP (symbols shown, default 15); KEEP (a directory to keep each run's
# perf.data in, for `perf annotate -i`).
set -euo pipefail
. "$(dirname "$0")/echo-common.sh"
if [ $# -lt 2 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
conns=$1
shift
case "$conns" in *[!0-9]*|"") echo "echo-profile.sh: CONNS must be a number" >&2; exit 2;; esac
command -v perf >/dev/null || { echo "echo-profile.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in "$@"; do
    lab=${spec%%:*} impl=${spec#*:}
    [ -x "$lab" ] || { echo "echo-profile.sh: $lab is not an executable" >&2; exit 2; }
    start_echo_run "$conns" "$lab" "$impl" "$work" || { echo "$spec: the server did not start"; continue; }
    sleep_into_window "$conns"
    perf record -q -e cpu-clock -F 4000 -o "$work/perf.data" -p "$server" -- sleep 2 >/dev/null 2>&1 || true
    finish_echo_run
    perf report -i "$work/perf.data" --no-children --sort sym --stdio 2>/dev/null >"$work/report" || true
    if [ -n "${KEEP:-}" ]; then
        mkdir -p "$KEEP" && cp "$work/perf.data" "$KEEP/perf-$impl-$(date +%s).data"
    fi
    python3 - "$spec" "$work/result" "$work/report" "${TOP:-15}" <<'PY'
import json, re, sys
spec, result, report, top = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
try:
    d = json.load(open(result))
except ValueError:
    print(f"{spec}: no result from the load generator"); sys.exit()
if not d["requests"] or d.get("server_cpu_ns") is None:
    print(f"{spec}: no requests, or no server CPU time"); sys.exit()
per_req = d["server_cpu_ns"] / d["requests"]
syms = []
for line in open(report):
    m = re.match(r"\s+([0-9.]+)%\s+\[(.)\]\s+(.*)", line)
    if m:
        syms.append((float(m.group(1)) / 100 * per_req, "kernel" if m.group(2) == "k" else "user", m.group(3).strip()))
if not syms:
    print(f"{spec}: perf recorded no samples (is perf allowed? try as root)"); sys.exit()
user = sum(v for v, side, _ in syms if side == "user")
kernel = sum(v for v, side, _ in syms if side == "kernel")
print(f"{spec}: {d['requests'] / (d['window_ns'] / 1e9):.0f} req/s, server CPU {per_req:.0f} ns/request "
      f"(user {user:.0f}, kernel {kernel:.0f})")
for v, side, name in sorted(syms, reverse=True)[:top]:
    print(f"  {v:6.0f} ns  {side:6}  {name[:100]}")
PY
done
