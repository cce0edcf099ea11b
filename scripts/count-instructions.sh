#!/usr/bin/env bash
# Instructions per iteration of one of ult's examples, counted by callgrind (repeatable
# whatever the machine's load): the example runs with N=A and N=2A iterations, and the
# difference of the two totals is divided by A times PASSES (the example's own repetitions of
# its loop, 1 unless given), so start-up and tear-down cancel out.
#
# Usage: scripts/count-instructions.sh EXAMPLE [ARGS...]
#   scripts/count-instructions.sh countloop yield      # two-ULT yield round trip
#   scripts/count-instructions.sh countloop raw        # raw corosensei round trip
#   PASSES=3 A=10000 scripts/count-instructions.sh spawnjoin
# Environment: A (default 100000), PASSES (default 1). Builds the example in release mode.
set -euo pipefail
if [ $# -lt 1 ]; then
    sed -n '2,10p' "$0" >&2
    exit 2
fi
example=$1
shift
a=${A:-100000} passes=${PASSES:-1}
case "$a$passes" in *[!0-9]*) echo "count-instructions.sh: A and PASSES must be numbers" >&2; exit 2;; esac
command -v valgrind >/dev/null || { echo "count-instructions.sh: valgrind is not installed" >&2; exit 2; }
cd "$(dirname "$0")/.."
cargo build --release -q -p ult --example "$example"
count() {
    local n=$1 out
    shift
    if ! out=$(N=$n valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "target/release/examples/$example" "$@" 2>&1 >/dev/null); then
        echo "count-instructions.sh: $example $* failed:" >&2
        echo "$out" | grep -v '^==' >&2
        exit 2
    fi
    echo "$out" | awk '/refs:/ {gsub(",", "", $NF); print $NF}'
}
one=$(count "$a" "$@")
two=$(count $((2 * a)) "$@")
python3 -c "print(f'{($two - $one) / ($a * $passes):.1f} instructions per iteration')"
