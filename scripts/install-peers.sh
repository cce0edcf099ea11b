#!/bin/sh
# Installs the external peers the lab measures against, from Debian's (or Ubuntu's) packages:
#   golang-go  - Go, for the goroutine peers (benches/go/*, compiled by the lab at run time)
#   stress-ng  - the `stress-ng --switch` cross-check of the switch experiment
#   nginx, wrk - the server experiments (nginx as a server peer, wrk as a load generator)
# The lab works without them and names each missing one in its report.
# Usage: sudo scripts/install-peers.sh        (needs root for apt-get)
set -eu

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-peers.sh: apt-get not found; install Go, stress-ng, nginx and wrk with your" >&2
    echo "package manager (the lab reports whatever is missing)." >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-peers.sh: run as root (sudo $0)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends golang-go stress-ng nginx-light wrk ||
    apt-get install -y --no-install-recommends golang-go stress-ng nginx wrk

# The lab runs nginx itself, with its own configuration on a private port; the distribution's
# service (if the package started one) is left as it is.

for tool in go stress-ng nginx wrk; do
    if command -v "$tool" >/dev/null 2>&1; then
        echo "install-peers.sh: $tool: $(command -v "$tool")"
    else
        echo "install-peers.sh: $tool: NOT installed" >&2
    fi
done
