#!/bin/sh
# The streaming benchmark: the daemon (its REST streams and its URB channel) against native
# libusb and against Linux USB/IP on the same device, in the same guest and boot, in
# alternating rounds; and libmicrohttpd's own floors (no USB) for scale: HTTP, and a WebSocket
# echoing over its own upgrade (bench/ws-floor.c).
#   lab/lab run --cwd "$PWD" -- sh bench/stream.sh [DAEMON-BINARY]
# Build first: swift build -c release --product usbhttpd (default binary: .build/release/usbhttpd).
# Environment: K (transfers in flight, default 8), L (bytes per transfer, default 65536),
# N (bytes per IN stream, default 200000000; OUT sends N rounded down to MiB), RUNS (rounds,
# default 3), CHANNEL (0: leave the URB channel out, for a daemon from before it), BACKEND (0: leave
# out libusb with usbhttpd's backend; 1 by default when clients/libusb/build has built it). Each round measures native libusb, the daemon, then USB/IP; figures are the
# median over rounds with the spread (min-max), ratios the median of each round's ratio.
set -eu
BIN=${1:-.build/release/usbhttpd}
K=${K:-8}; L=${L:-65536}; N=${N:-200000000}; RUNS=${RUNS:-3}; CHANNEL=${CHANNEL:-1}
BACKEND=${BACKEND:-$([ -f .build-libusb/lib/libusb-1.0.so.0 ] && echo 1 || echo 0)}
BACKEND_ENV="LD_LIBRARY_PATH=$PWD/.build-libusb/lib USBHTTPD_URL=http://127.0.0.1:8080 USBHTTPD_QUIET=1"
W=${TMPDIR:-/tmp}
USB="$(pkg-config --cflags --libs libusb-1.0)"
gcc -O2 -o "$W/native-stream" bench/native-stream.c $USB
gcc -O2 -o "$W/native-control" bench/native-control.c $USB
gcc -O2 -o "$W/keepalive" bench/keepalive.c
gcc -O2 -o "$W/pattern" bench/pattern.c
gcc -O2 -o "$W/idle" bench/idle.c
gcc -O2 -o "$W/upload" bench/upload.c
gcc -O2 -D_GNU_SOURCE -o "$W/channel" bench/channel.c
MHD="$(pkg-config --cflags --libs libmicrohttpd) -lpthread"
gcc -O2 -o "$W/ws-floor" bench/ws-floor.c $MHD $(pkg-config --cflags --libs gnutls)
gcc -O2 -o "$W/http-floor" bench/http-floor.c $MHD
gcc -O2 -o "$W/stream-floor" bench/stream-floor.c $MHD

