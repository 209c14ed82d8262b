"""The READMEs run: each Python example of this client's README and of the project's, against
the daemon in the lab (the bench's URL and token swapped for the lab's), except those that need
what the lab has not got or never end: a firmware file (the DFU recipe), a cluster's DNS (the
fleet), the endless event iterator and its gigabyte capture, a console board at a fixed id (the
consoles' example: Tests/LabTests/ConsoleLabTests.swift runs the same pyserial and pexpect calls
on the lab's console board). Run in the lab's guest by
Tests/LabTests/PythonClientTests.swift; skipped elsewhere."""
import contextlib
import gc
import io
import os
import re
from pathlib import Path

import pytest

URL = os.environ.get("USBHTTPD_URL")
pytestmark = pytest.mark.skipif(not URL, reason="needs the lab (USBHTTPD_URL)")
READMES = [Path(__file__).parents[2] / "README.md", Path(__file__).parents[4] / "README.md"]
BLOCKS = [block for readme in READMES for block in re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)]
NOT_HERE = ("firmware.bin", "Fleet", "usb.events(", "usbhttpd://")
RUNNABLE = [block for block in BLOCKS if not any(marker in block for marker in NOT_HERE)]


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 8 and len(RUNNABLE) >= 5


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.splitlines()[0][:40])
def test_an_example_runs_as_written(block):
    code = (block.replace("https://bench-7:8443", URL).replace("http://bench-7:8080", URL)
            .replace('token="…"', "token=None").replace('verify="/etc/lab-ca.pem"', "verify=True"))
    output = io.StringIO()
    namespace = {}
    try:
        with contextlib.redirect_stdout(output):
            exec(compile(code, "README.md", "exec"), namespace)
    finally:
        # As the script's end would: its objects go, and PyUSB's devices (in reference cycles)
        # give back the interfaces they claimed, which the next example claims again.
        namespace.clear()
        gc.collect()
    printed = output.getvalue()
    # What the README's comments say the example prints.
    for marker, expected in EXPECTED.items():
        if marker in block:
            assert expected in printed, f"{expected!r} not in {printed!r}"


EXPECTED = {
    "dev.write(0x02, b\"hello\")": "b'hello'",
    "dev.read(0x81, 64, timeout_ms=100)": "usb-timeout 504 0",
    "channel.read(0x81, 65536": "524288",
    "write = channel.write(0x02": "524288 4096 completed",
    "dev.write(0x02, b\"hello\", timeout=1000)": "b'hello'",
}
