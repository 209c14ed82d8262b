#!/bin/sh
# The bench page's figures: its browser tests (Tests/BrowserTests: Debian's chromium, headless,
# against the daemon in the lab; every answer they time is checked by the test that times it)
# run ROUNDS times (default 3), each in a lab booted for it, and summarised: the page's weight
# (bytes transferred, nothing cached), its first contentful paint, the devices shown after a
# first load, a gadget's unplug and plug on the page (from before the guest is asked), and the
# page live again after a daemon restart. Medians and (min-max).
#   sh bench/page.sh            (after swift build --build-tests; script/test installs selenium)
set -eu
[ -x /opt/swift/usr/bin/swift ] && PATH="$PATH:/opt/swift/usr/bin"
ROUNDS=${ROUNDS:-3}
OUT=.build-lab/page/rounds
rm -rf "$OUT"; mkdir -p "$OUT"
for i in $(seq "$ROUNDS"); do
  PAGE_FIGURES="$PWD/$OUT/$i.json" swift test --skip-build --filter BenchPageLabTests > "$OUT/$i.log" 2>&1 \
    || { tail -n 40 "$OUT/$i.log"; tail -n 60 .build-lab/browser-tests.log; exit 1; }
done
python3 - "$OUT" <<'PY'
import json, pathlib, statistics, sys
rounds = [json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))]
for key in sorted(rounds[0]):
    values = [r[key] for r in rounds if key in r]
    print(f"{key:32} {statistics.median(values):>10} ({min(values)}-{max(values)})  n={len(values)}")
PY