# Figures go to files named for what they are, one line per round.
R="$W/figures"; rm -rf "$R"; mkdir -p "$R"
put() { echo "$2" >> "$R/$1"; }
stats() { sort -n "$R/$1" | awk '{ v[NR] = $1 } END { printf "%s (%s-%s)", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
median() { sort -n "$R/$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# The ratio A/B of each round, into file NAME.
ratios() { paste "$R/$2" "$R/$3" | awk '{ printf "%.2f\n", $1 / $2 }' > "$R/$1"; }
mb() { awk '{ printf "%.1f\n", $1 / 1e6 }'; }

B=http://127.0.0.1:8080/v1/devices
"$BIN" --host 127.0.0.1 --port 8080 --log-level warning --max-connections-per-client 600 > "$W/usbhttpd.log" 2>&1 &
DAEMON=$!
i=0; until curl -s -o /dev/null $B; do i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.1; done
id() { curl -s "$B?serial=$1" | sed -n 's/.*"id" : "\(.*\)".*/\1/p'; }
SS=$(id lab-sourcesink); FFS=$(id lab-ffs)
claim() {
  # The device may just be back from USB/IP: until the daemon has it again.
  curl -s -o /dev/null "http://127.0.0.1:8080/v1/wait?serial=$1&timeout_ms=20000"
  i=0; until [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$B/$(id "$1")/interfaces/0/claim")" = 200 ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "cannot claim $1" >&2; exit 1; }; sleep 0.1
  done
}
release() { curl -s -o /dev/null -X DELETE "$B/$(id "$1")/interfaces/0/claim"; }

# Linux USB/IP over loopback: SourceSink exported by usbip-host, attached through vhci-hcd.
"$LAB_RUN/modprobe" usbip-host
"$LAB_RUN/modprobe" vhci-hcd
usbipd -D
# The bus the attached SourceSink shows on (another than its own): $VBUS.
vhci_bus() {
  for d in /sys/bus/usb/devices/*; do
    [ -f "$d/serial" ] && [ "$(cat "$d/serial")" = lab-sourcesink ] && [ -e "$d/driver" ] || continue
    b=$(cat "$d/busnum"); [ "$b" != "$SSBUS" ] && { echo "$b"; return; }
  done
}
SSBUS=$(cat "/sys/bus/usb/devices/$SS/busnum")
usbip_up() {
  usbip bind -b "$SS" > /dev/null
  usbip attach -r 127.0.0.1 -b "$SS"
  i=0; VBUS=""; until [ -n "$VBUS" ]; do
    i=$((i + 1)); [ $i -lt 200 ] || { echo "USB/IP: no device" >&2; exit 1; }; sleep 0.1; VBUS=$(vhci_bus)
  done
  sleep 0.5  # its interfaces bound
}
usbip_down() {
  for p in $(usbip port 2>/dev/null | sed -n 's/^Port \([0-9]*\):.*/\1/p'); do usbip detach -p "$p" > /dev/null; done
  usbip unbind -b "$SS" > /dev/null
}

in_daemon() { curl -sN -o /dev/null -w '%{speed_download}\n' "$B/$SS/endpoints/0x81/stream?transfers=$K&transfer_size=$L&max_bytes=$N" | mb; }
OUT_MIB=$((N / 1048576))
# SourceSink's pattern, which its sink checks byte for byte, made on the fly (bench/pattern.c)
# and sent chunked (curl -T -).
out_daemon() {
  "$W/pattern" "$OUT_MIB" | curl -s -o /dev/null -w '%{speed_upload}\n' -X POST -T - \
    "$B/$SS/endpoints/0x02/stream?transfers=$K&transfer_size=$L" | mb
}
# The same upload from a lean client (bench/upload.c, 64 KiB chunks from memory).
out_lean() { "$W/upload" 8080 "/v1/devices/$SS/endpoints/0x02/stream?transfers=$K&transfer_size=$L" "$OUT_MIB" 65536 | cut -d' ' -f1; }
control_daemon() { "$W/keepalive" 8080 POST "/v1/devices/$SS/control?direction=in&type=standard&request=6&value=0x100&length=18" 200; }
cpu_ns() { cat /proc/$DAEMON/task/*/schedstat | awk '{ s += $1 } END { print s }'; }

round=0
while [ $round -lt "$RUNS" ]; do
  round=$((round + 1))
  release lab-sourcesink
  put native_in "$("$W/native-stream" 0x1209 0x0001 0x81 "$K" "$L" "$N")"
  put native_out "$("$W/native-stream" 0x1209 0x0001 0x02 "$K" "$L" $((OUT_MIB * 1048576)))"
  put native_control "$("$W/native-control" 0x1209 0x0001 200)"

  claim lab-sourcesink
  before=$(cpu_ns)
  put daemon_in "$(in_daemon)"
  put daemon_cpu "$(awk "BEGIN { printf \"%.2f\", ($(cpu_ns) - $before) / 1e6 / ($N / 1e6) }")"
  put daemon_out "$(out_daemon)"
  put daemon_out_lean "$(out_lean)"
  put daemon_control "$(control_daemon)"
  release lab-sourcesink

  # The URB channel (bench/channel.c claims interface 0 on it): a control round trip, the
  # daemon's CPU per control frame (2000 of them, all threads), bulk IN and OUT, K × L in flight.
  if [ "$CHANNEL" = 1 ]; then
    put channel_control "$("$W/channel" 8080 "$SS" control 200)"
    before=$(cpu_ns)
    "$W/channel" 8080 "$SS" control 2000 > /dev/null
    put channel_cpu "$(awk "BEGIN { printf \"%.1f\", ($(cpu_ns) - $before) / 1000 / 2000 }")"
    put channel_in "$("$W/channel" 8080 "$SS" in 0x81 "$K" "$L" "$N")"
    put channel_out "$("$W/channel" 8080 "$SS" out 0x02 "$K" "$L" $((OUT_MIB * 1048576)))"
  fi

  # Unmodified native-stream and native-control through the daemon, on libusb built with
  # usbhttpd's backend (clients/libusb/build; BACKEND=0 leaves it out).
  if [ "$BACKEND" = 1 ]; then
    put backend_control "$(env $BACKEND_ENV "$W/native-control" 0x1209 0x0001 200)"
    put backend_in "$(env $BACKEND_ENV "$W/native-stream" 0x1209 0x0001 0x81 "$K" "$L" "$N")"
    put backend_out "$(env $BACKEND_ENV "$W/native-stream" 0x1209 0x0001 0x02 "$K" "$L" $((OUT_MIB * 1048576)))"
  fi

  usbip_up
  put usbip_in "$(BUS=$VBUS "$W/native-stream" 0x1209 0x0001 0x81 "$K" "$L" "$N")"
  put usbip_out "$(BUS=$VBUS "$W/native-stream" 0x1209 0x0001 0x02 "$K" "$L" $((OUT_MIB * 1048576)))"
  put usbip_control "$(BUS=$VBUS "$W/native-control" 0x1209 0x0001 200)"
  usbip_down

  # libmicrohttpd alone, no USB: streaming (socket writes / content reader) and a round trip
  # (answered at once / after one thread hop).
  "$W/stream-floor" 8093 socket "$L" & F1=$!
  "$W/stream-floor" 8094 reader "$L" & F2=$!
  "$W/http-floor" 8090 inline & F3=$!
  "$W/http-floor" 8091 hop & F4=$!
  "$W/ws-floor" 8095 & F5=$!
  sleep 0.3
  put ws_floor "$("$W/channel" 8095 /echo echo 200)"
  wsb=$(awk '{ s += $1 } END { print s }' /proc/$F5/task/*/schedstat)
  "$W/channel" 8095 /echo echo 2000 > /dev/null
  put ws_floor_cpu "$(awk "BEGIN { printf \"%.1f\", ($(awk '{ s += $1 } END { print s }' /proc/$F5/task/*/schedstat) - $wsb) / 1000 / 2000 }")"
  put floor_socket "$(curl -sN -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:8093/?bytes=$N" | mb)"
  put floor_reader "$(curl -sN -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:8094/?bytes=$N" | mb)"
  put floor_inline "$("$W/keepalive" 8090 GET /floor 200)"
  # What the upload clients reach against a server that drops the body (bench/http-floor.c).
  put floor_curl_out "$("$W/pattern" "$OUT_MIB" | curl -s -o /dev/null -w '%{speed_upload}\n' -X POST -T - http://127.0.0.1:8090/floor | mb)"
  put floor_lean_out "$("$W/upload" 8090 /floor "$OUT_MIB" 65536 | cut -d' ' -f1)"
  put floor_hop "$("$W/keepalive" 8091 GET /floor 200)"
  kill $F1 $F2 $F3 $F4 $F5
