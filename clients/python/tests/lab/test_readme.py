"""This client's README runs: each of its Python examples, against the daemon in the lab (the
bench's URL and token swapped for the lab's), except those that need what the lab has not got
(a firmware file for the DFU recipe, a cluster's DNS for the fleet). Run in the lab's guest by
Tests/LabTests/PythonClientTests.swift; skipped elsewhere."""
import contextlib
import io
import os
import re
from pathlib import Path

import pytest

URL = os.environ.get("USBHTTPD_URL")
pytestmark = pytest.mark.skipif(not URL, reason="needs the lab (USBHTTPD_URL)")
README = Path(__file__).parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
RUNNABLE = [block for block in BLOCKS if "firmware.bin" not in block and "Fleet" not in block]


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 5 and len(RUNNABLE) >= 3


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.splitlines()[0][:40])
def test_an_example_runs_as_written(block):
    code = (block.replace("https://bench-7:8443", URL).replace("http://bench-7:8080", URL)
            .replace('token="…"', "token=None").replace('verify="/etc/lab-ca.pem"', "verify=True"))
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {})
    printed = output.getvalue()
    # What the README's comments say the example prints.
    for marker, expected in EXPECTED.items():
        if marker in block:
            assert expected in printed, f"{expected!r} not in {printed!r}"


EXPECTED = {
    "dev.write(0x02, b\"hello\")": "b'hello'",
    "dev.read(0x81, 64, timeout_ms=100)": "usb-timeout 504 0",
    "channel.read(0x81, 65536": "524288 4096 completed",
}
