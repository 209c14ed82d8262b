#!/bin/sh
# Plays the lab's USB devices inside the guest:
#   dummy_udc.0  SourceSink gadget      1209:0001  serial lab-sourcesink
#   dummy_udc.1  Loopback gadget        1209:0002  serial lab-loopback
#   dummy_udc.2  FunctionFS lab gadget  1209:0003  serial lab-ffs   (lab/gadget/ffs-gadget.c)
#   dummy_udc.3  DFU lab gadget         1209:0010 runtime, 1209:0011 DFU mode, serial lab-dfu
#                (lab/gadget/dfu-gadget.c, on gadgetfs)
#   dummy_udc.4  free: another bus a gadget can be moved to (replug.py plug GADGET UDC)
# plus whatever QEMU put on its emulated xHCI (keyboard, storage, audio, hub, an FTDI serial
# adapter whose other end is $LAB_RUN/ftdi.sock on the host).
# Waits until every device is enumerated and configured.
set -eu
modprobe() { "$LAB_RUN/modprobe" "$@"; }
modprobe dummy_hcd num=5 is_high_speed=1
modprobe libcomposite
modprobe usb_f_ss_lb
modprobe usb_f_fs
modprobe xhci_pci
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
G=/sys/kernel/config/usb_gadget

# gadget NAME PID SERIAL PRODUCT
gadget() {
  d="$G/$1"
  mkdir -p "$d/strings/0x409" "$d/configs/c.1/strings/0x409"
  echo 0x1209 > "$d/idVendor"
  echo "$2" > "$d/idProduct"
  echo 0x0100 > "$d/bcdDevice"
  echo "$3" > "$d/strings/0x409/serialnumber"
  echo "usbhttpd lab" > "$d/strings/0x409/manufacturer"
  echo "$4" > "$d/strings/0x409/product"
  echo "$4 config" > "$d/configs/c.1/strings/0x409/configuration"
  echo 120 > "$d/configs/c.1/MaxPower"
}

gadget sourcesink 0x0001 lab-sourcesink "SourceSink"
mkdir "$G/sourcesink/functions/SourceSink.0"
echo 1 > "$G/sourcesink/functions/SourceSink.0/pattern"
ln -s "$G/sourcesink/functions/SourceSink.0" "$G/sourcesink/configs/c.1/"
echo dummy_udc.0 > "$G/sourcesink/UDC"

gadget loopback 0x0002 lab-loopback "Loopback"
mkdir "$G/loopback/functions/Loopback.0"
ln -s "$G/loopback/functions/Loopback.0" "$G/loopback/configs/c.1/"
echo dummy_udc.1 > "$G/loopback/UDC"

gadget ffs 0x0003 lab-ffs "usbhttpd lab gadget"
mkdir "$G/ffs/functions/ffs.lab"
ln -s "$G/ffs/functions/ffs.lab" "$G/ffs/configs/c.1/"
mkdir -p /dev/ffs-lab
mount -t functionfs lab /dev/ffs-lab
"$LAB_GADGET" /dev/ffs-lab > "$LAB_RUN/ffs-gadget.log" 2>&1 &
i=0
while [ ! -e /dev/ffs-lab/ep1 ]; do
  i=$((i + 1)); [ $i -lt 200 ] || { echo "ffs gadget did not write its descriptors"; cat "$LAB_RUN/ffs-gadget.log"; exit 1; }
  sleep 0.05
done
echo dummy_udc.2 > "$G/ffs/UDC"

# The DFU gadget (gadgetfs: the whole device in user space) binds to the first free UDC:
# dummy_udc.3, as .0-.2 are taken and .3 comes before .4.
modprobe gadgetfs
mkdir -p /dev/gadget
mount -t gadgetfs gadget /dev/gadget
"$LAB_DFU_GADGET" /dev/gadget/dummy_udc > "$LAB_RUN/dfu-gadget.log" 2>&1 &

# Wait until all devices are there and the gadgets are configured by the host side.
i=0
while :; do
  n=$(ls /sys/bus/usb/devices | grep -vc ':' || true)
  c=$(cat /sys/class/udc/dummy_udc.*/state | grep -c '^configured$' || true)
  [ "$n" -ge "$LAB_EXPECT_DEVICES" ] && [ "$c" -eq 4 ] && break
  i=$((i + 1))
  [ $i -lt 600 ] || { echo "devices: $n of $LAB_EXPECT_DEVICES, gadgets configured: $c of 4"; cat "$LAB_RUN/dfu-gadget.log"; ls /sys/bus/usb/devices; exit 1; }
  sleep 0.1
done
echo "lab: $n USB devices ready"

# No udevd here: load the drivers the kernel asks for, as udev would (usbhid, usb-storage, …).
for alias in $(cat /sys/bus/usb/devices/*/modalias | sort -u); do modprobe -q "$alias" || true; done