done
ratios in_native daemon_in native_in; ratios in_usbip usbip_in native_in
ratios out_native daemon_out native_out; ratios out_usbip usbip_out native_out
ratios out_lean_native daemon_out_lean native_out
ratios control_native daemon_control native_control; ratios control_usbip usbip_control native_control
if [ "$CHANNEL" = 1 ]; then
  ratios channel_in_native channel_in native_in; ratios channel_out_native channel_out native_out
  ratios channel_control_native channel_control native_control
fi

# Peak memory: 16 streams at once (8 per device) for 3 s, then 500 idle keep-alive connections.
claim lab-sourcesink; claim lab-ffs
before=$(awk '/VmRSS/ { print $2 }' /proc/$DAEMON/status)
pids=""
n=0; while [ $n -lt 8 ]; do
  curl -sN -o /dev/null "$B/$SS/endpoints/0x81/stream?transfers=$K&transfer_size=$L&duration_ms=3000" &
  pids="$pids $!"
  curl -sN -o /dev/null "$B/$FFS/endpoints/0x86/stream?transfers=$K&transfer_size=$L&duration_ms=3000" &
  pids="$pids $!"
  n=$((n + 1))
done
wait $pids
peak_streams=$(awk '/VmHWM/ { print $2 }' /proc/$DAEMON/status)
"$W/idle" 8080 /healthz 500 4 > "$W/idle.out" &
IDLE=$!
i=0; until [ -s "$W/idle.out" ]; do i=$((i + 1)); [ $i -lt 600 ] || break; sleep 0.1; done
idle_rss=$(awk '/VmRSS/ { print $2 }' /proc/$DAEMON/status)
wait $IDLE
peak_idle=$(awk '/VmHWM/ { print $2 }' /proc/$DAEMON/status)
# 500 idle URB channels on one device, held 4 s.
if [ "$CHANNEL" = 1 ]; then
  before_channels=$(awk '/VmRSS/ { print $2 }' /proc/$DAEMON/status)
  release lab-sourcesink; release lab-ffs
  "$W/channel" 8080 "$SS" hold 500 4 > "$W/channels.out" &
  HOLD=$!
  i=0; until [ -s "$W/channels.out" ]; do i=$((i + 1)); [ $i -lt 600 ] || break; sleep 0.1; done
  channels_rss=$(awk '/VmRSS/ { print $2 }' /proc/$DAEMON/status)
  wait $HOLD
