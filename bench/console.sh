#!/bin/sh
# Consoles through the daemon against the tty directly, alternating, in one boot: the lab's
# CDC-ACM console board (the gadget its lab tests use, lab/guest/board.py on /dev/ttyGS0), the
# echo round trip of one typed byte and the throughput of a flood the board prints as fast as
# it can, each checked (bench/console.c, in C on both paths). The daemon is stopped for the
# direct rounds (a tty read by two readers splits its bytes between them).
#   lab/lab run --cwd "$PWD" -- sh bench/console.sh BINARY [ROUNDS] [ECHOES] [FLOOD_BYTES]
# BINARY: the release build.
set -eu
BIN=$1; ROUNDS=${2:-5}; ECHOES=${3:-200}; FLOOD=${4:-4194304}
W=${TMPDIR:-/tmp}
gcc -O2 -D_GNU_SOURCE -o "$W/console" bench/console.c
"$LAB_RUN/modprobe" usb_f_acm; "$LAB_RUN/modprobe" cdc_acm
g=/sys/kernel/config/usb_gadget/console
mkdir -p $g/strings/0x409 $g/configs/c.1/strings/0x409
echo 0x1209 > $g/idVendor; echo 0x0020 > $g/idProduct
echo lab-console > $g/strings/0x409/serialnumber; echo "Console board" > $g/strings/0x409/product
mkdir $g/functions/acm.gs0; ln -s $g/functions/acm.gs0 $g/configs/c.1/
echo dummy_udc.4 > $g/UDC
id=""; i=0
while [ -z "$id" ]; do
  for d in /sys/bus/usb/devices/*; do
    [ "$(cat $d/serial 2>/dev/null)" = lab-console ] && [ -e "$d/$(basename $d):1.0/tty" ] && id=$(basename $d)
  done
  i=$((i + 1)); [ $i -lt 200 ] || { echo "no console board" >&2; exit 1; }; sleep 0.05
done
tty=/dev/$(ls /sys/bus/usb/devices/$id:1.0/tty)
python3 lab/guest/board.py /dev/ttyGS0 > "$W/board.log" 2>&1 &
echo "console board $id on $tty; $ECHOES echoes and a flood of $FLOOD bytes a round"
r=1
while [ $r -le "$ROUNDS" ]; do
  "$BIN" --host 127.0.0.1 --port 8080 --log-level warning > "$W/console-bench.log" 2>&1 &
  pid=$!
  i=0; until curl -sf -o /dev/null http://127.0.0.1:8080/readyz; do i=$((i + 1)); [ $i -lt 300 ] || exit 1; sleep 0.1; done
  echo "round $r daemon $("$W/console" ws 8080 "$id" "$ECHOES" "$FLOOD")"
  kill $pid; wait $pid 2>/dev/null || true
  echo "round $r direct $("$W/console" tty "$tty" "$ECHOES" "$FLOOD")"
  r=$((r + 1))
done
