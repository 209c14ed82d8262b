# Sourced by the benchmarks that drive a daemon in the lab's guest: starts BIN (the release
# build by default) on 127.0.0.1:8090 with its log in $W/NAME-daemon.log, stops it on exit,
# and returns once it is ready.  Usage: set -- NAME [BIN]; . bench/daemon.sh
BIN=${2:-}; BIN=${BIN:-.build/release/usbhttpd}
W=${TMPDIR:-/tmp}
"$BIN" --host 127.0.0.1 --port 8090 --log-level warning > "$W/$1-daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
i=0; until curl -sf -o /dev/null http://127.0.0.1:8090/readyz; do i=$((i + 1)); [ $i -lt 300 ] || exit 9; sleep 0.1; done
