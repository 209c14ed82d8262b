"""The URB channel from Python against the real daemon on the lab's devices: many transfers in
flight as futures, the channel over the daemon's own TLS (at the speed of plain, not a relay's
few bytes at a time), and the per-message refusals of a daemon with tokens and its default
policy. Run in the lab's guest by Tests/LabTests/PythonClientTests.swift; skipped elsewhere."""
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import usbhttpd
from usbhttpd import urb

URL = os.environ.get("USBHTTPD_URL")
BINARY = os.environ.get("USBHTTPD_BINARY")
pytestmark = pytest.mark.skipif(not URL, reason="needs the lab (USBHTTPD_URL)")


def pattern(count):
    """SourceSink's: byte i of each 512-byte packet is i % 63."""
    return bytes((i % 512) % 63 for i in range(count))


def device_id(url, serial, context=None):
    with usbhttpd.Client(url, verify=context if context else True) as client:
        (summary,) = client.devices(serial=serial)
        return summary["id"]


def read_rate(channel, total=8 << 20, size=65536, in_flight=8):
    """MB/s of bulk IN from SourceSink's 0x81 with `in_flight` reads of `size` kept in flight,
    every byte checked against the pattern."""
    expected = pattern(size)
    start, moved, pending = time.monotonic(), 0, []
    while moved < total:
        while len(pending) < in_flight:
            pending.append(channel.read(0x81, size, timeout_ms=5000))
        done = pending.pop(0).result(30)
        assert done.status == urb.COMPLETED and done.data == expected, done.status_name
        moved += len(done.data)
    for transfer in pending:
        transfer.result(30)
    return moved / (time.monotonic() - start) / 1e6


def test_many_reads_in_flight_as_futures():
    channel = urb.Channel(URL, device_id(URL, "lab-sourcesink"))
    try:
        channel.claim(0)
        reads = [channel.read(0x81, 65536, timeout_ms=5000) for _ in range(8)]
        for read in reads:
            assert read.result(30).data == pattern(65536)
        assert channel.write(0x02, pattern(65536), timeout_ms=5000).result(30).actual_length == 65536
        channel.release(0)
    finally:
        channel.close()


@pytest.fixture
def tls_daemon(tmp_path_factory):
    """A second daemon on this guest's devices, serving HTTPS with a certificate of its own."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "urb-tls"
    folder.mkdir(exist_ok=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    key.chmod(0o600)
    log = open(folder / "daemon.log", "w")
    process = subprocess.Popen([BINARY, "--port", "8443", "--tls-cert", str(cert), "--tls-key", str(key),
                                "--expose-risky-devices", "--log-level", "notice"], stdout=log, stderr=log)
    url = "https://127.0.0.1:8443"
    deadline = time.monotonic() + 30
    while True:
        try:
            with usbhttpd.Client(url, verify=str(cert)) as client:
                client.devices()
            break
        except Exception:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.2)
    yield url, str(cert)
    process.terminate()
    process.wait(10)


@pytest.mark.skipif(not BINARY, reason="needs the daemon's binary (USBHTTPD_BINARY)")
def test_the_channel_over_tls_keeps_the_speed_of_plain(tls_daemon):
    url, cert = tls_daemon
    source = device_id(URL, "lab-sourcesink")
    # Three rounds each, alternating, medians compared: this guest's CPUs are shared and noisy.
    over_tls, over_plain = [], []
    for _ in range(3):
        with urb.Channel(url, source, verify=cert) as tls:
            assert tls.hello.device == source
            tls.claim(0)
            # A control round trip, then 8 MiB with eight 64 KiB reads in flight, checked.
            assert tls.control(0x80, 6, 0x100, 0, length=18).result(10).actual_length == 18
            over_tls.append(read_rate(tls))
            tls.release(0)
        with urb.Channel(URL, source) as plain:
            plain.claim(0)
            over_plain.append(read_rate(plain))
            plain.release(0)
    over_tls, over_plain = sorted(over_tls)[1], sorted(over_plain)[1]
    print(f"URB channel bulk IN: TLS {over_tls:.1f} MB/s, plain {over_plain:.1f} MB/s")
    # libmicrohttpd 0.9.75's own relay of an upgraded TLS connection moved 6 MB in 16 s (a
    # hundredth of plain); the channel speaks through the connection's TLS session instead.
    # TLS itself costs AES-GCM on both ends, which this emulated guest does at about 24 MB/s
    # (openssl speed; a REST stream over TLS runs at about an eighth of plain here too).
    assert over_tls > over_plain / 10


@pytest.mark.skipif(not BINARY, reason="needs the daemon's binary (USBHTTPD_BINARY)")
def test_every_message_is_judged_by_the_tokens_and_the_default_policy(tmp_path):
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "urb-policy"
    folder.mkdir(exist_ok=True)
    tokens = folder / "tokens"
    tokens.write_text("ops transfer transfer-token-0123456789\n")
    tokens.chmod(0o600)
    log = open(folder / "daemon.log", "w")
    process = subprocess.Popen([BINARY, "--port", "8444", "--token-file", str(tokens), "--log-level", "notice"],
                               stdout=log, stderr=log)
    url = "http://127.0.0.1:8444"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        with pytest.raises(usbhttpd.ProblemError) as caught:
            urb.Channel(url, device_id(URL, "lab-sourcesink"))
        assert caught.value.status == 401
        token = "transfer-token-0123456789"
        with urb.Channel(url, device_id(URL, "lab-sourcesink"), token=token) as channel:
            assert channel.hello.scope == 1
            with pytest.raises(usbhttpd.ProblemError) as caught:
                channel.reset()
            assert caught.value.code == "insufficient-scope" and caught.value.libusb_error == -3
        with usbhttpd.Client(url, token=token) as client:
            keyboards = [d for d in client.devices() if d["vendor_id"] == 0x0627]
        # The default policy hides the boot keyboard entirely: no channel reaches it.
        assert keyboards == []
    finally:
        process.terminate()
        process.wait(10)
