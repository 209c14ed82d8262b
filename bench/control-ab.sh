#!/bin/sh
# Control round trips of two daemon builds, alternating, in one boot: REST (200 GET_DESCRIPTOR
# on one keep-alive connection, bench/keepalive.c, every answer checked) and the URB channel
# (bench/channel.c control, every COMPLETE checked), against native libusb on the same gadget.
#   lab/lab run --cwd "$PWD" -- sh bench/control-ab.sh A-BINARY B-BINARY [ROUNDS]
# Prints one line per round and daemon: microseconds per REST control, per channel control.
set -eu
A=$1; B=$2; ROUNDS=${3:-5}
W=${TMPDIR:-/tmp}
gcc -O2 -o "$W/keepalive" bench/keepalive.c
gcc -O2 -D_GNU_SOURCE -o "$W/channel" bench/channel.c
gcc -O2 -o "$W/native-control" bench/native-control.c $(pkg-config --cflags --libs libusb-1.0)
run() {
  "$1" --host 127.0.0.1 --port 8080 --log-level warning > "$W/ab.log" 2>&1 &
  pid=$!
  i=0; until curl -sf -o /dev/null http://127.0.0.1:8080/readyz; do i=$((i + 1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done
  ss=$(curl -s "http://127.0.0.1:8080/v1/devices?serial=lab-sourcesink" | sed -n 's/.*"id" : "\(.*\)".*/\1/p')
  rest=$("$W/keepalive" 8080 POST "/v1/devices/$ss/control?direction=in&type=standard&request=6&value=0x100&length=18" 200)
  channel=$("$W/channel" 8080 "$ss" control 200)
  kill $pid; wait $pid 2>/dev/null || true
  echo "$2 rest=$rest channel=$channel"
}
r=1
while [ $r -le "$ROUNDS" ]; do
  echo "round $r native=$("$W/native-control" 0x1209 0x0001 200)"
  run "$A" A
  run "$B" B
  r=$((r + 1))
done
