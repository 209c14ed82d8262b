#!/usr/bin/python3
"""Plugs and unplugs the lab's gadgets by binding their configfs gadget to its UDC or not,
and waits until the host side has seen it (the device gone from sysfs, or back and
configured).

  replug.py unplug GADGET          unbind; wait until the device is gone
  replug.py plug GADGET [UDC]      bind (to its own UDC, or to UDC: dummy_udc.3 and .4 are free,
                                   each another bus); wait until the device is configured
  replug.py bus UDC                the bus number of a UDC's host side (dummy_udc.N: dummy_hcd.N)
  replug.py cycles GADGET N [URL]  N times unplug then plug; with URL, POST to it after each
                                   plug (e.g. a claim, so that the daemon opens the device)
                                   (HOLD=seconds in the environment: stay plugged and unplugged
                                   that long each time; 0 by default)
  replug.py usage PID              the open file descriptors, resident memory (KiB) and threads of PID

GADGET is sourcesink, loopback or ffs. Prints one JSON line.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

GADGETS = {
    "sourcesink": ("dummy_udc.0", "lab-sourcesink"),
    "loopback": ("dummy_udc.1", "lab-loopback"),
    "ffs": ("dummy_udc.2", "lab-ffs"),
}
CONFIGFS = "/sys/kernel/config/usb_gadget"
DEVICES = "/sys/bus/usb/devices"


def device(serial):
    """The sysfs name of the configured device with this serial, or None."""
    for name in os.listdir(DEVICES):
        if ":" in name:
            continue
        try:
            with open(f"{DEVICES}/{name}/serial") as f:
                if f.read().strip() == serial and os.path.exists(f"{DEVICES}/{name}/driver"):
                    return name
        except OSError:
            pass
    return None


def wait(condition, what, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise SystemExit(f"replug: {what} within {seconds} s did not happen")


def unplug(gadget):
    udc, serial = GADGETS[gadget]
    with open(f"{CONFIGFS}/{gadget}/UDC", "w") as f:
        f.write("\n")
    wait(lambda: device(serial) is None, f"{gadget} gone")


def plug(gadget, udc=None):
    own, serial = GADGETS[gadget]
    with open(f"{CONFIGFS}/{gadget}/UDC", "w") as f:
        f.write(udc or own)
    wait(lambda: device(serial) is not None, f"{gadget} configured")
    return device(serial)


def usage(pid):
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    threads = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                threads.append(f.read().strip())
        except OSError:
            pass
    return {"fds": len(targets), "targets": sorted(targets), "rss_kib": rss, "threads": sorted(threads)}


def main(argv):
    command = argv[1]
    if command == "usage":
        print(json.dumps(usage(int(argv[2]))))
    elif command == "unplug":
        unplug(argv[2])
        print(json.dumps({"unplugged": argv[2]}))
    elif command == "plug":
        print(json.dumps({"plugged": argv[2], "id": plug(argv[2], argv[3] if len(argv) > 3 else None)}))
    elif command == "bus":
        host = "/sys/devices/platform/" + argv[2].replace("dummy_udc", "dummy_hcd")
        # usbN, the bus's root hub (not usbmon, which usbmon's module puts beside it)
        (root,) = [name for name in os.listdir(host) if name.startswith("usb") and name[3:].isdigit()]
        print(json.dumps({"udc": argv[2], "bus": int(root[3:])}))
    elif command == "cycles":
        gadget, count = argv[2], int(argv[3])
        url = argv[4] if len(argv) > 4 else None
        ids, statuses = set(), {}
        started = time.monotonic()
        hold = float(os.environ.get("HOLD", "0"))
        for _ in range(count):
            unplug(gadget)
            time.sleep(hold)
            ids.add(plug(gadget))
            time.sleep(hold)
            if url:
                try:
                    status = urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).status
                except urllib.error.HTTPError as error:
                    status = error.code
                statuses[status] = statuses.get(status, 0) + 1
        print(json.dumps({"cycles": count, "ids": sorted(ids), "statuses": statuses,
                          "seconds": round(time.monotonic() - started, 2)}))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
