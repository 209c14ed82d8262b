"""The console client's URL handler for pyserial: which URLs it takes and refuses (the lab
tests run it against the real daemon on a real USB serial function)."""
import pytest
import serial

import usbhttpd  # registers usbhttpd:// with pyserial
from usbhttpd.urlhandler.protocol_usbhttpd import Serial


def test_importing_usbhttpd_registers_its_urls_with_pyserial():
    assert "usbhttpd.urlhandler" in serial.protocol_handler_packages


@pytest.mark.parametrize("url, expected", [
    ("usbhttpd://bench-7:8080/1-3", ("http://bench-7:8080", "1-3", 0)),
    ("usbhttpd://bench-7:8080/1-3/2", ("http://bench-7:8080", "1-3", 2)),
    ("usbhttpds://bench-7/serial:A1B2/0x01?start=start", ("https://bench-7", "serial:A1B2", 1)),
    ("usbhttpd://10.0.0.5:8080/1-3.2/0?write=false&verify=false", ("http://10.0.0.5:8080", "1-3.2", 0)),
])
def test_urls_name_the_daemon_the_device_and_the_interface(url, expected):
    base, device, interface, options = Serial.from_url(Serial.__new__(Serial), url)
    assert (base, device, interface) == expected
    if "start=start" in url:
        assert options["start"] == "start"
    if "write=false" in url:
        assert options["write"] is False and options["verify"] is False


@pytest.mark.parametrize("url", [
    "usbhttpd://bench-7:8080/", "usbhttpd://bench-7:8080/1-3/0/9", "usbhttpd:///1-3", "socket://bench-7:8080/1-3",
    "usbhttpd://bench-7:8080/1-3/zero", "usbhttpd://bench-7:8080/1-3?token=secret", "usbhttpd://bench-7:8080/1-3?baud=9600",
])
def test_urls_it_cannot_take_are_refused_with_why(url):
    with pytest.raises(serial.SerialException):
        Serial.from_url(Serial.__new__(Serial), url)


def test_a_daemon_that_is_not_there_is_a_serial_exception():
    with pytest.raises(serial.SerialException):
        serial.serial_for_url("usbhttpd://127.0.0.1:9/1-3/0", timeout=1)


def test_the_daemons_notice_of_lost_output_is_counted_and_any_other_text_ends_the_console():
    from usbhttpd.console import Console
    console = Console.__new__(Console)
    console.lost, console._closed = 0, None
    console._on_text('{"lost":4096,"next":10240}')
    console._on_text('{"lost":10,"next":20000}')
    assert console.lost == 4106 and console._closed is None
    console._on_text("hello")
    assert console._closed is not None and console.lost == 4106


# pexpect on a console (usbhttpd.expect) over a stand-in console: its output comes one message a
# read, as the WebSocket brings it (the lab test runs it on the real board).

class FakeConsole:
    def __init__(self, *messages, gone=False):
        self.messages, self.gone = list(messages), gone
        self.buffer, self.typed, self.closed = bytearray(), bytearray(), None
        self.device, self.interface = type("Device", (), {"id": "1-3"})(), 0

    def read(self, size=1, timeout=None):
        if len(self.buffer) < size and timeout != 0:  # timeout 0: only what has come
            if self.messages:
                self.buffer += self.messages.pop(0)
            elif self.gone:
                self.closed = "the device left"
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def write(self, data):
        self.typed += data
        return len(data)

    def close(self):
        self.closed = "closed by the client"


def test_pexpect_finds_a_prompt_across_messages_and_types_a_line():
    import usbhttpd.expect
    console = FakeConsole(b"U-Boot 2024\r\nboa", b"rd> ", b"more")
    board = usbhttpd.expect.spawn(console, timeout=1, encoding="utf-8")
    assert board.expect(["login: ", "board> "]) == 1
    assert board.before == "U-Boot 2024\r\n" and board.after == "board> "
    board.sendline("echo hi")
    assert console.typed == b"echo hi\r"
    assert board.isalive()
    board.close()
    assert console.closed == "closed by the client" and not board.isalive()


def test_pexpect_times_out_on_silence_and_sees_the_console_go():
    import pexpect
    import usbhttpd.expect
    quiet = usbhttpd.expect.spawn(FakeConsole(b"boot"), timeout=0.05)
    with pytest.raises(pexpect.TIMEOUT):
        quiet.expect(b"login: ")
    assert quiet.before == b"boot"
    gone = usbhttpd.expect.spawn(FakeConsole(b"bye", gone=True), timeout=1)
    assert gone.expect([b"login: ", pexpect.EOF]) == 1
    assert gone.before == b"bye" and not gone.isalive()
