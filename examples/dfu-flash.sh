#!/bin/sh
# Flashes a DFU 1.1 board through usbhttpd with curl alone: detach into its bootloader,
# download the image block by block, manifest, and wait for it back in its firmware.
#
#   examples/dfu-flash.sh http://bench-7:8080 4-1 firmware.bin
#
# DEVICE is the board's port id (it stays the same while the board re-enumerates). With
# LEASE=<a lease's token> every request acts under that lease (take one with POST
# /v1/devices/DEVICE/leases first: others then get 423 for the whole cycle). TOKEN=<bearer
# token> when the daemon asks for one, CURL_OPTS for more of curl's options (e.g. --cacert
# ca.pem for a daemon with TLS). The DFU interface is 0 and blocks are the functional
# descriptor's wTransferSize (BLOCK, 256 by default). Prints the board's summary once it is back.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 URL DEVICE IMAGE" >&2; exit 2; }
url=$1 device=$2 image=$3 block=${BLOCK:-256}
D="$url/v1/devices/$device"
c() { curl -sSf ${CURL_OPTS:-} ${TOKEN:+-H "Authorization: Bearer $TOKEN"} ${LEASE:+-H "X-USB-Lease: $LEASE"} "$@"; }
address() { sed -n 's/.*"address" : \([0-9]*\).*/\1/p' | head -1; }
# GETSTATUS (class IN request 3 to the interface): bStatus bwPollTimeout[3] bState iString
status() { c -X POST "$D/control?request_type=0xa1&request=3&length=6" | od -An -tu1; }
expect_state() {
  wanted=$1
  set -- $(status)
  [ "$1" = 0 ] && [ "$5" = "$wanted" ] || { echo "dfu-flash: status $1, state $5 (wanted state $wanted)" >&2; exit 1; }
}

# 1. Runtime mode: claim the DFU interface and DETACH (class OUT request 0, wValue the timeout).
old=$(c "$D" | address)
c -X POST "$D/interfaces/0/claim" > /dev/null
c -X POST "$D/control?request_type=0x21&request=0&value=1000" > /dev/null
# 2. The way back, as a DFU-class device on the same port, interface 0 claimed again (a POST:
#    the wait that claims is a change).
boot=$(c -X POST "$url/v1/wait?id=$device&not_address=$old&class=0xfe&claim=0&timeout_ms=20000" | address)
expect_state 2   # dfuIDLE
# 3. DNLOAD (class OUT request 1, wValue the block number), each block followed by GETSTATUS.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
split -b "$block" -a 5 "$image" "$work/block."   # block.aaaaa, block.aaaab, … in order
n=0
for part in "$work"/block.*; do
  c --data-binary @"$part" "$D/control?request_type=0x21&request=1&value=$((n % 65536))" > /dev/null
  expect_state 5   # dfuDNLOAD-IDLE
  n=$((n + 1))
done
# 4. A zero-length DNLOAD ends the download; GETSTATUS starts the manifestation.
c -X POST "$D/control?request_type=0x21&request=1&value=$((n % 65536))" > /dev/null
set -- $(status)
[ "$1" = 0 ] || { echo "dfu-flash: the board refused the image (status $1, state $5)" >&2; exit 1; }
# 5. Back in its firmware: the next instance on the port (a board waiting for a USB reset gets
# one only when there is an admin token; most leave on their own).
[ "$5" = 8 ] && c -X POST "$D/reset" > /dev/null 2>&1 || true
c "$url/v1/wait?id=$device&not_address=$boot&timeout_ms=20000"
