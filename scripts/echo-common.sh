# Sourced by echo-profile.sh and echo-syscalls.sh: one measured echo run with the lab's own
# peers (`lab internal-peer echo-server` / `echo-client`), a 1.5 s warm-up and a 3 s window,
# so that a sampler can attach to the server in the middle of the window.

# start_echo_run CONNS LAB IMPL WORK: starts the server and the load generator (its JSON
# result goes to WORK/result); sets `server` and `client` to their pids. Fails (status 1,
# nothing left running) if the server printed no port.
start_echo_run() {
    local conns=$1 lab=$2 impl=$3 work=$4 port
    "$lab" internal-peer echo-server --impl "$impl" >"$work/port" 2>/dev/null &
    server=$!
    for _ in $(seq 100); do grep -q '^PORT ' "$work/port" && break; sleep 0.1; done
    port=$(awk '/^PORT /{print $2}' "$work/port")
    if [ -z "$port" ]; then
        kill "$server" 2>/dev/null || true
        return 1
    fi
    LWP_SYSMON_QUIET=1 "$lab" internal-peer echo-client --addr "127.0.0.1:$port" --conns "$conns" \
        --msg 64 --warmup-ms 1500 --window-ms 3000 --setup-ms 8000 --server-pid "$server" \
        2>/dev/null | grep '^{' >"$work/result" &
    client=$!
}

# sleep_into_window CONNS: connection set-up plus warm-up take about 2 s at 10,000
# connections; returns half a second into the measured window.
sleep_into_window() {
    sleep "$(python3 -c "print(2.0 + $1 * 0.00005)")"
}

# finish_echo_run: waits for the load generator, then stops the server.
finish_echo_run() {
    wait "$client" || true
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}
