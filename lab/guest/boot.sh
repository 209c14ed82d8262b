#!/bin/sh
# Runs as PID 1 inside the lab guest, chrooted into the host's root (read-only).
# Plays the lab's devices, then runs the run's command and powers off with its
# exit code written to $LAB_RUN/rc. Output of the command goes to $LAB_RUN/output.
LAB_DIR=$1
LAB_RUN=$2
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME="$LAB_RUN/home" TMPDIR="$LAB_RUN/tmp" LAB_DIR LAB_RUN PYTHONDONTWRITEBYTECODE=1
mkdir -p "$HOME" "$TMPDIR"
set -a; . "$LAB_RUN/env"; set +a

finish() {
  echo "$1" > "$LAB_RUN/rc.tmp" && mv "$LAB_RUN/rc.tmp" "$LAB_RUN/rc"
  sync
  # busybox's poweroff -f calls reboot(2) at once; the host's poweroff wants systemd.
  exec /bin/busybox poweroff -f
}

# Let the kernel load drivers on its own (modalias) from the unpacked kernel.
printf '#!/bin/sh\nexec /sbin/modprobe -d "%s" "$@"\n' "$LAB_KDIR" > "$LAB_RUN/modprobe"
chmod +x "$LAB_RUN/modprobe"
echo "$LAB_RUN/modprobe" > /proc/sys/kernel/modprobe

if ! sh "$LAB_DIR/guest/devices.sh" > "$LAB_RUN/setup.log" 2>&1; then
  echo "lab: device setup failed, see $LAB_RUN/setup.log" >> "$LAB_RUN/output"
  cat "$LAB_RUN/setup.log" >> "$LAB_RUN/output"
  finish 125
fi
: > "$LAB_RUN/ready"

cd "$LAB_CWD" 2>/dev/null || cd /
sh "$LAB_RUN/command" >> "$LAB_RUN/output" 2>&1 < /dev/null
finish $?
