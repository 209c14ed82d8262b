"""Unmodified libusb programs through usbhttpd's libusb backend, each compared with the same
program on the lab's devices directly: lsusb, dfu-util, a PyUSB script, python-libusb1,
usbhid-dump, libusb's own examples, hot-plug callbacks, a daemon going away, TLS, tokens and
leases. Run in the lab's guest by Tests/LabTests/LibUSBBackendTests.swift (root, the lab's
daemon holding no claim); skipped elsewhere.

The daemon these tests start is a bench's, with rules that open what the tools need (`allow
class=hub`: lsusb asks hubs their status; `allow interface_class=hid`: usbhid-dump detaches the
keyboard's driver; `allow interface_class=mass_storage`: xusb reads the stick; `allow`: the
rest). Without the HID rule the keyboard is shown but its interface protected (a test shows it).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import pytest

LIB = os.environ.get("LIBUSB_BACKEND_DIR")
BINARY = os.environ.get("USBHTTPD_BINARY")
EXAMPLES = os.environ.get("LIBUSB_EXAMPLES_DIR")
pytestmark = pytest.mark.skipif(not (LIB and BINARY and EXAMPLES), reason="needs the lab and the built backend")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
PORT = 8197
URL = f"http://127.0.0.1:{PORT}"
RULES = ["allow class=hub", "allow interface_class=hid", "allow interface_class=mass_storage", "allow"]
TMP = Path(os.environ.get("TMPDIR", "/tmp"))


def start_daemon(port, *arguments, log_name):
    log = open(TMP / log_name, "w")
    process = subprocess.Popen([BINARY, "--host", "127.0.0.1", "--port", str(port), "--log-level", "notice",
                                *arguments], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return process
        except OSError:
            assert process.poll() is None, (TMP / log_name).read_text()
            assert time.monotonic() < deadline, "the daemon did not answer"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def bench():
    rules = [item for rule in RULES for item in ("--rule", rule)]
    process = start_daemon(PORT, "--insecure", *rules, log_name="libusb-bench.log")
    yield URL
    process.terminate()
    process.wait(10)


def remote_env(url=URL, **extra):
    return {**os.environ, "LD_LIBRARY_PATH": LIB, "USBHTTPD_URL": url, **extra}


def run(command, remote=False, url=URL, timeout=120, **extra):
    """A program's output, on the devices directly or through the daemon at `url`."""
    env = remote_env(url, **extra) if remote else {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def both(command, **kw):
    native, remote = run(command, **kw), run(command, remote=True, **kw)
    assert native.returncode == 0, native.stdout + native.stderr
    assert remote.returncode == 0, remote.stdout + remote.stderr
    return native, remote


def blocks(text):
    """lsusb -v's text, one block per device, keyed by its first line."""
    return {b.splitlines()[0]: b.strip() for b in re.split(r"\n(?=Bus \d+ Device)", text.strip()) if b.strip()}


def test_lsusb_lists_the_same_devices(bench):
    native, remote = both(["lsusb"])
    assert sorted(remote.stdout.splitlines()) == sorted(native.stdout.splitlines())
    assert remote.stderr == ""


def test_lsusb_verbose_says_the_same_of_every_device(bench):
    native, remote = both(["lsusb", "-v"])
    # lsusb prints PortPwrCtrlMask from bytes past the end of the hub descriptor the hub sent
    # (its own buffer's leftovers): they differ run to run, not by the way the bytes came.
    mask = lambda text: re.sub(r"PortPwrCtrlMask .*", "PortPwrCtrlMask …", text)
    assert mask(json.dumps(blocks(remote.stdout), indent=1, sort_keys=True)) == \
        mask(json.dumps(blocks(native.stdout), indent=1, sort_keys=True))


def test_dfu_util_lists_and_flashes_the_board(bench):
    native, remote = both(["dfu-util", "-l"], timeout=60)
    assert remote.stdout == native.stdout and "Found Runtime: [1209:0010]" in remote.stdout
    image = TMP / "libusb-backend.bin"
    image.write_bytes(b"LABFW\x06\x07" + os.urandom(65536 - 7))
    # Detach, then download (two runs, as the native lab test: see DFUTests.swift). dfu-util
    # 0.11 ends with 74 after "Done!" when the board it reset comes back as another device.
    log_path = Path(os.environ.get("LAB_RUN", "/nonexistent")) / "dfu-gadget.log"
    lost = lambda: log_path.read_text().count("block lost") if log_path.exists() else 0
    detach = run(["dfu-util", "-d", "1209:0010", "-e"], remote=True, timeout=60)
    assert detach.returncode == 0, detach.stdout + detach.stderr
    wait_for(lambda: "1209:0011" in run(["lsusb"]).stdout, "the bootloader")
    for attempt in range(10):  # again while gadgetfs loses a block (the board says so: DFUTests.swift)
        before = lost()
        flash = run(["dfu-util", "-d", "1209:0011", "-D", str(image)], remote=True, timeout=120)
        if "Done!" in flash.stdout or lost() == before:
            break
    assert "Done!" in flash.stdout and flash.returncode in (0, 74), flash.stdout + flash.stderr
    wait_for(lambda: "bcdDevice            6.07" in run(["lsusb", "-v", "-d", "1209:0010"]).stdout, "the new firmware")
    # The whole image: a block the board lost without knowing would keep the version.
    assert f"firmware 6.07 crc32 {zlib.crc32(image.read_bytes()):08x}" in run(["lsusb", "-v", "-d", "1209:0010"]).stdout


def wait_for(condition, what, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.1)


def test_the_pyusb_script_gives_the_same_transcript(bench):
    script = ROOT / "clients" / "python" / "tests" / "lab" / "pyusb_script.py"
    native, remote = both([sys.executable, str(script), "native"], timeout=300)
    assert "stopped" not in native.stdout, native.stdout
    assert remote.stdout == native.stdout


def test_python_libusb1_keeps_many_transfers_in_flight(bench):
    native, remote = both([sys.executable, str(HERE / "async_loopback.py")])
    assert "in flight at once: 32; came back whole and in order: True" in remote.stdout
    assert remote.stdout == native.stdout


def test_usbhid_dump_needs_a_rule_then_reads_the_keyboard(bench):
    lsusb = run(["lsusb", "-d", "0627:0001"]).stdout.split()
    address = f"{int(lsusb[1])}:{int(lsusb[3].rstrip(':'))}"
    command = ["usbhid-dump", "-a", address, "-e", "descriptor"]
    native, remote = both(command)
    stamp = lambda text: re.sub(r"DESCRIPTOR\s+\S+", "DESCRIPTOR", text)
    assert stamp(remote.stdout) == stamp(native.stdout) and "05 01 09 06" in remote.stdout
    # A daemon whose rule shows the keyboard but does not name HID: its interface is protected.
    daemon = start_daemon(8199, "--insecure", "--rule", "allow vendor_id=0x0627", log_name="libusb-hid.log")
    try:
        refused = run(command, remote=True, url="http://127.0.0.1:8199")
    finally:
        daemon.terminate()
        daemon.wait(10)
    assert refused.returncode != 0 and "403 interface-protected" in refused.stderr, refused.stdout + refused.stderr


def test_libusbs_own_examples(bench):
    for name in ("listdevs", "testlibusb"):
        native, remote = both([f"{EXAMPLES}/{name}"])
        assert sorted(remote.stdout.splitlines()) == sorted(native.stdout.splitlines()), name
    native, remote = both([f"{EXAMPLES}/xusb", "-k", "46f4:0001"], timeout=120)
    assert "Max LBA:" in remote.stdout and remote.stdout == native.stdout


def started(command, env):
    """A child whose first line of output says it is ready."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    return process, first


def test_hotplug_callbacks_follow_the_daemons_events(bench):
    watcher, first = started([sys.executable, str(HERE / "hotplug_watch.py")], remote_env())
    try:
        assert first.strip() == "registered", first + watcher.stderr.read()
        replug = ROOT / "lab" / "guest" / "replug.py"
        subprocess.run([sys.executable, str(replug), "cycles", "loopback", "1"], check=True,
                       capture_output=True, timeout=120)
        output, errors = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert "left: 1209:0002" in output and "arrived: 1209:0002" in output, output + errors


def test_a_daemon_that_goes_away_ends_calls_instead_of_hanging():
    daemon = start_daemon(8198, "--insecure", log_name="libusb-gone.log")
    try:
        child, first = started([sys.executable, str(HERE / "daemon_gone.py")], remote_env("http://127.0.0.1:8198"))
        assert first.strip() == "read in flight", first + child.stderr.read()
        daemon.send_signal(signal.SIGKILL)
        output, errors = child.communicate(timeout=60)
    finally:
        daemon.kill()
    assert child.returncode == 0, output + errors
    assert "read ended: NO_DEVICE" in output, output + errors
    assert "then a control transfer: LIBUSB_ERROR_NO_DEVICE" in output, output + errors


def test_tls_tokens_and_leases_come_from_the_environment():
    folder = TMP / "libusb-tls"
    folder.mkdir(exist_ok=True)
    cert, key, tokens = folder / "cert.pem", folder / "key.pem", folder / "tokens"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    key.chmod(0o600)
    tokens.write_text("ops transfer libusb-token-0123456789\n")
    tokens.chmod(0o600)
    log = open(TMP / "libusb-tls.log", "w")
    daemon = subprocess.Popen([BINARY, "--host", "127.0.0.1", "--port", "8446", "--tls-cert", str(cert), "--tls-key",
                               str(key), "--token-file", str(tokens), "--log-level", "notice"], stdout=log, stderr=log)
    url, token = "https://127.0.0.1:8446", "libusb-token-0123456789"
    try:
        wait_for(lambda: run(["curl", "-sf", "--cacert", str(cert), f"{url}/healthz"]).returncode == 0, "the TLS daemon")
        listed = run(["lsusb", "-d", "1209:0002"], remote=True, url=url, USBHTTPD_CA=str(cert), USBHTTPD_TOKEN=token)
        assert listed.returncode == 0 and "1209:0002" in listed.stdout, listed.stderr
        unverified = run(["lsusb"], remote=True, url=url, USBHTTPD_TOKEN=token)
        assert unverified.returncode != 0 and "certificate" in unverified.stderr, unverified.stderr
        anonymous = run(["lsusb"], remote=True, url=url, USBHTTPD_CA=str(cert))
        assert anonymous.returncode != 0 and "401" in anonymous.stderr, anonymous.stderr

        # Someone's lease on the Loopback board: transfers need its token (USBHTTPD_LEASE).
        device = json.loads(run(["curl", "-sf", "--cacert", str(cert), "-H", f"Authorization: Bearer {token}",
                                 f"{url}/v1/devices?serial=lab-loopback"]).stdout)["devices"][0]["id"]
        taken = run(["curl", "-sf", "--cacert", str(cert), "-H", f"Authorization: Bearer {token}", "-X", "POST",
                     f"{url}/v1/devices/{device}/leases?ttl_ms=60000"])
        lease = json.loads(taken.stdout)
        script = [sys.executable, str(HERE / "async_loopback.py")]
        secure = {"USBHTTPD_CA": str(cert), "USBHTTPD_TOKEN": token}
        refused = run(script, remote=True, url=url, **secure)
        assert refused.returncode != 0 and "423 lease-held" in refused.stderr, refused.stdout + refused.stderr
        held = run(script, remote=True, url=url, USBHTTPD_LEASE=lease["token"], **secure)
        assert held.returncode == 0 and "came back whole and in order: True" in held.stdout, held.stdout + held.stderr
    finally:
        daemon.terminate()
        daemon.wait(10)


BIG = r"""
import usb1
with usb1.USBContext() as context:
    handle = context.openByVendorIDAndProductID(0x1209, 0x0001)
    with handle.claimInterface(0):
        data = handle.bulkRead(0x81, 3 << 20, timeout=60000)
        pattern = bytes((i % 512) % 63 for i in range(512)) * (len(data) // 512)
        print("read", len(data), "bytes, the pattern:", bytes(data) == pattern)
        # The sink checks what it gets against the same pattern (it stalls at anything else).
        print("wrote", handle.bulkWrite(0x02, bytes((i % 512) % 63 for i in range(512)) * 6144, timeout=60000), "bytes")
"""


def test_a_transfer_bigger_than_the_channel_takes_goes_in_pieces(bench):
    # 3 MiB in one libusb transfer: the channel takes 1 MiB a SUBMIT, the backend sends pieces.
    native, remote = both([sys.executable, "-c", BIG], timeout=300)
    assert "read 3145728 bytes, the pattern: True\nwrote 3145728 bytes" in remote.stdout, remote.stdout + remote.stderr
    assert remote.stdout == native.stdout
