#!/usr/bin/env bash
# System calls and context switches per request of an echo server: runs the lab's echo peers
# (`lab internal-peer echo-server` / `echo-client`) once per LAB:IMPL and counts the server's
# system-call entries with `perf stat` on the syscalls tracepoints (software events: no
# hardware counters needed; needs root or perf_event_paranoid <= 1) for 2 s in the middle of
# a 3 s measured window, divided by the requests served in those 2 s (the window's rate).
# For telling whether two servers differ in how they use the kernel, or only in how fast.
#
# Usage: scripts/echo-syscalls.sh CONNS LAB:IMPL [LAB:IMPL ...]
#   e.g. scripts/echo-syscalls.sh 10000 target/release/lab:lwp-mn target/release/lab:tokio target/release/lab:event-loop
set -euo pipefail
. "$(dirname "$0")/echo-common.sh"
if [ $# -lt 2 ]; then
    sed -n '2,10p' "$0" >&2
    exit 2
fi
conns=$1
shift
case "$conns" in *[!0-9]*|"") echo "echo-syscalls.sh: CONNS must be a number" >&2; exit 2;; esac
command -v perf >/dev/null || { echo "echo-syscalls.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true
events=context-switches
for call in epoll_wait epoll_pwait epoll_ctl read write recvfrom sendto readv writev futex sched_yield; do
    events="$events,syscalls:sys_enter_$call"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for spec in "$@"; do
    lab=${spec%%:*} impl=${spec#*:}
    [ -x "$lab" ] || { echo "echo-syscalls.sh: $lab is not an executable" >&2; exit 2; }
    start_echo_run "$conns" "$lab" "$impl" "$work" || { echo "$spec: the server did not start"; continue; }
    sleep_into_window "$conns"
    perf stat -x, -o "$work/stat" -e "$events" -p "$server" -- sleep 2 >/dev/null 2>&1 || true
    finish_echo_run
    python3 - "$spec" "$work/result" "$work/stat" <<'PY'
import json, sys
spec, result, stat = sys.argv[1:4]
try:
    d = json.load(open(result))
except ValueError:
    print(f"{spec}: no result from the load generator"); sys.exit()
rps = d["requests"] / (d["window_ns"] / 1e9)
counted = rps * 2.0
parts = []
for line in open(stat):
    f = line.strip().split(",")
    if len(f) > 2 and f[0].replace(".", "").isdigit() and float(f[0]) > 0:
        parts.append(f"{f[2].replace('syscalls:sys_enter_', '')} {float(f[0]) / counted:.3f}")
if not parts:
    print(f"{spec}: {rps:.0f} req/s; perf counted nothing (tracepoints need root or perf_event_paranoid <= 1)"); sys.exit()
print(f"{spec}: {rps:.0f} req/s; per request: " + ", ".join(parts))
PY
done
