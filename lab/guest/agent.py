#!/usr/bin/python3
"""The lab's command agent: lets tests on the host run commands in the guest.

POST /exec {"cmd": "shell command", "timeout": seconds}
  -> {"rc": int, "stdout": str, "stderr": str}   (rc -1 when the timeout killed it)
GET /ping -> "pong"
POST /poweroff -> powers the guest off (the lab run then ends)
Only the lab's own port forward (127.0.0.1 on the host) reaches it.
"""
import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Agent(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, kind="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/ping":
            self.reply(200, "pong", "text/plain")
        else:
            self.reply(404, "{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/poweroff":
            self.reply(200, "{}")
            os.system("sync; /bin/busybox poweroff -f")
            return
        if self.path != "/exec":
            self.reply(404, "{}")
            return
        try:
            done = subprocess.run(
                ["/bin/sh", "-c", request["cmd"]], capture_output=True,
                timeout=request.get("timeout", 120), stdin=subprocess.DEVNULL)
            result = {"rc": done.returncode, "stdout": done.stdout.decode(errors="replace"),
                      "stderr": done.stderr.decode(errors="replace")}
        except subprocess.TimeoutExpired as expired:
            result = {"rc": -1, "stdout": (expired.stdout or b"").decode(errors="replace"),
                      "stderr": "timed out"}
        self.reply(200, json.dumps(result))


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7000
    print(f"agent: listening on {port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Agent).serve_forever()