fi

echo "usbhttpd streaming benchmark: K=$K L=$L N=$N, $RUNS rounds (native, daemon, USB/IP in each), daemon $BIN"
echo "figure: median (min-max); ratios: median of the rounds' ratios (min-max)"
echo "(a) bulk IN   MB/s   daemon $(stats daemon_in)   native $(stats native_in)   USB/IP $(stats usbip_in)"
echo "              daemon/native $(stats in_native) (target >= 0.90)   USB/IP/native $(stats in_usbip)"
echo "              daemon CPU $(median daemon_cpu) ms per MB (all threads)"
echo "(b) bulk OUT  MB/s   daemon $(stats daemon_out)   native $(stats native_out)   USB/IP $(stats usbip_out)"
echo "              daemon/native $(stats out_native) (target >= 0.85)   USB/IP/native $(stats out_usbip)   (curl -T - from bench/pattern.c)"
echo "              from a lean client (bench/upload.c): daemon $(stats daemon_out_lean) MB/s, daemon/native $(stats out_lean_native)"
echo "              the clients alone, against a server that drops the body: curl $(stats floor_curl_out) MB/s, lean $(stats floor_lean_out) MB/s"
echo "(c) control   us     daemon $(stats daemon_control)   native $(stats native_control)   USB/IP $(stats usbip_control)"
echo "              daemon/native $(stats control_native) (target <= 2.2)   USB/IP/native $(stats control_usbip)"
echo "    libmicrohttpd alone: streaming $(stats floor_socket) MB/s writing the socket itself, $(stats floor_reader) MB/s through its content reader;"
echo "    a round trip $(stats floor_inline) us answered at once, $(stats floor_hop) us after one thread hop"
[ "$CHANNEL" = 1 ] && {
echo "(e) URB channel (bench/channel.c): control $(stats channel_control) us, channel/native $(stats channel_control_native) (target <= 1.8; USB/IP/native $(stats control_usbip))"
echo "              daemon CPU per control frame $(median channel_cpu) us (all threads, USB included); the WebSocket floor's per echo $(median ws_floor_cpu) us"
echo "              a round trip over libmicrohttpd's own upgrade (bench/ws-floor.c, no USB): $(stats ws_floor) us"
echo "              bulk IN $(stats channel_in) MB/s, channel/native $(stats channel_in_native) (target >= 0.90)"
echo "              bulk OUT $(stats channel_out) MB/s, channel/native $(stats channel_out_native) (target >= 0.85)"
echo "              $(cat "$W/channels.out") idle channels held: RSS $((channels_rss / 1024)) MiB ($((before_channels / 1024)) MiB before; target <= 64 MiB)"
}
[ "$BACKEND" = 1 ] && {
ratios backend_control_native backend_control native_control
ratios backend_in_native backend_in native_in; ratios backend_out_native backend_out native_out
echo "(f) libusb with usbhttpd's backend (clients/libusb), native-control and native-stream unchanged through the daemon:"
echo "              control $(stats backend_control) us, backend/native $(stats backend_control_native) (target <= 2; USB/IP/native $(stats control_usbip))"
echo "              bulk IN $(stats backend_in) MB/s, backend/native $(stats backend_in_native) (target >= 0.85; USB/IP/native $(stats in_usbip))"
echo "              bulk OUT $(stats backend_out) MB/s, backend/native $(stats backend_out_native) (USB/IP/native $(stats out_usbip))"
}
echo "(d) peak RSS: 16 streams $((peak_streams / 1024)) MiB (VmHWM; $((before / 1024)) MiB before); $(cat "$W/idle.out") idle keep-alive connections held: RSS $((idle_rss / 1024)) MiB, peak $((peak_idle / 1024)) MiB (target <= 64 MiB each)"
kill $DAEMON
