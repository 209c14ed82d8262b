#!/bin/sh
# Per-request cost on this machine, no USB and no lab needed: the daemon against libmicrohttpd
# alone (bench/http-floor.c, answering inside its callback ("inline") and after one hop to
# another thread and back ("hop")), in one run.
#   sh bench/requests.sh [DAEMON-BINARY]
# Build first: swift build -c release --product usbhttpd (the default binary).
# For GET /healthz, a 404 (GET /nothing) and GET /v1/devices: ROUNDS rounds (default 5), the
# floor and the daemon alternating, each N requests (default 20000) on one keep-alive
# connection (bench/keepalive.c). Per request: the server's CPU time (all its threads,
# /proc/PID/task/*/schedstat) and the client's round trip. Prints medians, the spread
# (min-max) and the daemon/floor ratios. LOG_LEVEL (default warning) is the daemon's.
set -eu
BIN=${1:-.build/release/usbhttpd}
N=${N:-20000}; ROUNDS=${ROUNDS:-5}; LOG_LEVEL=${LOG_LEVEL:-warning}
W=$(mktemp -d)
trap 'kill $FLOOR $HOP $DAEMON 2>/dev/null; rm -rf "$W"' EXIT
gcc -O2 -o "$W/keepalive" bench/keepalive.c
gcc -O2 -o "$W/http-floor" bench/http-floor.c $(pkg-config --cflags --libs libmicrohttpd) -lpthread

FLOOR_PORT=${FLOOR_PORT:-18090}; DAEMON_PORT=${DAEMON_PORT:-18091}
"$W/http-floor" "$FLOOR_PORT" inline & FLOOR=$!
HOP_PORT=${HOP_PORT:-18092}
"$W/http-floor" "$HOP_PORT" hop & HOP=$!
"$BIN" --host 127.0.0.1 --port "$DAEMON_PORT" --log-level "$LOG_LEVEL" > "$W/daemon.log" 2>&1 & DAEMON=$!
i=0; until curl -s -o /dev/null "http://127.0.0.1:$DAEMON_PORT/healthz"; do
  i=$((i + 1)); [ $i -lt 300 ] || { cat "$W/daemon.log"; exit 1; }; sleep 0.1
done

cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { print s }'; }
# One measurement: "cpu_us rtt_us" per request, for server PID on PORT; every answer must have
# status EXPECT (default: a 2xx), or the run stops: no figure of refusals.
measure() {
  before=$(cpu_ns "$1")
  rtt=$(EXPECT=${4:-} "$W/keepalive" "$2" GET "$3" "$N")
  after=$(cpu_ns "$1")
  awk "BEGIN { printf \"%.1f %s\n\", ($after - $before) / 1000 / $N, $rtt }"
}
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%.1f (%.1f-%.1f)", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "per-request cost on this host: daemon $BIN (--log-level $LOG_LEVEL) against bench/http-floor.c (answering inline, and after one hop)"
echo "$N requests per round on one keep-alive connection, $ROUNDS rounds alternating; median (min-max), microseconds"
for path in /healthz /nothing /v1/devices; do
  : > "$W/floor"; : > "$W/hop"; : > "$W/daemon"
  # Warm all up once.
  expect=""; [ "$path" = /nothing ] && expect=404  # the floor answers every path 200
  measure $FLOOR "$FLOOR_PORT" "$path" >/dev/null; measure $DAEMON "$DAEMON_PORT" "$path" "$expect" >/dev/null
  measure $HOP "$HOP_PORT" "$path" >/dev/null
  r=0; while [ $r -lt "$ROUNDS" ]; do
    measure $FLOOR "$FLOOR_PORT" "$path" >> "$W/floor"
    measure $DAEMON "$DAEMON_PORT" "$path" "$expect" >> "$W/daemon"
    measure $HOP "$HOP_PORT" "$path" >> "$W/hop"
    r=$((r + 1))
  done
  fc=$(cut -d' ' -f1 "$W/floor" | median); fr=$(cut -d' ' -f2 "$W/floor" | median)
  hc=$(cut -d' ' -f1 "$W/hop" | median); hr=$(cut -d' ' -f2 "$W/hop" | median)
  dc=$(cut -d' ' -f1 "$W/daemon" | median); dr=$(cut -d' ' -f2 "$W/daemon" | median)
  printf '%-12s server CPU: daemon %s, floor inline %s, one hop %s; daemon/inline %.2f (target <= 1.3), daemon/hop %.2f\n' "$path" \
    "$(cut -d' ' -f1 "$W/daemon" | stats)" "$(cut -d' ' -f1 "$W/floor" | stats)" "$(cut -d' ' -f1 "$W/hop" | stats)" \
    "$(awk "BEGIN { print $dc / $fc }")" "$(awk "BEGIN { print $dc / $hc }")"
  printf '%-12s round trip: daemon %s, floor inline %s, one hop %s; daemon/inline %.2f (target <= 1.2), daemon/hop %.2f\n' "" \
    "$(cut -d' ' -f2 "$W/daemon" | stats)" "$(cut -d' ' -f2 "$W/floor" | stats)" "$(cut -d' ' -f2 "$W/hop" | stats)" \
    "$(awk "BEGIN { print $dr / $fr }")" "$(awk "BEGIN { print $dr / $hr }")"
done
