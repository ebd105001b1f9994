#!/bin/sh
# Installs perf (Debian's linux-perf) for `npm run profile -- --kernel` (0x --kernel-tracing).
# Runs apt-get as root; otherwise says what to run.
set -e
if command -v perf >/dev/null 2>&1; then
  echo "perf is installed: $(perf --version)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "perf is missing; as root run: apt-get update && apt-get install -y linux-perf" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y linux-perf || { apt-get update && apt-get install -y linux-perf; }
perf --version
