#!/bin/sh
# PyUSB through usbhttpd.pyusb against PyUSB's libusb1 backend on the device itself, in one
# boot: a ctrl_transfer and a 512-byte bulk read, alternating rounds (clients/python/bench).
#   lab/lab run --cwd "$PWD" -- sh bench/pyusb.sh [DAEMON-BINARY]
# Build first: swift build -c release --product usbhttpd; script/python-client (the venv).
# Environment: RUNS (rounds, default 5), N (calls per round, default 200).
set -eu
BIN=${1:-.build/release/usbhttpd}
W=${TMPDIR:-/tmp}
"$BIN" --host 127.0.0.1 --port 8090 --log-level warning > "$W/pyusb-daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
i=0; until curl -sf -o /dev/null http://127.0.0.1:8090/readyz; do i=$((i + 1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done
PYTHONDONTWRITEBYTECODE=1 .build-tools/pyclient/bin/python clients/python/bench/pyusb_speed.py \
  http://127.0.0.1:8090 "${RUNS:-5}" "${N:-200}"
