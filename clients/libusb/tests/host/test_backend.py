"""usbhttpd's libusb backend on the host, no USB needed: libusb_init against a daemon that is not
there, a URL that is not HTTP, the real daemon with an empty bench and with tokens, and a
stand-in daemon that lies (descriptors longer than they are, answers to transfers never
asked, more data than a transfer has room for, a channel that breaks mid-transfer): every
call ends with a libusb error or a good answer, the program never crashes or hangs.
Run by script/libusb-client (script/test) with the backend built and the daemon's binary.
"""
import base64
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

LIB = os.environ.get("LIBUSB_BACKEND_DIR")
EXAMPLES = os.environ.get("LIBUSB_EXAMPLES_DIR")
BINARY = os.environ.get("USBHTTPD_BINARY")
pytestmark = pytest.mark.skipif(not (LIB and EXAMPLES), reason="needs the built backend (clients/libusb/build)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def through(url, command, timeout=30, **extra):
    env = {**os.environ, "LD_LIBRARY_PATH": LIB, "USBHTTPD_URL": url, **extra}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_an_unreachable_daemon_fails_libusb_init_and_says_so():
    done = through(f"http://127.0.0.1:{free_port()}", [f"{EXAMPLES}/listdevs"])
    assert done.returncode != 0
    assert "Couldn't connect to server" in done.stderr, done.stderr


def test_a_url_that_is_not_http_is_refused():
    done = through("ftp://bench-7", [f"{EXAMPLES}/listdevs"])
    assert done.returncode != 0 and "USBHTTPD_URL must start with http://" in done.stderr


@pytest.fixture
def daemon(tmp_path):
    if not BINARY:
        pytest.skip("needs the daemon's binary (USBHTTPD_BINARY)")
    started = []

    def start(*arguments):
        port = free_port()
        log = open(tmp_path / f"daemon-{port}.log", "w")
        process = subprocess.Popen([BINARY, "--host", "127.0.0.1", "--port", str(port), *arguments],
                                   stdout=log, stderr=log)
        started.append(process)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                return f"http://127.0.0.1:{port}"
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "the daemon did not start"
                time.sleep(0.1)
    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def test_an_empty_bench_lists_nothing_and_the_program_ends_at_once(daemon):
    url = daemon("--insecure")
    began = time.monotonic()
    done = through(url, [f"{EXAMPLES}/listdevs"])
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr
    # libusb_exit stops the thread that follows the daemon's events without waiting on it.
    assert time.monotonic() - began < 5


def test_a_daemon_with_tokens_refuses_a_program_without_one(daemon, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("reader read reader-token-0123456789\n")
    tokens.chmod(0o600)
    url = daemon("--token-file", str(tokens))
    refused = through(url, [f"{EXAMPLES}/listdevs"])
    assert refused.returncode != 0 and "401" in refused.stderr, refused.stderr
    allowed = through(url, [f"{EXAMPLES}/listdevs"], USBHTTPD_TOKEN="reader-token-0123456789")
    assert allowed.returncode == 0, allowed.stderr


# --- a stand-in daemon that lies ---

DEVICE = bytes([18, 1, 0, 2, 0, 0, 0, 64, 0x09, 0x12, 0x01, 0x00, 0, 1, 0, 0, 0, 1])
INTERFACE = bytes([9, 4, 0, 0, 1, 0xff, 0, 0, 0])
ENDPOINT = bytes([7, 5, 0x81, 2, 0, 2, 0])


def config(total_claimed=None):
    body = INTERFACE + ENDPOINT
    total = 9 + len(body)
    return bytes([9, 2, (total_claimed or total) & 0xff, (total_claimed or total) >> 8, 1, 1, 0, 0x80, 50]) + body


LISTING = {"devices": [
    {"id": "1-1", "bus": 1, "address": 2, "port_path": [1], "speed": "high"},
    {"id": "1-2", "bus": 1, "address": 3, "port_path": [2], "speed": "high"},
    {"id": "1-3", "bus": 1, "address": 4, "port_path": [3], "speed": "high"},
]}
RAW = {
    "1-1": DEVICE + config(),                   # honest
    "1-2": DEVICE + config(total_claimed=4000),  # a configuration that says it is longer than it is
    "1-3": DEVICE[:10],                         # not even a device descriptor
}


def complete(status, ident, actual, error=0, data=b""):
    return struct.pack("<BBHIIi", 0x82, status, 0, ident, actual, error) + data


def frame(payload):
    head = bytes([0x82])
    if len(payload) < 126:
        head += bytes([len(payload)])
    else:
        head += bytes([126]) + struct.pack(">H", len(payload))
    return head + payload


def read_frame(connection):
    """One masked client frame: (opcode, payload)."""
    def exactly(n):
        data = b""
        while len(data) < n:
            piece = connection.recv(n - len(data))
            if not piece:
                raise EOFError
            data += piece
        return data
    first, second = exactly(2)
    length = second & 0x7f
    if length == 126:
        length = struct.unpack(">H", exactly(2))[0]
    elif length == 127:
        length = struct.unpack(">Q", exactly(8))[0]
    mask = exactly(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(exactly(length)))
    return first & 0x0f, payload


def serve_channel(connection, key):
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    connection.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: usbhttpd.urb.1\r\n\r\n")
    hello = struct.pack("<BBHIIIBBBBIIB3x", 0x81, 1, 0, 64, 1 << 20, (1 << 20) + 600, 1, 2, 3, 1, 600000,
                        8 << 20, 2) + b"1-1"
    connection.sendall(frame(hello))
    submits = 0
    while True:
        opcode, message = read_frame(connection)
        if opcode == 8:
            return
        if message[0] == 0x03:   # an OPERATION: done
            connection.sendall(frame(struct.pack("<BBHIii", 0x83, message[1], 0, struct.unpack("<I", message[4:8])[0], 0, 0)))
            continue
        if message[0] != 0x01:
            continue
        submits += 1
        ident, length = struct.unpack("<II", message[4:12])
        if submits == 1:
            # A COMPLETE for a transfer never asked, then one with more data than it has room for.
            connection.sendall(frame(complete(0, ident + 1000, 4, data=b"abcd")))
            connection.sendall(frame(complete(0, ident, length + 64, data=bytes(length + 64))))
        elif submits == 2:
            # Data that does not match its actual length.
            connection.sendall(frame(complete(0, ident, 8, data=bytes(2))))
        elif submits == 3:
            connection.sendall(frame(complete(0, ident, length, data=bytes(range(length)))))
        else:
            connection.close()   # gone mid-transfer
            return


class LyingDaemon:
    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    def serve(self, connection):
        try:
            with connection:
                buffered = b""
                while True:
                    while b"\r\n\r\n" not in buffered:
                        piece = connection.recv(4096)
                        if not piece:
                            return
                        buffered += piece
                    head, buffered = buffered.split(b"\r\n\r\n", 1)
                    lines = head.decode().split("\r\n")
                    path = lines[0].split()[1].split("?")[0]
                    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
                    if path.endswith("/urb"):
                        return serve_channel(connection, headers["sec-websocket-key"])
                    if path == "/v1/devices":
                        self.answer(connection, 200, json.dumps(LISTING).encode(), "application/json")
                    elif path.startswith("/v1/devices/") and path.endswith("/descriptors/raw"):
                        self.answer(connection, 200, RAW[path.split("/")[3]], "application/octet-stream",
                                    extra="X-USB-Configuration: 1\r\n")
                    elif path == "/v1/events":
                        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
                        while connection.recv(4096):
                            pass
                        return
                    else:
                        self.answer(connection, 404, b"{}", "application/problem+json")
        except (OSError, EOFError):
            return

    @staticmethod
    def answer(connection, status, body, kind, extra=""):
        connection.sendall(f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
                           .encode() + body)

    def close(self):
        self.server.close()


LIAR_SCRIPT = r"""
import usb1
with usb1.USBContext() as context:
    devices = {d.getBusNumber() * 256 + d.getDeviceAddress(): d for d in context.getDeviceList()}
    print("listed", sorted(devices))
    print("configuration of 1-2:", end=" ")
    try:
        print(devices[0x103][0].getNumInterfaces())
    except Exception as error:
        print(type(error).__name__)
    handle = devices[0x102].open()
    for attempt in range(4):
        try:
            data = handle.bulkRead(0x81, 16, timeout=5000)
            print(f"read {attempt}:", len(data), list(data[:4]))
        except usb1.USBError as error:
            print(f"read {attempt}:", error)
    handle.close()
"""


def test_a_lying_daemon_gets_errors_not_a_crash():
    liar = LyingDaemon()
    try:
        done = through(liar.url, [sys.executable, "-c", LIAR_SCRIPT], USBHTTPD_QUIET="1")
    finally:
        liar.close()
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # 1-3 has no device descriptor: not listed. 1-2's configuration is cut to what it has.
    assert lines[0] == "listed [258, 259]", done.stdout
    assert lines[1] == "configuration of 1-2: IndexError", done.stdout   # none whole: none at all
    assert lines[2] == "read 0: LIBUSB_ERROR_IO [-1]", done.stdout       # more data than room: an error
    assert lines[3] == "read 1: LIBUSB_ERROR_IO [-1]", done.stdout       # data not its length: an error
    assert lines[4] == "read 2: 16 [0, 1, 2, 3]", done.stdout            # an honest answer still works
    assert lines[5].startswith("read 3: LIBUSB_ERROR_NO_DEVICE"), done.stdout  # the channel broke


def test_a_token_never_goes_over_plain_http_to_another_machine():
    refused = through("http://bench-7:8080", [f"{EXAMPLES}/listdevs"], USBHTTPD_TOKEN="secret")
    assert refused.returncode != 0 and "USBHTTPD_ALLOW_PLAIN_TOKEN" in refused.stderr, refused.stderr
    # Said so: it tries (and finds no such host here).
    allowed = through("http://bench-7:8080", [f"{EXAMPLES}/listdevs"], USBHTTPD_TOKEN="secret",
                      USBHTTPD_ALLOW_PLAIN_TOKEN="1")
    assert "USBHTTPD_ALLOW_PLAIN_TOKEN" not in allowed.stderr, allowed.stderr
