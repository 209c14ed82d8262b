"""The bench page in a real browser (Debian's chromium, headless, through chromedriver and
selenium), against the daemon the lab test (Tests/LabTests/BenchPageLabTests.swift) started in
the lab with tokens. Everything it needs comes from the environment that test sets."""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
URL = os.environ.get("PAGE_URL", "http://127.0.0.1:8080")
AGENT = os.environ.get("LAB_AGENT", "http://127.0.0.1:7000")
TOKENS = {scope: os.environ.get(f"PAGE_{scope.upper()}_TOKEN", "") for scope in ("admin", "transfer", "read")}
SHOTS = Path(os.environ.get("PAGE_SHOTS", ROOT / ".build-lab" / "page"))
FIGURES = Path(os.environ.get("PAGE_FIGURES", ROOT / ".build-lab" / "page" / "figures.json"))

# Collects every CSP violation the page meets, before any of its own script runs.
CSP_WATCH = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def guest(command, timeout=120):
    """Runs a shell command in the lab's guest (its agent); its stdout. Fails on a non-zero status."""
    body = json.dumps({"cmd": command, "timeout": timeout}).encode()
    request = urllib.request.Request(f"{AGENT}/exec", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=timeout + 10) as answer:
        result = json.load(answer)
    assert result["rc"] == 0, f"guest command failed ({result['rc']}): {command}\n{result['stdout']}{result['stderr']}"
    return result["stdout"]


def api(method, path, token=None, headers=None):
    """(status, parsed JSON or None, headers) of one request to the daemon."""
    request = urllib.request.Request(f"{URL}{path}", method=method, headers=dict(headers or {}))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
            status, fields = answer.status, answer.headers
    except urllib.error.HTTPError as error:
        body, status, fields = error.read(), error.code, error.headers
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return status, parsed, fields


def wait_for(condition, what, seconds=15.0, every=0.02):
    """Waits until condition() is true (checked every `every` s); how long it took. An element
    not there yet, or replaced while looked at (the page redraws what changed), is a false."""
    start = time.monotonic()
    while True:
        try:
            last = condition()
        except (NoSuchElementException, StaleElementReferenceException):
            last = False
        if last:
            return time.monotonic() - start
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(every)


class Figures:
    """What the tests measure, written to FIGURES (the closing note and docs quote it)."""

    def __init__(self):
        self.values = {}

    def __setitem__(self, key, value):
        self.values[key] = value
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        FIGURES.write_text(json.dumps(self.values, indent=2, sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def figures():
    return Figures()


@pytest.fixture(scope="session")
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-gpu", "--force-prefers-reduced-motion"):
        options.add_argument(argument)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CSP_WATCH})
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def console_errors(driver, allowed=()):
    """The browser console's errors since the last call, but those containing an allowed text."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allowed)]


def start_board(run):
    """lab/guest/board.py on the host end of QEMU's FTDI chip ($LAB_RUN/ftdi.sock)."""
    return subprocess.Popen(["python3", str(ROOT / "lab/guest/board.py"), f"unix:{run}/ftdi.sock"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
