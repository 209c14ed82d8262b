#!/bin/sh
# The streaming benchmark: the daemon against native libusb, same guest, same run.
#   lab/lab run --cwd "$PWD" -- sh bench/stream.sh [DAEMON-BINARY]
# Build first: swift build -c release --product usbhttpd (default binary: .build/release/usbhttpd).
# Environment: K (transfers in flight, default 8), L (bytes per transfer, default 65536),
# N (bytes per stream, default 200000000), RUNS (default 3; the median is printed).
set -eu
BIN=${1:-.build/release/usbhttpd}
K=${K:-8}; L=${L:-65536}; N=${N:-200000000}; RUNS=${RUNS:-3}
W=${TMPDIR:-/tmp}
CFLAGS="-O2 $(pkg-config --cflags --libs libusb-1.0)"
gcc -o "$W/native-stream" bench/native-stream.c $CFLAGS
gcc -o "$W/native-control" bench/native-control.c $CFLAGS
gcc -O2 -o "$W/keepalive" bench/keepalive.c
gcc -O2 -o "$W/pattern" bench/pattern.c
gcc -O2 -o "$W/http-floor" bench/http-floor.c $(pkg-config --cflags --libs libmicrohttpd) -lpthread

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }
repeat() { i=0; while [ $i -lt "$RUNS" ]; do "$@"; i=$((i + 1)); done; }

# Native first: it claims the interfaces the daemon will claim after.
native_in=$(repeat "$W/native-stream" 0x1209 0x0001 0x81 "$K" "$L" "$N" | median)
# N bytes (whole MiBs) of SourceSink's pattern, which its sink checks byte for byte, made on
# the fly by bench/pattern.c (a file in the run folder would be read over 9p, slower than the
# USB under test) and sent chunked (curl -T -).
OUT_MIB=$((N / 1048576))
pattern() { "$W/pattern" "$OUT_MIB"; }
native_out=$(repeat "$W/native-stream" 0x1209 0x0001 0x02 "$K" "$L" $((OUT_MIB * 1048576)) | median)
native_control=$(repeat "$W/native-control" 0x1209 0x0001 200 | median)
# What libmicrohttpd alone costs for a keep-alive round trip, set up as the daemon sets it up
# (bench/http-floor.c): answered at once, and answered from another thread (one hop each way).
"$W/http-floor" 8090 inline & FLOOR_INLINE=$!
"$W/http-floor" 8091 hop & FLOOR_HOP=$!
sleep 0.5
floor_inline=$(repeat "$W/keepalive" 8090 GET /floor 200 | median)
floor_hop=$(repeat "$W/keepalive" 8091 GET /floor 200 | median)
kill $FLOOR_INLINE $FLOOR_HOP

"$BIN" --host 127.0.0.1 --port 8080 --log-level warning > "$W/usbhttpd.log" 2>&1 &
DAEMON=$!
B=http://127.0.0.1:8080/v1/devices
i=0; until curl -s -o /dev/null $B; do i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.1; done
id() { curl -s "$B?serial=$1" | sed -n 's/.*"id" : "\(.*\)".*/\1/p'; }
SS=$(id lab-sourcesink); FFS=$(id lab-ffs)
curl -s -o /dev/null -X POST "$B/$SS/interfaces/0/claim"
curl -s -o /dev/null -X POST "$B/$FFS/interfaces/0/claim"

stream_once() {
  curl -sN -o /dev/null -w '%{speed_download}\n' "$B/$SS/endpoints/0x81/stream?transfers=$K&transfer_size=$L&max_bytes=$N" |
    awk '{ printf "%.1f\n", $1 / 1e6 }'
}
# The daemon's own CPU time (all its threads, /proc/PID/task/*/schedstat) over the IN runs.
cpu_ns() { cat /proc/$DAEMON/task/*/schedstat | awk '{ s += $1 } END { print s }'; }
cpu_before=$(cpu_ns)
daemon_in=$(repeat stream_once | median)
cpu_in=$(awk "BEGIN { printf \"%.1f\", ($(cpu_ns) - $cpu_before) / 1e6 / ($RUNS * $N / 1e6) }")
# The per-chunk cost of resubmitting through the device actor: the daemon's own count of
# resubmissions and their summed wait from being read to being submitted again (/metrics).
sleep 0.5
hop=$(curl -s http://127.0.0.1:8080/metrics | awk '
  /^usbhttpd_stream_resubmissions_total/ { n = $2 }
  /^usbhttpd_stream_resubmission_wait_seconds_total/ { s = $2 }
  END { if (n > 0) printf "%.0f us mean over %d resubmissions", s / n * 1e6, n; else print "none recorded" }')

out_once() {
  pattern | curl -s -o /dev/null -w '%{speed_upload}\n' -X POST -T - \
    "$B/$SS/endpoints/0x02/stream?transfers=$K&transfer_size=$L" | awk '{ printf "%.1f\n", $1 / 1e6 }'
}
daemon_out=$(repeat out_once | median)

control_once() { "$W/keepalive" 8080 POST "/v1/devices/$SS/control?direction=in&type=standard&request=6&value=0x100&length=18" 200; }
daemon_control=$(repeat control_once | median)

# Peak memory: 16 streams at once (8 per device) for 3 s.
before=$(awk '/VmRSS/ { print $2 }' /proc/$DAEMON/status)
pids=""
n=0; while [ $n -lt 8 ]; do
  curl -sN -o /dev/null "$B/$SS/endpoints/0x81/stream?transfers=$K&transfer_size=$L&duration_ms=3000" &
  pids="$pids $!"
  curl -sN -o /dev/null "$B/$FFS/endpoints/0x86/stream?transfers=$K&transfer_size=$L&duration_ms=3000" &
  pids="$pids $!"
  n=$((n + 1))
done
sleep 1
wait $pids
peak=$(awk '/VmHWM/ { print $2 }' /proc/$DAEMON/status)

echo "usbhttpd streaming benchmark: K=$K L=$L N=$N, median of $RUNS runs, daemon $BIN"
echo "(a) bulk IN stream     daemon $daemon_in MB/s   native $native_in MB/s   ratio $(ratio "$daemon_in" "$native_in")   (target >= 0.90)"
echo "    device-actor hop per resubmitted chunk: $hop; daemon CPU $cpu_in ms per MB"
echo "(b) bulk OUT stream    daemon $daemon_out MB/s   native $native_out MB/s   ratio $(ratio "$daemon_out" "$native_out")   (target >= 0.85)"
echo "(c) control round trip daemon $daemon_control us   native $native_control us   ratio $(ratio "$daemon_control" "$native_control")   (target <= 1.5)"
echo "    for scale, libmicrohttpd alone: $floor_inline us answering at once ($(ratio "$floor_inline" "$native_control") x native), $floor_hop us from another thread ($(ratio "$floor_hop" "$native_control") x)"
echo "(d) peak RSS, 16 streams: $((peak / 1024)) MiB (VmHWM; $((before / 1024)) MiB before)   (target <= 64 MiB)"
kill $DAEMON
