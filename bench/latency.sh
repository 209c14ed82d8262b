#!/bin/sh
# Request latency inside the lab: the daemon against native libusb, same guest, same run.
#   lab/lab run --cwd "$PWD" -- sh bench/latency.sh [DAEMON-BINARY]
# (default binary: .build/release/usbhttpd if built, else .build/debug/usbhttpd)
# Each daemon figure is 200 requests on one keep-alive connection, divided by 200.
set -eu
BIN=${1:-}
[ -n "$BIN" ] || { [ -x .build/release/usbhttpd ] && BIN=.build/release/usbhttpd || BIN=.build/debug/usbhttpd; }
W=${TMPDIR:-/tmp}
"$BIN" --host 127.0.0.1 --port 8080 --log-level warning > "$W/usbhttpd.log" 2>&1 &
DAEMON=$!
B=http://127.0.0.1:8080
i=0; until curl -s -o /dev/null $B/v1/devices; do i=$((i + 1)); [ $i -lt 200 ] || exit 1; sleep 0.1; done
id() { curl -s "$B/v1/devices?serial=$1" | sed -n 's/.*"id" : "\(.*\)".*/\1/p'; }
SS=$(id lab-sourcesink)
echo "daemon: $BIN"

# 200 requests of METHOD PATH on one keep-alive connection (bench/keepalive.c); microseconds per request.
gcc -O2 -o "$W/keepalive" bench/keepalive.c
each() { "$W/keepalive" 8080 "$1" "$2" 200; }

cat > "$W/native.c" <<'C'
#include <libusb.h>
#include <stdio.h>
#include <time.h>
int main(void) {
    libusb_context *c; libusb_init(&c);
    libusb_device_handle *h = libusb_open_device_with_vid_pid(c, 0x1209, 0x0001);
    if (!h) return 1;
    unsigned char b[64]; struct timespec s, e;
    clock_gettime(CLOCK_MONOTONIC, &s);
    for (int i = 0; i < 200; i++) libusb_control_transfer(h, 0x80, 6, 0x100, 0, b, 18, 1000);
    clock_gettime(CLOCK_MONOTONIC, &e);
    printf("%ld\n", ((e.tv_sec - s.tv_sec) * 1000000000L + (e.tv_nsec - s.tv_nsec)) / 200000);
    return 0;
}
C
gcc -O2 -o "$W/native" "$W/native.c" $(pkg-config --cflags --libs libusb-1.0)
native=$("$W/native")
gcc -O2 -o "$W/http-floor" bench/http-floor.c $(pkg-config --cflags --libs libmicrohttpd) -lpthread
"$W/http-floor" 8090 inline & FLOOR_INLINE=$!
"$W/http-floor" 8091 hop & FLOOR_HOP=$!
sleep 0.5
floor_inline=$("$W/keepalive" 8090 GET /floor 200)
floor_hop=$("$W/keepalive" 8091 GET /floor 200)
kill $FLOOR_INLINE $FLOOR_HOP
list=$(each GET /v1/devices)
notfound=$(EXPECT=404 each GET /nothing)
control=$(each POST "/v1/devices/$SS/control?direction=in&type=standard&request=6&value=0x100&length=18")
echo "GET /v1/devices (12 devices):       $list us"
echo "GET /nothing (404):                  $notfound us"
echo "control GET_DESCRIPTOR, daemon:      $control us"
echo "control GET_DESCRIPTOR, native:      $native us"
echo "libmicrohttpd alone, at once:        $floor_inline us"
echo "libmicrohttpd alone, one hop:        $floor_hop us"
echo "ratio daemon/native:                 $(awk "BEGIN { printf \"%.1f\", $control / $native }")"
kill $DAEMON
