#!/usr/bin/env bash
# Interleaved echo runs (A B A B ...) of one or more lab binaries and server implementations,
# with the lab's own peers (`lab internal-peer echo-server` / `echo-client`), one line per run
# (the server's CPU per request and the client's CPU share need a lab binary that takes
# `--server-pid`; older ones print no result; "p99 to arrival" is n/a from binaries older
# than the receive timestamps).
# For comparing two builds of the runtime side by side on a machine whose speed drifts.
#
# Usage: scripts/echo-ab.sh CONNS REPS LAB:IMPL [LAB:IMPL ...]
#   e.g. scripts/echo-ab.sh 100 5 /tmp/lab-before:lwp-mn target/release/lab:lwp-mn target/release/lab:tokio
# Environment: WINDOW_MS (measured window, default 1000); WARMUP_MS (default 200 + 30 per
# connection, as in the lab); GO_DELAY (seconds the connections
# sit idle before the load starts, default 0; the lab's largest count idles about 0.15 s).
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi
conns=$1 reps=$2
shift 2
case "$conns$reps" in *[!0-9]*) echo "echo-ab.sh: CONNS and REPS must be numbers" >&2; exit 2;; esac
window=${WINDOW_MS:-1000}
warmup=${WARMUP_MS:-$((200 + conns * 30 / 1000))}
for _ in $(seq "$reps"); do
    for spec in "$@"; do
        lab=${spec%%:*} impl=${spec#*:}
        [ -x "$lab" ] || { echo "echo-ab.sh: $lab is not an executable" >&2; exit 2; }
        out=$(mktemp)
        "$lab" internal-peer echo-server --impl "$impl" >"$out" 2>/dev/null &
        server=$!
        for _ in $(seq 100); do grep -q '^PORT ' "$out" && break; sleep 0.1; done
        port=$(awk '/^PORT /{print $2}' "$out")
        rm -f "$out"
        if [ -z "$port" ]; then
            kill "$server" 2>/dev/null || true
            echo "$spec: the server did not start"
            continue
        fi
        result=$( (sleep "${GO_DELAY:-0}"; echo GO) | LWP_SYSMON_QUIET=1 "$lab" internal-peer echo-client \
            --addr "127.0.0.1:$port" --conns "$conns" --msg 64 --warmup-ms "$warmup" \
            --window-ms "$window" --setup-ms 8000 --pause-ms 20000 --server-pid "$server" 2>/dev/null | grep '^{' || true)
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
        echo "$spec $(echo "$result" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    print("no result"); sys.exit()
rps = d["requests"] / (d["window_ns"] / 1e9)
cpu = d.get("server_cpu_ns"), d.get("client_cpu_ns")
srv = "%.1f us" % (cpu[0] / d["requests"] / 1e3) if cpu[0] is not None and d["requests"] else "n/a"
cli = "%.0f%%" % (100 * cpu[1] / d["window_ns"]) if cpu[1] is not None else "n/a"
arr = "%.0f us" % (d["arrival_p99_ns"] / 1e3) if d.get("arrival_p99_ns") is not None else "n/a"
print("req/s %.0f  p50 %.0f us  p90 %.0f us  p99 %.0f us  p99 to arrival %s  errors %d  server CPU/request %s  client CPU %s"
      % (rps, d["p50_ns"] / 1e3, d["p90_ns"] / 1e3, d["p99_ns"] / 1e3, arr, d["errors"], srv, cli))')"
    done
done
