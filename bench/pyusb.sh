#!/bin/sh
# PyUSB through usbhttpd.pyusb (over the URB channel, and over REST) against PyUSB's libusb1
# backend on the device itself, in one boot: a ctrl_transfer and a 512-byte bulk read,
# alternating rounds (clients/python/bench); and the Python floor, a bare WebSocket echo from
# Python against libmicrohttpd's own upgrade (bench/ws-floor.c).
#   lab/lab run --cwd "$PWD" -- sh bench/pyusb.sh [DAEMON-BINARY]
# Build first: swift build -c release --product usbhttpd; script/python-client (the venv).
# Environment: RUNS (rounds, default 5), N (calls per round, default 200).
set -eu
set -- pyusb "${1:-}"; . bench/daemon.sh   # dash's "." passes no arguments: the positional ones
gcc -O2 -o "$W/ws-floor" bench/ws-floor.c $(pkg-config --cflags --libs libmicrohttpd gnutls) -lpthread
"$W/ws-floor" 8096 & floor=$!
trap 'kill $daemon $floor 2>/dev/null || true' EXIT
PYTHONDONTWRITEBYTECODE=1 .build-tools/pyclient/bin/python clients/python/bench/pyusb_speed.py \
  http://127.0.0.1:8090 "${RUNS:-5}" "${N:-200}" 8096
